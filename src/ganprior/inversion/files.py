"""Invert image files: folders, progress, resume after a kill, sharding across processes.

For every input STEM the output folder gets
    STEM.png           the reconstruction
    STEM_compare.png   target | reconstruction, side by side
    STEM.safetensors   the optimised parameters
    STEM.json          method, steps, seconds, loss, psnr, ssim, options, per-step history,
                       and `made_from`: the input's and the model's SHA-256 and the settings
Restoration tasks (`task`, see restore/tasks.py) run through the same loop: the input becomes
an observation, the inversion goes through the task's degradation, the output is brought back
(observed luminance / known pixels kept), and the folder also gets STEM_observed.png; a
classical baseline replaces the inversion (no parameters file). `tune` adds generator
fine-tuning after the inversion (STEM_tuned.safetensors, the generator's delta).
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
import math
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ..distributed import rank_and_world
from ..errors import GanpriorError
from ..files import atomic_write, json_safe, write_json
from ..images import grid, load_image, save_image, to_uint8
from ..inputs import list_inputs
from ..progress import progress_bar
from ..metrics import ssim
from ..weights import sha256
from .engine import InversionResult, invert, quality

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
            (".png", "_compare.png", "_observed.png", ".safetensors", "_tuned.safetensors",
             ".json")]


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


def _at_model_size(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """An observation shown beside results of `resolution` px (low-res ones enlarged, nearest)."""
    if x.shape[-1] == resolution:
        return x
    return torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="nearest")


def write_outputs(out: Path, stem: str, shown: list[torch.Tensor], output: torch.Tensor,
                  params: dict, record: dict, observed=None, tuned=None):
    """One image's files; `shown` are the images before the output in STEM_compare.png
    (target, or observation [and baseline]), a clean reference may follow the output."""
    res = output.shape[-1]
    save_image(to_uint8(output)[0], out / f"{stem}.png")
    cells = [to_uint8(_at_model_size(x, res)) for x in shown[:1]] + [to_uint8(output)]
    cells += [to_uint8(x) for x in shown[1:]]
    save_image(grid(np.concatenate(cells), cols=len(cells)), out / f"{stem}_compare.png")
    if observed is not None:
        save_image(to_uint8(observed)[0], out / f"{stem}_observed.png")
    if params:
        tensors = {k: v[0].contiguous() for k, v in params.items()}
        atomic_write(out / f"{stem}.safetensors", lambda tmp: save_file(tensors, tmp))
    if tuned is not None:
        from .tuning import save_delta
        G_tuned, G_base, meta = tuned
        save_delta(out / f"{stem}_tuned.safetensors", G_tuned, G_base, meta)
    write_json(out / f"{stem}.json", json_safe(record))


def _quality(output: torch.Tensor, reference: torch.Tensor) -> tuple[float, float | None]:
    """(psnr, ssim or None below SSIM's window) of one image against another."""
    q_ssim = quality(output, reference, ssim).item()
    return quality(output, reference).item(), None if math.isnan(q_ssim) else q_ssim


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
                 force=False, task=None, tune=None, D=None) -> RunReport:
    """Invert every input not yet done; `make()` returns a fresh method object. `options`
    are the method's settings (recorded, and compared on a rerun). `task`: a restoration task
    (restore.tasks.Task); `tune`: {"kind": "pti"|"dgp", **settings} fine-tunes the generator
    on each image after its inversion (`D`: the discriminator DGP's feature loss uses)."""
    out = Path(out)
    all_files = list_inputs(inputs)
    refuse_overwriting(out, all_files)
    rank, world = rank_and_world()
    mine = list(enumerate(all_files))[rank::world]
    name = task.baseline if task is not None and task.baseline else make().name
    settings = dict(options or {}, method=name, steps=steps, lr=lr, loss=loss,
                    schedule=schedule, patience=patience)
    if task is not None:
        settings.update(task.settings())
    if tune is not None:
        settings["tune"] = dict(tune)
    report = RunReport()
    todo, mismatches = _plan(out, mine, seed, settings, model_fingerprint(G), force, report)
    if mismatches:
        more = f" and {len(mismatches) - 1} more" if len(mismatches) > 1 else ""
        raise ValueError(f"{out} has results made differently: {mismatches[0]}{more}; rerun "
                         "with --force to redo them, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    what = task.name if task is not None else "invert"
    bar = progress_bar(total=len(todo), desc=f"{what} [{rank}/{world}]" if world > 1 else what,
                       unit="img", enabled=progress)
    size = task.input_size(G.img_resolution) if task is not None else G.img_resolution
    for start in range(0, len(todo), batch):
        chunk, loaded = [], []
        for index, f, made_from in todo[start:start + batch]:
            try:
                loaded.append(load_image(f, size, G.img_channels))
                chunk.append((index, f, made_from))
            except (GanpriorError, ValueError, OSError) as e:
                report.failures.append((str(f), str(e)))
                bar.update(1)
        if not chunk:
            continue
        seeds = [seed + index for index, _, _ in chunk]
        run = _Chunk(G, torch.cat(loaded), seeds, task, make)
        run.solve(steps=steps, lr=lr, loss=loss, schedule=schedule, patience=patience,
                  progress=progress and batch == 1)
        for i, (index, f, made_from) in enumerate(chunk):
            tuned = run.tune(i, tune, D, loss, progress) if tune is not None else None
            record = {"input": str(f), "method": name, "batch": len(chunk), "rank": rank,
                      "options": options or {}, **run.record(i),
                      "seconds": run.seconds / len(chunk) + run.tuning.get(i, {}).get(
                          "tune_seconds", 0.0),
                      "made_from": made_from}
            if task is not None:
                record.update(task.settings())
                record["degradation"] = run.degradation.settings()
            write_outputs(out, f.stem, run.shown(i), run.outputs[i:i + 1], run.params(i),
                          record, observed=run.observed[i:i + 1] if task is not None else None,
                          tuned=tuned)
            report.records.append(record)
            bar.update(1)
    bar.close()
    if world > 1:
        _barrier()
    if rank == 0:
        write_summary(out, all_files, report.failures if world == 1 else None)
    return report


class _Chunk:
    """One batch of inputs through observation, inversion (or baseline), bring-back, tuning."""

    def __init__(self, G, loaded, seeds, task, make):
        self.G, self.seeds, self.task, self.make = G, seeds, task, make
        self.degradation, self.reference = None, None
        self.observed = loaded
        if task is not None:
            self.degradation = task.degradation(G.img_resolution, seeds)
            self.observed, self.reference = task.observe(loaded, self.degradation)
        self.result: InversionResult | None = None
        self.seconds, self.tuning = 0.0, {}

    def solve(self, **settings):
        task, G = self.task, self.G
        if task is not None and task.baseline:
            t0 = time.time()
            self.outputs = task.run_baseline(self.observed, self.degradation, G.img_resolution)
            self.seconds = time.time() - t0
            return
        self.method = self.make()
        self.result = invert(G, self.observed, self.method, seed=self.seeds,
                             degrade=self.degradation, reference=self.reference, **settings)
        self.seconds = self.result.seconds
        self.outputs = self.result.images
        if task is not None:
            self.outputs = self.degradation.bring_back(self.outputs.to(self.observed),
                                                       self.observed)

    def _one(self, i):
        """Image i's own degradation (its mask / noise seed), for one-image work."""
        return self.degradation.subset([i])

    def _scores(self, i, output) -> dict:
        """psnr/ssim of image i's `output`: against the clean reference when there is one,
        else how well it explains the observation (its degradation against the input)."""
        if self.reference is not None:
            p, s = _quality(output, self.reference[i:i + 1])
            return {"psnr": p, "ssim": s, "scored_against": "clean"}
        p, s = _quality(self._one(i)(output), self.observed[i:i + 1])
        return {"psnr": p, "ssim": s, "scored_against": "observation"}

    def tune(self, i, tune, D, loss, progress):
        """Fine-tune a copy of G on image i; its output replaces the fixed-G one."""
        from .tuning import tune as run_tuning
        one = self._one(i) if self.task is not None else None
        settings = {k: v for k, v in tune.items() if k != "kind"}
        ref = self.reference[i:i + 1] if self.reference is not None else None
        before = self._scores(i, self.outputs[i:i + 1]) if self.task is not None else {
            "psnr": self.result.psnr[i], "ssim": self.result.ssim[i]}
        r = run_tuning(self.G, self.observed[i:i + 1], self.method, self.params(i),
                       kind=tune["kind"], D=D, degrade=one, reference=ref, loss=loss,
                       seed=self.seeds[i], progress=progress, **settings)
        image = r.image.detach().cpu()
        out = image if one is None else one.bring_back(image, self.observed[i:i + 1])
        self.outputs = torch.cat([self.outputs[:i], out.to(self.outputs), self.outputs[i + 1:]])
        self.tuning[i] = {"tune": tune["kind"], "tune_settings": r.settings,
                          "tune_seconds": r.seconds, "before_tuning": before,
                          **({} if self.task is not None else {"psnr": r.psnr, "ssim": r.ssim})}
        for k, v in r.params.items():
            self.result.params[k][i] = v[0].detach().cpu()
        return r.G, self.G, {"kind": tune["kind"], "settings": r.settings}

    def params(self, i) -> dict:
        if self.result is None:
            return {}
        return {k: v[i:i + 1] for k, v in self.result.params.items()}

    def record(self, i) -> dict:
        if self.result is not None:
            rec = self.result.image_record(i)
        else:
            rec = {"loss": None, "steps": 0, "seed": self.seeds[i], "history": []}
        if self.task is not None and (self.reference is not None or self.result is None):
            rec.update(self._scores(i, self.outputs[i:i + 1]))
        elif self.task is not None:
            rec["scored_against"] = "observation"
        rec.update(self.tuning.get(i, {}))
        return rec

    def shown(self, i) -> list[torch.Tensor]:
        first = self.observed[i:i + 1]
        return [first] + ([self.reference[i:i + 1]] if self.reference is not None else [])


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
