"""Latent files a user can feed back to `generate --projected-w` and `mix`:

- NVIDIA's projector output `projected_w.npz` (key "w", [N, num_ws, w_dim]);
- `generate`'s and `mix`'s own `latents.safetensors` (key "ws", [N, num_ws, w_dim]);
- an inversion result OUT/STEM (STEM.safetensors + STEM.json, as `invert` and the
  restoration commands write), any method; a tuned result renders with its tuned generator;
- any safetensors file holding "w" ([k, w_dim] or [N, k, w_dim], k = 1 or num_ws).

`read_latents(path, G)` gives a `Latents`: one label per latent, the W+ codes when the latent
has them (what style mixing swaps) and a way to draw each latent, optionally with other W+
codes (a mix keeps everything else of its latent: padding maps, tuned generator).
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import GanpriorError
from .limits import check_regular_file, check_zip_members
from .nets.base import GeneratorBase

MAX_LATENTS = 100_000  # per file: each is rendered and kept in memory as one image
MAX_RECORD_BYTES = 256 << 20  # a JSON read beside a latent file (generate.json, STEM.json)


@dataclass
class Latents:
    """Latents read from a file: `labels[i]` names latent i (used for file names), `ws`
    [N, num_ws, w_dim] are its W+ codes (None for results that have none, e.g. mGANprior's
    composed codes), `G` the generator that draws them (a tuned copy for tuned results)."""
    path: Path
    kind: str                      # "nvidia-npz" | "latents" | "result" | "w"
    labels: list[str]
    ws: torch.Tensor | None
    G: GeneratorBase
    _draw: Callable = field(repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def render(self, index: int, ws: torch.Tensor | None = None,
               noise_mode: str = "const") -> torch.Tensor:
        """Image(s) of latent `index` [n, C, H, W] in [-1, 1]; with `ws` [n, num_ws, w_dim]
        its W+ codes are replaced by those (n images). `noise_mode` applies to plain W+
        latents; results are drawn as their method draws them (const noise)."""
        if ws is None and self.ws is None:
            return self._draw(index, None, noise_mode)
        if ws is None:
            ws = self.ws[index:index + 1]
        like = next(self.G.parameters())
        return self._draw(index, ws.to(like.device, like.dtype), noise_mode)

    def w_plus(self) -> torch.Tensor:
        """The W+ codes, or a one-line error for results that have none."""
        if self.ws is None:
            raise ValueError(f"{self.path}: a {self.kind} latent without W+ codes; style "
                             "mixing needs w, w+ or padinv latents")
        return self.ws


def _fail(path, why: str):
    raise ValueError(f"{path}: {why}")


def _check_ws(path, ws: torch.Tensor, G: GeneratorBase, what: str) -> torch.Tensor:
    """[N, k, w_dim] codes for G: finite, k = 1 (broadcast) or num_ws, at most MAX_LATENTS."""
    if "w" not in G.latent_spaces:
        _fail(path, f"holds W latents, but {G.arch} has no W space (only "
                    f"{', '.join(G.latent_spaces)})")
    if ws.ndim != 3 or ws.shape[1] not in (1, G.num_ws) or ws.shape[2] != G.w_dim:
        _fail(path, f"{what} has shape {list(ws.shape)}; this model takes "
                    f"[N, {G.num_ws}, {G.w_dim}] (or [N, 1, {G.w_dim}])")
    if not 1 <= ws.shape[0] <= MAX_LATENTS:
        _fail(path, f"{what} holds {ws.shape[0]} latents; 1 to {MAX_LATENTS:,} per file")
    if not torch.isfinite(ws).all():
        _fail(path, f"{what} holds NaN or infinite values")
    return ws.float().expand(-1, G.num_ws, -1).clone()


def _plain(path, kind: str, labels: list[str], ws: torch.Tensor, G) -> Latents:
    @torch.no_grad()
    def draw(i, w, noise_mode):
        return G.synthesize(w, noise_mode=noise_mode)
    return Latents(Path(path), kind, labels, ws, G, draw)


def _read_npz(path, G) -> Latents:
    try:
        with zipfile.ZipFile(path) as zf:
            check_zip_members(zf, str(path), max_member=1 << 30, max_total=1 << 30)
        with np.load(path, allow_pickle=False) as data:
            if "w" not in data.files:
                _fail(path, f"no array 'w' (NVIDIA's projected_w.npz has one); found "
                            f"{', '.join(data.files) or 'none'}")
            w = data["w"]
    except GanpriorError as e:  # a zip bomb or an over-large member
        _fail(path, str(e))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        if isinstance(e, ValueError) and str(e).startswith(str(path)):
            raise
        _fail(path, f"not a readable .npz file ({str(e).splitlines()[0] if str(e) else e})")
    if w.dtype.kind not in "fiu":
        _fail(path, f"'w' holds {w.dtype} values, not numbers")
    ws = _check_ws(path, torch.from_numpy(np.asarray(w, dtype=np.float32)), G, "'w'")
    return _plain(path, "nvidia-npz", [f"proj{i:02d}" for i in range(len(ws))], ws, G)


def _load_safetensors(path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        _fail(path, f"not a readable safetensors file ({str(e).splitlines()[0] if str(e) else e})")


def _seed_labels(path: Path, n: int) -> list[str]:
    """seedNNNN names from the generate.json beside generate's latents, else latentNNNN."""
    record, seeds = path.parent / "generate.json", None
    # only a regular file of sane size (generate.json holds every z: 100k seeds are ~1 GB)
    if record.is_file() and record.stat().st_size <= MAX_RECORD_BYTES:
        try:
            seeds = json.loads(record.read_text()).get("seeds")
        except (OSError, ValueError, AttributeError):
            seeds = None
    if isinstance(seeds, list) and len(seeds) == n and all(isinstance(s, int) for s in seeds):
        return [f"seed{s:04d}" for s in seeds]
    return [f"latent{i:04d}" for i in range(n)]


