"""`ganprior` command line: a thin shell over the library.

Every command takes `--model` as a zoo name (see `ganprior models`) or a checkpoint file
(NVIDIA .pkl, rosinality .pt, ganprior .safetensors + .json). Errors print one line and exit 1.
"""
from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import GanpriorError

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
console = Console()

def _check_noise_mode(value: str):
    if value not in ("const", "random", "none"):
        raise ValueError(f"--noise-mode must be const, random or none, not {value!r}")


ModelOpt = typer.Option("dcgan-digiface64", "--model", "-m",
                        help="Zoo name (see `ganprior models`) or checkpoint path.")
StyleModelOpt = typer.Option(None, "--model", "-m", show_default=False,
                             help="Zoo name (see `ganprior models`) or checkpoint path "
                                  "[default: stylegan2-digiface64 for W-space work (mixing; "
                                  "invert --method w, w+, padinv), else dcgan-digiface64].")
DeviceOpt = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps.")
NoiseOpt = typer.Option("const", "--noise-mode",
                        help="StyleGAN2 per-pixel noise: const (reproducible) | random | none.")
TruncOpt = typer.Option(1.0, "--trunc", help="Truncation psi: 1 = none, <1 = closer to average.")
CutoffOpt = typer.Option(None, "--trunc-cutoff",
                         help="Truncate only the first N ws (StyleGAN2); default all.")
ClassOpt = typer.Option(None, "--class", help="Class index for conditional models.")


def _fail(msg: str):
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(1)


