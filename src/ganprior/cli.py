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


def _load(model: str, device: str):
    from .checkpoints import load_networks
    from .device import pick_device
    return load_networks(model, pick_device(device))


@app.command()
@user_errors
def models():
    """List the embedded default models: resolution, latent spaces, source, availability."""
    from .checkpoints import zoo_entries
    table = Table("name", "arch", "res", "latent spaces", "status", "source")
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
    model: str = ModelOpt,
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
    dst: Path = typer.Argument(..., help="Output: NAME.safetensors (native, + NAME.json) or "
                               "NAME.pt (rosinality layout)."),
):
    """Convert a checkpoint between formats (NVIDIA .pkl / rosinality .pt -> native, etc.)."""
    from .checkpoints import save_networks
    nets = _load(src, "cpu")
    written = save_networks(nets, dst)
    console.print("wrote " + ", ".join(str(p) for p in written))


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
