"""Invert image files: folders, progress, resume after a kill, sharding across processes.

For every input STEM the output folder gets
    STEM.png           the reconstruction
    STEM_compare.png   target | reconstruction, side by side
    STEM.safetensors   the optimised parameters
    STEM.json          method, steps, seconds, loss, psnr, ssim, options, per-step history,
                       and `made_from`: the input's and the model's SHA-256 and the settings
STEM.json is written last (atomically): its presence marks the input as done. A rerun skips
an input only when its STEM.json was made from the same input file, model and settings;
a result made differently is an error naming what differs (`force=True` redoes it). Image i
of the input list starts from seed `seed + i`, whatever the batch or the process, so results
do not depend on how the work was split. Under `torchrun --nproc_per_node K` each process
takes every K-th file; rank 0 writes summary.json once all are done. An input that cannot be
read is listed in `failures` and the others go on.
"""
from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from ..distributed import rank_and_world
from ..errors import GanpriorError
from ..files import atomic_write, json_safe, write_json
from ..images import grid, load_image, save_image, to_uint8
from ..inputs import list_inputs
from ..weights import sha256
from .engine import invert

__all__ = ["invert_files", "list_inputs", "output_paths", "RunReport"]

# settings recorded for information only: they do not change the result
_NOT_RESULT_SETTINGS = ("model", "batch", "device")


@dataclass
class RunReport:
    records: list[dict] = field(default_factory=list)   # one per image inverted in this run
    skipped: int = 0                                     # already done with the same settings
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, why)


def output_paths(out: Path, stem: str) -> list[Path]:
    return [out / f"{stem}{suffix}" for suffix in
            (".png", "_compare.png", ".safetensors", ".json")]


