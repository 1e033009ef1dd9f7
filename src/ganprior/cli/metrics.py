"""`ganprior metrics` and `ganprior fid`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..files import json_safe
from . import validate
from .common import DeviceOpt, _load, console, user_errors


@user_errors
def metrics(
    a: Path = typer.Argument(..., help="Image, or folder of images."),
    b: Path = typer.Argument(..., help="Image, or folder with images of the same names."),
    resolution: Optional[int] = typer.Option(None, show_default="no resize",
                                             help="Resize both to this size first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """PSNR, SSIM, MS-SSIM (and LPIPS when its weights are installed) between images.
    In folders, a pair that cannot be compared is listed at the end (exit 1); the others are
    still measured."""
    from ..metrics.files import compare_files
    validate.integer(resolution, "--resolution", 8, 8192, optional=True)
    failures: list = []
    rows = compare_files(a, b, resolution, failures=failures)
    if as_json:  # PSNR of identical images is +inf: null in JSON, which has no Infinity
        typer.echo(json.dumps(json_safe(rows), allow_nan=False))
    elif rows:
        keys = [k for k in rows[0] if k != "name"]
        table = Table("name", *keys)
        for r in rows:
            table.add_row(r["name"], *[f"{r[k]:.4f}" for k in keys])
        console.print(table)
    if failures:
        (name, why), n = failures[0], len(failures)
        more = f" (and {n - 1} more)" if n > 1 else ""
        raise ValueError(f"{n} of {n + len(rows)} pairs failed: {name}: {why}{more}")


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
    from ..device import pick_device
    from ..metrics import fid as F

    validate.integer(n, "--n", 2, 10_000_000)
    validate.integer(resolution, "--resolution", 8, 8192, optional=True)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED)
    dev = pick_device(device)
    detector = F.load_detector(dev)  # fails before any work when the detector is missing
    from ..data import ImageDataset
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
        typer.echo(json.dumps(json_safe(result), allow_nan=False))
    else:
        console.print(f"FID {result['fid']:.3f}  KID {result['kid']:.5f}  "
                      f"({result['n_real']} real, {result['n_fake']} generated, {resolution} px)")
