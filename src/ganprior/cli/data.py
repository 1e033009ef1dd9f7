"""`ganprior data sample|info|scenes`."""
from __future__ import annotations

from pathlib import Path

import typer

from . import validate
from .common import DeviceOpt, ModelOpt, OutOpt, TruncOpt, _load, console, user_errors


data_app = typer.Typer(help="Training data: build datasets, inspect them.", no_args_is_help=True)


@data_app.command("sample")
@user_errors
def data_sample(
    model: str = ModelOpt,
    n: int = typer.Option(50000, min=1, help="Number of images."),
    out: Path = typer.Option(Path("out/data/faces.zip"), help="Output .zip (dataset_tool layout)."),
    trunc: float = TruncOpt,
    seed_start: int = typer.Option(0, help="Image i uses seed seed_start + i."),
    batch: int = typer.Option(64, min=1, help="Images generated per forward pass (memory vs "
                              "speed; the images do not depend on it)."),
    device: str = DeviceOpt,
):
    """Build a training set from a teacher generator: OUT.zip with 00000/img00000000.png ...
    and dataset.json (written atomically: a killed run leaves no half zip)."""
    from ..data.sample import sample_dataset
    validate.integer(n, "--n", 1, validate.MAX_SEED)
    validate.integer(seed_start, "--seed-start", 0, validate.MAX_SEED - n + 1)
    validate.integer(batch, "--batch", 1, validate.MAX_BATCH)
    validate.finite(trunc, "--trunc")
    validate.out_file(out)
    validate.device(device)
    G = _load(model, device)["G"]
    path = sample_dataset(G, n, out, batch=batch, truncation_psi=trunc, seed_start=seed_start)
    console.print(f"wrote {n} images to {path}")


@data_app.command("info")
@user_errors
def data_info(path: Path = typer.Argument(..., help="Dataset folder or .zip."),
              resolution: int = typer.Option(64, help="Training resolution to check at.")):
    """Count images, check labels, check every image's header (format, size limits; the bad
    ones are listed) and read the first image at the training resolution."""
    from ..data import ImageDataset
    validate.integer(resolution, "--resolution", 8, 8192)
    ds = ImageDataset(path, resolution)
    bad = ds.problems()
    for name, why in bad:
        console.print(f"bad: {name}: {why}", markup=False, highlight=False)
    if bad:
        name, why = bad[0]
        raise ValueError(f"{path}: {len(bad)} of {len(ds)} images cannot be used "
                         f"({name}: {why}{'; all listed above' if len(bad) > 1 else ''})")
    img, c = ds[0]
    console.print(f"{path}: {len(ds)} images, {ds.c_dim} classes, first image "
                  f"{tuple(img.shape)} in [{img.min():.2f}, {img.max():.2f}]")


@data_app.command("scenes")
@user_errors
def data_scenes(
    n: int = typer.Option(2000, help="Number of scenes."),
    size: int = typer.Option(128, help="Side in pixels (a multiple of 32, 32..1024)."),
    out: Path = OutOpt("out/data/scenes", help="Dataset folder: gets {phase}_label/, "
                       "{phase}_inst/, {phase}_img/ and scenes.json."),
    seed: int = typer.Option(0, help="Scene i is drawn from (seed, i) alone: the same seed "
                             "gives the same files."),
    phase: str = typer.Option("train", help="Folder prefix (train, test, val, ...)."),
):
    """Procedural street scenes for pix2pixHD: label maps (8 classes), Cityscapes-style
    instance maps and images, with per-instance colours, textures and windows, lighting and
    noise (docs/pix2pixhd.md)."""
    import time

    from ..data.scenes import check_options, write_scenes
    check_options(n, size, phase, seed)
    validate.out_dir(out)
    start = time.perf_counter()
    write_scenes(out, n, size=size, seed=seed, phase=phase)
    console.print(f"wrote {n} scenes of {size}x{size} to {out}/{phase}_label, {phase}_inst, "
                  f"{phase}_img in {time.perf_counter() - start:.1f} s", markup=False,
                  highlight=False)
