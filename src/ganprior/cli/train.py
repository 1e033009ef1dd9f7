"""`ganprior train-encoder`, `ganprior train stylegan2` and `ganprior train pix2pixhd`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import validate
from .common import DeviceOpt, ModelOpt, _load, console, user_errors


@user_errors
def train_encoder_cmd(
    model: str = ModelOpt,
    out: Path = typer.Option(Path("out/encoder/encoder"), help="Output NAME: writes "
                             "NAME.safetensors + NAME.json (and NAME.ckpt.pt to resume)."),
    steps: int = typer.Option(2000, min=1, help="Training steps."),
    batch: int = typer.Option(32, min=1, help="Generated images per step."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    recon_weight: float = typer.Option(1.0, help="Weight of the image reconstruction term."),
    seed: int = typer.Option(0, help="Seed of the generated training pairs."),
    padinv: bool = typer.Option(False, "--padinv", help="Train PadInv's encoder (W+ and "
                                "padding maps; StyleGAN2) instead of a latent encoder."),
    data: Optional[Path] = typer.Option(None, show_default="none",
                                        help="--padinv: a folder of real images mixed "
                                        "half and half with generated ones."),
    device: str = DeviceOpt,
):
    """Train an encoder on images the model generates: a latent encoder (z for DCGAN, W+ for
    StyleGAN2; loss latent MSE + image MSE) or, with --padinv, PadInv's encoder (pixel L2 +
    0.8 perceptual + 0.003 ||w - w_avg||). Rerunning the same command resumes from NAME.ckpt.pt.
    Use the result with `ganprior invert --method encoder|hybrid --encoder NAME`."""
    from ..train.encoder import train_encoder
    validate.integer(steps, "--steps", 1, validate.MAX_STEPS)
    validate.integer(batch, "--batch", 1, validate.MAX_BATCH)
    validate.finite(lr, "--lr", 0, lo_open=True)
    validate.finite(recon_weight, "--recon-weight", 0)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED)
    validate.out_file(out)
    validate.device(device)
    G = _load(model, device)["G"]
    if padinv and G.arch != "stylegan2":
        raise ValueError("--padinv needs a StyleGAN2 model")
    info = train_encoder(G, out, steps=steps, batch=batch, lr=lr, recon_weight=recon_weight,
                         seed=seed, model_name=model, padinv=padinv, data=data)
    losses = ", ".join(f"{v:.4f}" for v in info["final_losses"] or [])
    console.print(f"encoder: {out}.safetensors (final losses {losses})")


train_app = typer.Typer(help="Train generators (StyleGAN2, pix2pixHD).", no_args_is_help=True)


@train_app.command("stylegan2")
@user_errors
def train_stylegan2(
    data: Path = typer.Option(..., help="Training images: folder or .zip (optional "
                              "dataset.json labels). Resolution = largest power of two that fits."),
    out: Path = typer.Option(Path("out/train/stylegan2"), help="Run folder (rerun to resume)."),
    cfg: str = typer.Option("auto", help="auto | paper256 | cifar (NVIDIA's presets)."),
    kimg: int = typer.Option(1000, min=1, help="Length of training in thousands of real images."),
    batch: Optional[int] = typer.Option(None, show_default="preset",
                                        help="Override the preset's minibatch."),
    channel_base: Optional[int] = typer.Option(None, show_default="preset",
                                               help="Override model width (e.g. 8192)."),
    channel_max: Optional[int] = typer.Option(None, show_default="preset",
                                              help="Override the channel cap (e.g. 256)."),
    map_layers: Optional[int] = typer.Option(None, "--map", show_default="preset",
                                             help="Mapping network depth."),
    z_dim: Optional[int] = typer.Option(None, help="Length of z (default 512, as NVIDIA)."),
    w_dim: Optional[int] = typer.Option(None, help="Length of w (default 512, as NVIDIA)."),
    gamma: Optional[float] = typer.Option(None, help="R1 weight (default: preset/formula)."),
    snap: int = typer.Option(50, min=1, help="Snapshot every N kimg."),
    sample_kimg: int = typer.Option(10, min=1, help="Sample grid every N kimg."),
    mirror: bool = typer.Option(True, help="Random x-flips of the real images."),
    aug: str = typer.Option("ada", help="ada (adaptive augmentation, target 0.6) | noaug."),
    fid_images: int = typer.Option(10000, min=0, help="FID/KID at each snapshot on this many "
                                   "real and generated images, when NVIDIA's Inception "
                                   "detector is in the weights folder (0 = off)."),
    seed: int = typer.Option(0, help="Seed of the initial weights, the real-image order and "
                             "every random draw of the run."),
    device: str = DeviceOpt,
):
    """Train a StyleGAN2 with NVIDIA's recipe (non-saturating loss, lazy R1 and path-length
    regularisation, EMA, style mixing). Each snapshot is scored with a classifier two-sample test
    on held-out images (C2ST, 0.5 = indistinguishable) and FID/KID when available. Writes OUT/network-snapshot-*.safetensors (+ .json),
    OUT/fakes*.png, OUT/log.jsonl and OUT/state.pt; rerunning the command resumes exactly."""
    from ..device import pick_device
    from ..train.stylegan2 import train
    validate.integer(kimg, "--kimg", 1, 1_000_000)
    validate.integer(batch, "--batch", 1, validate.MAX_BATCH, optional=True)
    for value, option in ((channel_base, "--channel-base"), (channel_max, "--channel-max"),
                          (z_dim, "--z-dim"), (w_dim, "--w-dim")):
        validate.integer(value, option, 1, 65536, optional=True)
    validate.integer(map_layers, "--map", 1, 64, optional=True)
    if gamma is not None:
        validate.finite(gamma, "--gamma", 0)
    validate.integer(fid_images, "--fid-images", 0, 10_000_000)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED)
    validate.out_dir(out)
    validate.device(device)
    train(data, out, cfg=cfg, kimg=kimg, seed=seed, snap_kimg=snap, sample_kimg=sample_kimg,
          device=pick_device(device), xflip=mirror, batch=batch, channel_base=channel_base,
          channel_max=channel_max, map=map_layers, z_dim=z_dim, w_dim=w_dim, gamma=gamma,
          aug=aug, fid_images=fid_images)
    console.print(f"done: {out}")


@train_app.command("pix2pixhd")
@user_errors
def train_pix2pixhd(
    data: Path = typer.Option(..., help="Paired data in pix2pixHD's layout: train_label/, "
                              "train_inst/, train_img/ (label_nc 0: train_A/, train_B/)."),
    out: Path = typer.Option(Path("out/train/pix2pixhd"), help="Run folder (rerun to resume)."),
    label_nc: Optional[int] = typer.Option(None, show_default="scenes.json",
                                           help="Classes in the label maps (0: RGB input)."),
    no_instance: bool = typer.Option(False, "--no-instance", help="No instance maps."),
    features: bool = typer.Option(False, "--features", help="Train the instance feature "
                                  "encoder (for `encode-features` and `synth --cluster`)."),
    ngf: int = typer.Option(64, help="Generator width (the finest network's)."),
    ndf: int = typer.Option(64, help="Discriminator width."),
    n_blocks: int = typer.Option(9, help="Residual blocks of the global generator."),
    n_downsample: int = typer.Option(4, help="Downsamplings of the global generator."),
    n_local_enhancers: int = typer.Option(0, help="Local enhancers on top of it (0: global)."),
    n_blocks_local: int = typer.Option(3, help="Residual blocks of each enhancer."),
    num_d: int = typer.Option(2, "--num-d", help="Discriminator scales."),
    n_layers_d: int = typer.Option(3, "--n-layers-d", help="Layers of each discriminator."),
    nef: int = typer.Option(16, help="Encoder width."),
    n_downsample_e: int = typer.Option(4, "--n-downsample-e", help="Downsamplings of the "
                                       "encoder."),
    niter: int = typer.Option(100, help="Epochs at the starting learning rate."),
    niter_decay: int = typer.Option(100, help="Epochs of linear decay to 0 after them."),
    niter_fix_global: int = typer.Option(0, help="Epochs training only the enhancers "
                                         "(the global generator frozen) at first."),
    init_global: Optional[Path] = typer.Option(None, show_default="none",
                                               help="Start the global generator of a local "
                                                    "enhancer run from this trained one."),
    batch: int = typer.Option(1, help="Minibatch (split across torchrun processes)."),
    lr: float = typer.Option(2e-4, help="Adam learning rate (betas 0.5, 0.999)."),
    no_vgg: bool = typer.Option(False, "--no-vgg", help="No VGG19 loss even when its "
                                "weights are installed."),
    resize: str = typer.Option("none", help="none | resize (square --load-size) | "
                               "scale_width (width --load-size)."),
    load_size: Optional[int] = typer.Option(None, show_default="none",
                                            help="Size for --resize."),
    crop_size: Optional[int] = typer.Option(None, show_default="no crop",
                                            help="Random square crops of this side."),
    flip: bool = typer.Option(True, help="Random left-right flips."),
    snap: int = typer.Option(10, help="Snapshot every N epochs (and at the end)."),
    save_every: int = typer.Option(500, help="Save the resume state every N minibatches "
                                   "(and at each epoch's end)."),
    seed: int = typer.Option(0, help="Seed of the weights, data order, crops and flips."),
    device: str = DeviceOpt,
):
    """Train pix2pixHD with the official recipe (LSGAN, feature matching, VGG19 when its
    weights are installed; Adam 2e-4, constant then linear decay). Writes OUT/state.pt,
    OUT/log.jsonl, OUT/samples/, OUT/pix2pixhd-epochNNNN.safetensors (+ .json); rerunning the
    command resumes exactly. Several processes: torchrun --nproc_per_node K -m ganprior.cli
    train pix2pixhd ... (docs/pix2pixhd-training.md)."""
    import shlex
    import sys

    from ..device import pick_device
    from ..train.pix2pixhd import make_spec, train
    validate.integer(label_nc, "--label-nc", 0, 65536, optional=True)
    for value, option in ((ngf, "--ngf"), (ndf, "--ndf"), (nef, "--nef")):
        validate.integer(value, option, 1, 4096)
    validate.integer(n_blocks, "--n-blocks", 0, 64)
    validate.integer(n_blocks_local, "--n-blocks-local", 0, 64)
    validate.integer(n_downsample, "--n-downsample", 0, 8)
    validate.integer(n_downsample_e, "--n-downsample-e", 0, 8)
    validate.integer(n_local_enhancers, "--n-local-enhancers", 0, 4)
    validate.integer(num_d, "--num-d", 1, 8)
    validate.integer(n_layers_d, "--n-layers-d", 1, 8)
    for value, option in ((niter, "--niter"), (niter_decay, "--niter-decay"),
                          (niter_fix_global, "--niter-fix-global")):
        validate.integer(value, option, 0, 100_000)
    validate.integer(batch, "--batch", 1, validate.MAX_BATCH)
    validate.finite(lr, "--lr", 0, 1, lo_open=True)
    validate.integer(load_size, "--load-size", 1, 8192, optional=True)
    validate.integer(crop_size, "--crop-size", 1, 8192, optional=True)
    validate.integer(snap, "--snap", 1, 100_000)
    validate.integer(save_every, "--save-every", 1, validate.MAX_STEPS)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED)
    if not data.is_dir():
        raise ValueError(f"--data {data}: no such folder")
    validate.out_dir(out)
    validate.device(device)
    spec = make_spec(label_nc=label_nc, instance=not no_instance, features=features, ngf=ngf,
                     ndf=ndf, n_blocks=n_blocks, n_downsample=n_downsample,
                     n_local_enhancers=n_local_enhancers, n_blocks_local=n_blocks_local,
                     num_D=num_d, n_layers_D=n_layers_d, nef=nef,
                     n_downsample_E=n_downsample_e, niter=niter, niter_decay=niter_decay,
                     niter_fix_global=niter_fix_global,
                     init_global=str(init_global) if init_global else None, batch=batch,
                     lr=lr, vgg=not no_vgg, resize=resize, load_size=load_size,
                     crop_size=crop_size, flip=flip, seed=seed)
    command = "ganprior " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    say = lambda text: typer.echo(f"note: {text}", err=True)  # noqa: E731
    train(data, out, spec, device=pick_device(device), snap_every=snap, save_every=save_every,
          say=say, command=command)
    console.print(f"done: {out}", markup=False, highlight=False)