def user_errors(fn):
    """Turn the errors a user can cause into one line on stderr and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (GanpriorError, ValueError, FileNotFoundError, PermissionError) as e:
            _fail(str(e))
        except KeyboardInterrupt:
            _fail("interrupted")
    return wrapper


def _default_model(needs_w: bool) -> str:
    from .checkpoints.zoo import default_model
    return default_model(needs_w)


def _load(model: str, device: str):
    from .checkpoints import load_networks
    from .device import pick_device
    return load_networks(model, pick_device(device))


@app.command()
@user_errors
def models():
    """List the embedded default models: resolution, latent spaces, source, availability."""
    from .checkpoints import zoo_entries
    from rich.table import Column
    table = Table(Column("name", no_wrap=True), "arch", "res", "latent spaces", "status", "source")
    for e in zoo_entries().values():
        status = e.availability()
        table.add_row(e.name, e.arch, str(e.resolution), ", ".join(e.latent_spaces),
                      "[green]ok[/]" if status == "ok" else f"[red]{status}[/]", e.source)
    console.print(table)
    console.print("Any --model also accepts a path: NVIDIA .pkl, rosinality .pt, "
                  "ganprior .safetensors (+ .json).")


@app.command()
@user_errors
def info(model: str = typer.Argument(..., help="Zoo name or checkpoint path.")):
    """Describe a model: architecture, latent sizes, split layers, parameters, provenance."""
    nets = _load(model, "cpu")
    out = nets["G"].describe()
    out["has_discriminator"] = "D" in nets
    out["meta"] = nets["meta"]
    console.print_json(json.dumps(out, default=str))


@app.command()
@user_errors
def generate(
    model: str = ModelOpt,
    seeds: str = typer.Option("0-15", help="Seeds, e.g. 0-15 or 1,5,9-12."),
    trunc: float = TruncOpt,
    trunc_cutoff: Optional[int] = CutoffOpt,
    class_idx: Optional[int] = ClassOpt,
    noise_mode: str = NoiseOpt,
    out: Path = typer.Option(Path("out/generate"), help="Output folder."),
    batch: int = typer.Option(16, min=1, help="Images per forward pass."),
    device: str = DeviceOpt,
):
    """Generate one PNG per seed (OUT/seed0000.png ...), OUT/grid.png and OUT/generate.json.

    Seeds map to z as in NVIDIA's generate.py (RandomState(seed).randn(1, z_dim)) and images are
    quantised the same way, so an NVIDIA checkpoint gives the same PNG for the same seed.
    The latents (z and ws) are saved to OUT/latents.safetensors for later editing.
    """
    from safetensors.torch import save_file

    from .files import atomic_write, atomic_write_text
    from .generate import generate as run, parse_range
    from .images import grid, save_image

    _check_noise_mode(noise_mode)
    seed_list = parse_range(seeds)
    G = _load(model, device)["G"]
    t0 = time.time()
    images, z, ws = run(G, seed_list, trunc, trunc_cutoff, class_idx, noise_mode, batch,
                        progress=True)
    seconds = time.time() - t0
    for s, img in zip(seed_list, images):
        save_image(img, out / f"seed{s:04d}.png")
    save_image(grid(images), out / "grid.png")
    atomic_write(out / "latents.safetensors",
                 lambda tmp: save_file({"z": z.contiguous(), "ws": ws.contiguous()}, tmp))
    record = dict(model=model, seeds=seed_list, trunc=trunc, trunc_cutoff=trunc_cutoff,
                  class_idx=class_idx, noise_mode=noise_mode, seconds=round(seconds, 3),
                  z=z.tolist(), latents="latents.safetensors")
    atomic_write_text(out / "generate.json", json.dumps(record) + "\n")
    console.print(f"wrote {len(seed_list)} images, grid.png and generate.json to {out} "
                  f"({len(seed_list) / max(seconds, 1e-9):.1f} img/s)")


@app.command()
@user_errors
def mix(
    model: Optional[str] = StyleModelOpt,
    rows: str = typer.Option(..., help="Row seeds (they keep the other layers), e.g. 1,2."),
    cols: str = typer.Option(..., help="Column seeds (they give --layers), e.g. 3,4."),
    layers: str = typer.Option("0-3", help="W+ layer indices taken from the column seeds: "
                               "low = pose/shape, high = colour/texture."),
    trunc: float = TruncOpt,
    trunc_cutoff: Optional[int] = CutoffOpt,
    class_idx: Optional[int] = ClassOpt,
    noise_mode: str = NoiseOpt,
    out: Path = typer.Option(Path("out/mix"), help="Output folder."),
    device: str = DeviceOpt,
):
    """Style-mixing grid: OUT/mix.png plus OUT/ROW-COL.png for every pair."""
    from .editing.mixing import style_mixing_grid
    from .generate import parse_range
    from .images import save_image

    _check_noise_mode(noise_mode)
    model = model or _default_model(needs_w=True)
    G = _load(model, device)["G"]
    r, c = parse_range(rows, "rows"), parse_range(cols, "cols")
    picture, mixed = style_mixing_grid(G, r, c, parse_range(layers, "layers"), trunc,
                                       trunc_cutoff, class_idx, noise_mode)
    for (rs, cs), img in mixed.items():
        save_image(img, out / f"{rs}-{cs}.png")
    save_image(picture, out / "mix.png")
    console.print(f"wrote mix.png and {len(mixed)} mixed images to {out}")


@app.command()
@user_errors
def convert(
    src: str = typer.Argument(..., help="Input: zoo name, .pkl, .pt or .safetensors."),
    dst: Path = typer.Argument(..., help="Output: NAME.safetensors (native, + NAME.json), "
                               "NAME.pt (rosinality layout) or NAME.pkl (NVIDIA, needs "
                               "--nvlabs-code)."),
    nvlabs_code: Optional[Path] = typer.Option(
        None, envvar="NVLABS_SG2ADA", help="For .pkl output: your stylegan2-ada-pytorch checkout. "
        "NVIDIA's pickles carry their source code, so the file is built with their classes "
        "from that folder."),
):
    """Convert a checkpoint between formats (NVIDIA .pkl / rosinality .pt -> native, etc.)."""
    from .checkpoints import save_networks
    nets = _load(src, "cpu")
    written = save_networks(nets, dst, nvlabs_code=nvlabs_code)
    console.print("wrote " + ", ".join(str(p) for p in written))


@app.command()
@user_errors
def invert(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    model: Optional[str] = StyleModelOpt,
    method: str = typer.Option("mganprior", help="z | w | w+ | mganprior | padinv | encoder | "
                               "hybrid (encoder + optimisation)."),
    encoder: Optional[Path] = typer.Option(None, help="encoder/hybrid: a file written by "
                                           "`ganprior train-encoder` (default: the zoo "
                                           "model's shipped encoder, if any)."),
    codes: int = typer.Option(20, help="mganprior: number of latent codes N."),
    layer: Optional[str] = typer.Option(None, help="mganprior: composition layer, e.g. b16 "
                                        "(default: the block at 1/4 of the resolution)."),
    pad_resolutions: int = typer.Option(4, help="padinv: how many resolutions get padding maps."),
    noise_maps: bool = typer.Option(False, help="w/w+: also optimise the per-pixel noise maps, "
                                    "regularised as in NVIDIA's projector (use with "
                                    "--schedule nvidia)."),
    noise_reg: float = typer.Option(1e5, help="w/w+ with --noise-maps: weight of the noise "
                                    "autocorrelation penalty."),
    steps: int = typer.Option(300, min=0, help="Optimisation steps per image."),
    lr: float = typer.Option(0.03, help="Adam learning rate."),
    loss: str = typer.Option("auto", help="auto | mse | l1 | terms joined by + with optional "
                             "weights, e.g. mse+ms-ssim:0.1 or mse+vgg:0.001."),
    schedule: str = typer.Option("constant", help="constant | nvidia (ramp-up, cosine ramp-down)."),
    patience: int = typer.Option(0, min=0, help="Stop early after this many steps without "
                                 "improvement (0 = never)."),
    seed: int = typer.Option(0, help="Seed of the initial codes."),
    batch: int = typer.Option(1, min=1, help="Images optimised together (same result, faster)."),
    out: Path = typer.Option(Path("out/invert"), help="Output folder."),
    device: str = DeviceOpt,
):
    """Invert images into the generator: OUT/STEM.png (reconstruction), OUT/STEM_compare.png,
    OUT/STEM.safetensors (parameters), OUT/STEM.json (psnr, ssim, loss, history).

    Finished images are skipped when rerun (resume after a kill). Shard a folder across
    processes with `torchrun --nproc_per_node K -m ganprior.cli invert ...`.
    """
    from .inversion import make_method
    from .inversion.files import invert_files

    model = model or _default_model(needs_w=method in ("w", "w+", "padinv"))
    opts = dict(codes=codes, layer=layer, pad_resolutions=pad_resolutions,
                noise_maps=noise_maps, noise_reg=noise_reg)
    if method in ("encoder", "hybrid"):
        from .train.encoder import load_encoder, zoo_encoder
        encoder = encoder or zoo_encoder(model)
        if encoder is None:
            raise ValueError(f"--method {method} needs --encoder FILE (`ganprior train-encoder`)")
        opts["encoder"] = load_encoder(encoder)[0]  # once, not per image
    make_method(method, **opts)  # validate options before loading the model
    G = _load(model, device)["G"]
    record_opts = dict(opts, encoder=str(encoder) if encoder else None)
    records = invert_files(G, inputs, out, lambda: make_method(method, **opts), steps=steps,
                           lr=lr, loss=loss, seed=seed, batch=batch, schedule=schedule,
                           patience=patience, options=dict(model=model, lr=lr, seed=seed,
                                                           schedule=schedule, **record_opts))
    for r in records:
        console.print(f"{Path(r['input']).name}: psnr {r['psnr']:.2f} dB, "
                      f"ssim {r['ssim']:.3f}, {r['seconds']:.1f} s")
    console.print(f"results in {out}")


@app.command("analyze-layers")
@user_errors
def analyze_layers(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders."),
    model: str = ModelOpt,
    layers: Optional[str] = typer.Option(None, help="Composition layers to compare, e.g. "
                                         "b4,b8,b16 (default: all split points)."),
    codes: str = typer.Option("1,5,10,20", help="Numbers of codes to compare."),
    fixed_codes: int = typer.Option(20, help="Codes used while varying the layer."),
    fixed_layer: Optional[str] = typer.Option(None, help="Layer used while varying the codes."),
    steps: int = typer.Option(300, min=1),
    lr: float = typer.Option(0.03),
    loss: str = typer.Option("mse", help="Reconstruction loss (see `invert --help`)."),
    out: Path = typer.Option(Path("out/analyze-layers"), help="Output folder."),
    device: str = DeviceOpt,
):
    """mGANprior's layer-wise analysis: quality vs composition layer and vs number of codes.
    Writes OUT/analysis.svg and OUT/analysis_codes.svg (plots), OUT/analysis.md (table),
    OUT/analysis.json and OUT/grid.png (targets, then one row per run)."""
    import numpy as np
    import torch

    from .files import atomic_write_text
    from .images import grid, load_image, save_image, to_uint8
    from .inversion.analysis import layer_analysis
    from .inversion.files import list_inputs
    from .plots import line_chart

    G = _load(model, device)["G"]
    files = list_inputs(inputs)
    targets = torch.cat([load_image(f, G.img_resolution, G.img_channels) for f in files])
    codes_list = [int(c) for c in codes.split(",")]
    res = layer_analysis(G, targets, layers.split(",") if layers else None, codes_list,
                         fixed_codes, fixed_layer, steps, lr, loss, progress=True)
    by_l, by_c, st = res["by_layer"], res["by_codes"], res["settings"]
    atomic_write_text(out / "analysis.svg", line_chart(
        f"PSNR vs composition layer (N={st['fixed_codes']})", [r["layer"] for r in by_l],
        {"PSNR": [r["psnr"] for r in by_l]}, "PSNR (dB)"))
    atomic_write_text(out / "analysis_codes.svg", line_chart(
        f"PSNR vs number of codes (layer {st['fixed_layer']})", [str(r["codes"]) for r in by_c],
        {"PSNR": [r["psnr"] for r in by_c]}, "PSNR (dB)"))
    rows = ["| varied | layer | codes | PSNR | SSIM | s / image |", "|---|---|---|---|---|---|"]
    rows += [f"| layer | {r['layer']} | {r['codes']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
             f"{r['seconds']:.1f} |" for r in by_l]
    rows += [f"| codes | {r['layer']} | {r['codes']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
             f"{r['seconds']:.1f} |" for r in by_c]
    atomic_write_text(out / "analysis.md", "\n".join(rows) + "\n")
    atomic_write_text(out / "analysis.json", json.dumps(
        {"settings": st, "inputs": [str(f) for f in files],
         "by_layer": [{k: v for k, v in r.items() if k != "images"} for r in by_l],
         "by_codes": [{k: v for k, v in r.items() if k != "images"} for r in by_c]}, indent=1))
    cells = [to_uint8(targets)] + [to_uint8(r["images"]) for r in by_l + by_c]
    save_image(grid(np.concatenate(cells), cols=len(files)), out / "grid.png")
    console.print("\n".join(rows))
    console.print(f"plots: {out / 'analysis.svg'}, {out / 'analysis_codes.svg'}")


@app.command("train-encoder")
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
    data: Optional[Path] = typer.Option(None, help="--padinv: a folder of real images mixed "
                                        "half and half with generated ones."),
    device: str = DeviceOpt,
):
    """Train an encoder on images the model generates: a latent encoder (z for DCGAN, W+ for
    StyleGAN2; loss latent MSE + image MSE) or, with --padinv, PadInv's encoder (pixel L2 +
    0.8 perceptual + 0.003 ||w - w_avg||). Rerunning the same command resumes from NAME.ckpt.pt.
    Use the result with `ganprior invert --method encoder|hybrid --encoder NAME`."""
    from .train.encoder import train_encoder
    G = _load(model, device)["G"]
    if padinv and G.arch != "stylegan2":
        raise ValueError("--padinv needs a StyleGAN2 model")
    info = train_encoder(G, out, steps=steps, batch=batch, lr=lr, recon_weight=recon_weight,
                         seed=seed, model_name=model, padinv=padinv, data=data)
    losses = ", ".join(f"{v:.4f}" for v in info["final_losses"] or [])
    console.print(f"encoder: {out}.safetensors (final losses {losses})")


@app.command()
@user_errors
def metrics(
    a: Path = typer.Argument(..., help="Image, or folder of images."),
    b: Path = typer.Argument(..., help="Image, or folder with images of the same names."),
    resolution: Optional[int] = typer.Option(None, help="Resize both to this size first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """PSNR, SSIM, MS-SSIM (and LPIPS when its weights are installed) between images."""
    from .metrics.files import compare_files
    rows = compare_files(a, b, resolution)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    keys = [k for k in rows[0] if k != "name"]
    table = Table("name", *keys)
    for r in rows:
        table.add_row(r["name"], *[f"{r[k]:.4f}" for k in keys])
    console.print(table)


@app.command()
@user_errors
def fid(
    real: str = typer.Argument(..., help="Real images: a folder or .zip."),
    fake: str = typer.Argument(..., help="A folder or .zip of generated images, or a model "
                               "(zoo name or checkpoint) to sample."),
    n: int = typer.Option(10000, min=2, help="Images per side (a random subset of a larger "
                          "folder; this many samples of a model)."),
    resolution: Optional[int] = typer.Option(None, help="Size the images are brought to "
                                             "(default: the model's, else the first real image's)."),
    seed: int = typer.Option(0, help="Seed of the subsets and of the model's samples."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    device: str = DeviceOpt,
):
    """FID and KID between two image sets (or a model's samples), with NVIDIA's Inception
    detector (`ganprior weights list` says where it goes; offline it must be copied there).
    Computed as NVIDIA's metrics: a model is sampled at psi 1 with random noise (seeded)."""
    from .device import pick_device
    from .metrics import fid as F

    dev = pick_device(device)
    detector = F.load_detector(dev)  # fails before any work when the detector is missing
    from .data import ImageDataset
    G = None
    if not (Path(fake).is_dir() or fake.endswith(".zip")):
        G = _load(fake, device)["G"]
    real_set = ImageDataset(real, resolution=8)  # scanned once; its resolution is set below
    if resolution is None:
        resolution = G.img_resolution if G is not None else min(real_set.first_image_size())
    real_set.resolution = resolution
    fakes = (F.generator_batches(G, n, seed=seed, device=dev, labels=real_set.labels)
             if G is not None else F.dataset_batches(fake, n, resolution, seed=seed))
    result = F.fid_kid(F.dataset_batches(real_set, n, seed=seed), fakes, dev, detector)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        console.print(f"FID {result['fid']:.3f}  KID {result['kid']:.5f}  "
                      f"({result['n_real']} real, {result['n_fake']} generated, {resolution} px)")


weights_app = typer.Typer(help="Optional pretrained networks (VGG16, LPIPS, Inception) in the cache folder.",
                          no_args_is_help=True)
app.add_typer(weights_app, name="weights")


@weights_app.command("list")
@user_errors
def weights_list():
    """Show the optional weights, where they go and whether they are installed."""
    from . import weights
    table = Table("name", "status", "file", "purpose")
    for w in weights.REGISTRY.values():
        table.add_row(w.name, weights.verify(w.name), str(weights.path_of(w.name)), w.purpose)
    console.print(table)
    console.print(f"cache folder: {weights.cache_dir()} (set GANPRIOR_WEIGHTS to change)")


@weights_app.command("download")
@user_errors
def weights_download(names: list[str] = typer.Argument(None, help="Names (default: all).")):
    """Download weights into the cache folder (needs a network connection)."""
    from . import weights
    for name in names or list(weights.REGISTRY):
        if name not in weights.REGISTRY:
            raise ValueError(f"unknown weights {name!r}; see `ganprior weights list`")
        console.print(f"{name}: {weights.download(name)}")


@weights_app.command("verify")
@user_errors
def weights_verify():
    """Check the installed weight files against their known SHA-256; exit 1 on a mismatch."""
    from . import weights
    bad = False
    for name in weights.REGISTRY:
        status = weights.verify(name)
        console.print(f"{name}: {status}")
        bad |= status not in ("ok", "missing")
    if bad:
        raise typer.Exit(1)


train_app = typer.Typer(help="Train generators (StyleGAN2).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("stylegan2")
@user_errors
def train_stylegan2(
    data: Path = typer.Option(..., help="Training images: folder or .zip (optional "
                              "dataset.json labels). Resolution = largest power of two that fits."),
    out: Path = typer.Option(Path("out/train/stylegan2"), help="Run folder (rerun to resume)."),
    cfg: str = typer.Option("auto", help="auto | paper256 | cifar (NVIDIA's presets)."),
    kimg: int = typer.Option(1000, min=1, help="Length of training in thousands of real images."),
    batch: Optional[int] = typer.Option(None, help="Override the preset's minibatch."),
    channel_base: Optional[int] = typer.Option(None, help="Override model width (e.g. 8192)."),
    channel_max: Optional[int] = typer.Option(None, help="Override the channel cap (e.g. 256)."),
    map_layers: Optional[int] = typer.Option(None, "--map", help="Mapping network depth."),
    z_dim: Optional[int] = typer.Option(None), w_dim: Optional[int] = typer.Option(None),
    gamma: Optional[float] = typer.Option(None, help="R1 weight (default: preset/formula)."),
    snap: int = typer.Option(50, min=1, help="Snapshot every N kimg."),
    sample_kimg: int = typer.Option(10, min=1, help="Sample grid every N kimg."),
    mirror: bool = typer.Option(True, help="Random x-flips of the real images."),
    aug: str = typer.Option("ada", help="ada (adaptive augmentation, target 0.6) | noaug."),
    fid_images: int = typer.Option(10000, min=0, help="FID/KID at each snapshot on this many "
                                   "real and generated images, when NVIDIA's Inception "
                                   "detector is in the weights folder (0 = off)."),
    seed: int = typer.Option(0),
    device: str = DeviceOpt,
):
    """Train a StyleGAN2 with NVIDIA's recipe (non-saturating loss, lazy R1 and path-length
    regularisation, EMA, style mixing). Each snapshot is scored with a classifier two-sample test
    on held-out images (C2ST, 0.5 = indistinguishable) and FID/KID when available. Writes OUT/network-snapshot-*.safetensors (+ .json),
    OUT/fakes*.png, OUT/log.jsonl and OUT/state.pt; rerunning the command resumes exactly."""
    from .device import pick_device
    from .train.stylegan2 import train
    train(data, out, cfg=cfg, kimg=kimg, seed=seed, snap_kimg=snap, sample_kimg=sample_kimg,
          device=pick_device(device), xflip=mirror, batch=batch, channel_base=channel_base,
          channel_max=channel_max, map=map_layers, z_dim=z_dim, w_dim=w_dim, gamma=gamma,
          aug=aug, fid_images=fid_images)
    console.print(f"done: {out}")


data_app = typer.Typer(help="Training data: build datasets, inspect them.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("sample")
@user_errors
def data_sample(
    model: str = ModelOpt,
    n: int = typer.Option(50000, min=1, help="Number of images."),
    out: Path = typer.Option(Path("out/data/faces.zip"), help="Output .zip (dataset_tool layout)."),
    trunc: float = TruncOpt,
    seed_start: int = typer.Option(0, help="Image i uses seed seed_start + i."),
    batch: int = typer.Option(64, min=1),
    device: str = DeviceOpt,
):
    """Build a training set from a teacher generator: OUT.zip with 00000/img00000000.png ...
    and dataset.json (written atomically: a killed run leaves no half zip)."""
    from .data.sample import sample_dataset
    G = _load(model, device)["G"]
    path = sample_dataset(G, n, out, batch=batch, truncation_psi=trunc, seed_start=seed_start)
    console.print(f"wrote {n} images to {path}")


@data_app.command("info")
@user_errors
def data_info(path: Path = typer.Argument(..., help="Dataset folder or .zip."),
              resolution: int = typer.Option(64, help="Training resolution to check at.")):
    """Count images, check labels and read the first image at the training resolution."""
    from .data import ImageDataset
    ds = ImageDataset(path, resolution)
    img, c = ds[0]
    console.print(f"{path}: {len(ds)} images, {ds.c_dim} classes, first image "
                  f"{tuple(img.shape)} in [{img.min():.2f}, {img.max():.2f}]")


@app.command()
@user_errors
def demo(out: Path = typer.Option(Path("out/demo"), help="Report folder."),
         device: str = DeviceOpt):
    """Run the end-to-end showcase on the embedded models and write OUT/index.html."""
    from .demo import run_demo
    from .device import pick_device
    index = run_demo(out, pick_device(device))
    console.print(f"report: {index}")


def main():  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
