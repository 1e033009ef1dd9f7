"""`ganprior generate` and `ganprior mix`."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from . import validate
from .common import (ClassOpt, CutoffOpt, DeviceOpt, ModelOpt, NoiseOpt, StyleModelOpt, TruncOpt,
                     _default_model, _load, console, user_errors)


GRID_MAX = 256  # images in grid.png


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
    Images are written as each batch is made (a long run keeps what it wrote); grid.png shows
    the first 256. The latents (z and ws) are saved to OUT/latents.safetensors for later editing.
    """
    from safetensors.torch import save_file

    from ..files import atomic_write, atomic_write_text
    import numpy as np
    import torch

    from ..generate import generate_batches
    from ..images import grid, save_image

    seed_list = validate.seed_list(seeds)  # counted before it is expanded
    validate.truncation(trunc, trunc_cutoff)
    validate.integer(class_idx, "--class", optional=True)
    validate.integer(batch, "--batch", 1, validate.MAX_BATCH)
    validate.noise_mode(noise_mode)
    validate.out_dir(out)
    validate.device(device)
    G = _load(model, device)["G"]
    t0, shown, zs, wss = time.time(), [], [], []
    for chunk, images, z, ws in generate_batches(G, seed_list, trunc, trunc_cutoff, class_idx,
                                                 noise_mode, batch, progress=True):
        for s, img in zip(chunk, images):
            save_image(img, out / f"seed{s:04d}.png")
        shown += list(images[: max(0, GRID_MAX - len(shown))])
        zs.append(z)
        wss.append(ws)
    seconds = time.time() - t0
    save_image(grid(np.stack(shown)), out / "grid.png")
    z, ws = torch.cat(zs), torch.cat(wss)
    atomic_write(out / "latents.safetensors",
                 lambda tmp: save_file({"z": z.contiguous(), "ws": ws.contiguous()}, tmp))
    record = dict(model=model, seeds=seed_list, trunc=trunc, trunc_cutoff=trunc_cutoff,
                  class_idx=class_idx, noise_mode=noise_mode, seconds=round(seconds, 3),
                  z=z.tolist(), latents="latents.safetensors")
    atomic_write_text(out / "generate.json", json.dumps(record, allow_nan=False) + "\n")
    console.print(f"wrote {len(seed_list)} images, grid.png and generate.json to {out} "
                  f"({len(seed_list) / max(seconds, 1e-9):.1f} img/s)")


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
    from ..editing.mixing import style_mixing_grid
    from ..images import save_image

    r, c = validate.mix_grid(rows, cols)
    layer_list = validate.seed_list(layers, "--layers", limit=1024)
    validate.truncation(trunc, trunc_cutoff)
    validate.integer(class_idx, "--class", optional=True)
    validate.noise_mode(noise_mode)
    validate.out_dir(out)
    validate.device(device)
    model = model or _default_model(needs_w=True)
    G = _load(model, device)["G"]
    picture, mixed = style_mixing_grid(G, r, c, layer_list, trunc,
                                       trunc_cutoff, class_idx, noise_mode)
    for (rs, cs), img in mixed.items():
        save_image(img, out / f"{rs}-{cs}.png")
    save_image(picture, out / "mix.png")
    console.print(f"wrote mix.png and {len(mixed)} mixed images to {out}")