def refuse_overwriting(out: Path, files: list[Path]):
    """--out must be a folder of its own: not an input, not a folder of inputs, and no
    output may land on an input file."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; it must be a folder")
    target = out.resolve()
    inputs = {f.resolve() for f in files}
    if target in {f.parent for f in inputs}:
        raise ValueError(f"--out {out} holds input images: results would be mixed with them "
                         "(and could overwrite them); choose another folder")
    for f in files:
        for p in output_paths(target, f.stem) + [target / "summary.json"]:
            if p in inputs:
                raise ValueError(f"writing {p} would overwrite the input {p}; choose another --out")


def model_fingerprint(G) -> str:
    """SHA-256 of the generator's parameters and buffers: the same weights give the same
    fingerprint whatever file format they came from."""
    h = hashlib.sha256()
    for name, t in sorted(G.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _differences(old: dict, new: dict) -> list[str]:
    diffs = []
    if old.get("input_sha256") != new["input_sha256"]:
        diffs.append("the input image changed")
    if old.get("model_sha256") != new["model_sha256"]:
        diffs.append("another model")
    a, b = old.get("settings", {}), new["settings"]
    for k in sorted(set(a) | set(b)):
        if k not in _NOT_RESULT_SETTINGS and a.get(k) != b.get(k):
            diffs.append(f"{k} {a.get(k)} -> {b.get(k)}")
    return diffs


def previous_result(out: Path, stem: str) -> dict | None:
    try:
        return json.loads((out / f"{stem}.json").read_text())
    except (OSError, ValueError):
        return None


def write_outputs(out: Path, stem: str, target: torch.Tensor, result, i: int, record: dict):
    recon = to_uint8(result.images[i:i + 1])
    save_image(recon[0], out / f"{stem}.png")
    save_image(grid(np.concatenate([to_uint8(target), recon]), cols=2), out / f"{stem}_compare.png")
    tensors = {k: v[i].contiguous() for k, v in result.params.items()}
    atomic_write(out / f"{stem}.safetensors", lambda tmp: save_file(tensors, tmp))
    write_json(out / f"{stem}.json", json_safe(record))


def _plan(out, files, seed, settings, model_sha, force, report):
    """(todo [(index, file, made_from)], mismatches [one-line reasons]) for this process."""
    todo, mismatches = [], []
    for index, f in files:
        if not stat.S_ISREG(f.stat().st_mode):
            report.failures.append((str(f), "not a regular file"))
            continue
        made_from = {"input_sha256": sha256(f), "model_sha256": model_sha,
                     "settings": dict(settings, seed=seed + index)}
        old = previous_result(out, f.stem)
        if old is not None and not force:
            diffs = _differences(old.get("made_from", {}), made_from)
            if not diffs:
                report.skipped += 1
                continue
            mismatches.append(f"{f.stem} ({', '.join(diffs)})")
        todo.append((index, f, made_from))
    return todo, mismatches


def invert_files(G, inputs, out, make, steps=300, lr=0.03, loss="auto", seed=0, batch=1,
                 schedule="constant", patience=0, options=None, progress=True,
                 force=False) -> RunReport:
    """Invert every input not yet done; `make()` returns a fresh method object. `options`
    are the method's settings (recorded, and compared on a rerun)."""
    out = Path(out)
    all_files = list_inputs(inputs)
    refuse_overwriting(out, all_files)
    rank, world = rank_and_world()
    mine = list(enumerate(all_files))[rank::world]
    settings = dict(options or {}, method=make().name, steps=steps, lr=lr, loss=loss,
                    schedule=schedule, patience=patience)
    report = RunReport()
    todo, mismatches = _plan(out, mine, seed, settings, model_fingerprint(G), force, report)
    if mismatches:
        more = f" and {len(mismatches) - 1} more" if len(mismatches) > 1 else ""
        raise ValueError(f"{out} has results made differently: {mismatches[0]}{more}; rerun "
                         "with --force to redo them, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc=f"invert [{rank}/{world}]" if world > 1 else "invert",
               unit="img", disable=not progress)
    for start in range(0, len(todo), batch):
        chunk, targets = [], []
        for index, f, made_from in todo[start:start + batch]:
            try:
                targets.append(load_image(f, G.img_resolution, G.img_channels))
                chunk.append((index, f, made_from))
            except (GanpriorError, ValueError, OSError) as e:
                report.failures.append((str(f), str(e)))
                bar.update(1)
        if not chunk:
            continue
        targets = torch.cat(targets)
        method = make()
        result = invert(G, targets, method, steps=steps, lr=lr, loss=loss,
                        seed=[seed + index for index, _, _ in chunk], schedule=schedule,
                        patience=patience, progress=progress and batch == 1)
        for i, (index, f, made_from) in enumerate(chunk):
            record = {"input": str(f), "method": method.name, "batch": len(chunk), "rank": rank,
                      "options": options or {}, **result.image_record(i),
                      "seconds": result.seconds / len(chunk), "made_from": made_from}
            write_outputs(out, f.stem, targets[i:i + 1], result, i, record)
            report.records.append(record)
            bar.update(1)
    bar.close()
    if world > 1:
        _barrier()
    if rank == 0:
        write_summary(out, all_files, report.failures if world == 1 else None)
    return report


def _barrier():
    """Wait for every rank (gloo works on CPU and GPU machines alike)."""
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()
    dist.destroy_process_group()


def write_summary(out: Path, files: list[Path], failures=None):
    rows = []
    for f in files:
        r = previous_result(out, f.stem)
        if r is not None:
            rows.append({k: r.get(k) for k in ("input", "method", "steps", "seconds", "loss",
                                               "psnr", "ssim")})
    if not rows and not failures:
        return
    finite = lambda key: [r[key] for r in rows if r[key] is not None]  # noqa: E731
    summary = {"images": len(rows),
               "mean_psnr": float(np.mean(finite("psnr"))) if finite("psnr") else None,
               "mean_ssim": float(np.mean(finite("ssim"))) if finite("ssim") else None,
               "mean_seconds": float(np.mean(finite("seconds"))) if rows else None,
               "per_image": rows}
    if failures:
        summary["failed"] = [{"input": f, "error": why} for f, why in failures]
    write_json(out / "summary.json", json_safe(summary), indent=1)