def _record_of(path: Path) -> tuple[Path, dict] | None:
    """(STEM path, record) when `path` names an inversion result, else None."""
    from .inversion.results import result_paths
    rec_path = result_paths(path)[0]
    stem = rec_path.with_suffix("")
    if not rec_path.is_file() or rec_path.stat().st_size > MAX_RECORD_BYTES:
        return None
    try:
        record = json.loads(rec_path.read_text())
    except (OSError, ValueError):
        return None
    return (stem, record) if isinstance(record, dict) and "method" in record else None


def _read_result(stem: Path, record: dict, G) -> Latents:
    """An inversion result, drawn by its method (with its tuned generator when it has one)."""
    from .inversion.results import load_result
    r = load_result(stem, G)
    params = {k: v.to(r.G.device) for k, v in r.params.items()}
    ws = params.get("w")
    if ws is not None:
        ws = _check_ws(stem, ws.detach().float(), r.G, "'w'")

    def draw(i, w, noise_mode):
        if w is None:
            return r.method.render(r.G, params)
        n = w.shape[0]
        p = {k: v.expand(n, *v.shape[1:]) for k, v in params.items()}
        p["w"] = w
        return r.method.render(r.G, p)
    return Latents(stem, "result", [stem.name], ws, r.G, torch.no_grad()(draw))


def read_latents(path, G: GeneratorBase) -> Latents:
    """Read a latent file for G (see the module docstring for the formats); every problem is
    a one-line ValueError naming the file."""
    path = Path(path)
    found = _record_of(path)
    if found is not None:
        return _read_result(*found, G)
    try:
        check_regular_file(path)
    except GanpriorError as e:
        raise ValueError(str(e)) from None
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        return _read_npz(path, G)
    tensors = _load_safetensors(path)
    if "ws" in tensors:
        ws = _check_ws(path, tensors["ws"], G, "'ws'")
        return _plain(path, "latents", _seed_labels(path, len(ws)), ws, G)
    if "w" in tensors:
        w = tensors["w"]
        ws = _check_ws(path, w[None] if w.ndim == 2 else w, G, "'w'")
        return _plain(path, "w", [path.stem] if len(ws) == 1 else
                      [f"{path.stem}{i:04d}" for i in range(len(ws))], ws, G)
    _fail(path, f"no latents found: expected 'ws' (generate, mix), 'w' (w/w+ results) or an "
                f"inversion result with its .json; it holds {', '.join(tensors) or 'nothing'}")
