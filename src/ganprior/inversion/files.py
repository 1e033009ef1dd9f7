"""Invert image files: folders, progress, resume after a kill, sharding across processes.

For every input STEM the output folder gets
    STEM.png           the reconstruction
    STEM_compare.png   target | reconstruction, side by side
    STEM.safetensors   the optimised parameters
    STEM.json          method, steps, seconds, loss, psnr, ssim, options, per-step history
STEM.json is written last (atomically): its presence marks the input as done, so a rerun
after a kill skips finished images. Under `torchrun --nproc_per_node K` each process takes
every K-th file; rank 0 writes summary.json once all are done.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from ..files import atomic_write, atomic_write_text
from ..images import IMAGE_SUFFIXES, grid, load_image, save_image, to_uint8
from .engine import invert



def list_inputs(inputs) -> list[Path]:
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    stems = [p.stem for p in files]
    dup = {s for s in stems if stems.count(s) > 1}
    if dup:
        raise ValueError(f"inputs share names, outputs would collide: {', '.join(sorted(dup))}")
    if not files:
        raise ValueError("no input images found")
    return files


def shard() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_done(out: Path, stem: str) -> bool:
    try:
        json.loads((out / f"{stem}.json").read_text())
        return True
    except (OSError, ValueError):
        return False


def write_outputs(out: Path, stem: str, target: torch.Tensor, result, i: int, record: dict):
    recon = to_uint8(result.images[i:i + 1])
    save_image(recon[0], out / f"{stem}.png")
    save_image(grid(np.concatenate([to_uint8(target), recon]), cols=2), out / f"{stem}_compare.png")
    tensors = {k: v[i].contiguous() for k, v in result.params.items()}
    atomic_write(out / f"{stem}.safetensors", lambda tmp: save_file(tensors, tmp))
    atomic_write_text(out / f"{stem}.json", json.dumps(record) + "\n")


def invert_files(G, inputs, out, make, steps=300, lr=0.03, loss="auto", seed=0, batch=1,
                 schedule="constant", patience=0, options=None, progress=True) -> list[dict]:
    """Invert every input not yet done; `make()` returns a fresh method object."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rank, world = shard()
    files = list_inputs(inputs)[rank::world]
    todo = [f for f in files if not is_done(out, f.stem)]
    records = []
    bar = tqdm(total=len(todo), desc=f"invert [{rank}/{world}]" if world > 1 else "invert",
               unit="img", disable=not progress)
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        targets = torch.cat([load_image(f, G.img_resolution, G.img_channels) for f in chunk])
        method = make()
        result = invert(G, targets, method, steps=steps, lr=lr, loss=loss, seed=seed,
                        schedule=schedule, patience=patience, progress=progress and batch == 1)
        for i, f in enumerate(chunk):
            record = {"input": str(f), "method": method.name, "batch": len(chunk), "rank": rank,
                      "options": options or {}, **result.image_record(i),
                      "seconds": result.seconds / len(chunk)}
            write_outputs(out, f.stem, targets[i:i + 1], result, i, record)
            records.append(record)
            bar.update(1)
    bar.close()
    if world > 1:
        _barrier()
    if rank == 0:
        write_summary(out, list_inputs(inputs))
    return records


def _barrier():
    """Wait for every rank (gloo works on CPU and GPU machines alike)."""
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()
    dist.destroy_process_group()


def write_summary(out: Path, files: list[Path]):
    rows = []
    for f in files:
        if is_done(out, f.stem):
            r = json.loads((out / f"{f.stem}.json").read_text())
            rows.append({k: r[k] for k in ("input", "method", "steps", "seconds", "loss", "psnr", "ssim")})
    if rows:
        summary = {"images": len(rows), "mean_psnr": float(np.mean([r["psnr"] for r in rows])),
                   "mean_ssim": float(np.mean([r["ssim"] for r in rows])),
                   "mean_seconds": float(np.mean([r["seconds"] for r in rows])), "per_image": rows}
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
