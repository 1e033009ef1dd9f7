"""`ganprior train-encoder` and `ganprior train stylegan2`."""
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


train_app = typer.Typer(help="Train generators (StyleGAN2).", no_args_is_help=True)


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
