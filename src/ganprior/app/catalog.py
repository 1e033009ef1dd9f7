"""The models a studio client may open: zoo models by name, and checkpoint files found inside
the model folder (`ganprior serve --models DIR`).

A client names a model by the id the listing gave it ("zoo:NAME" or "file:REL/PATH"). A file
id is accepted only when it is a plain relative path (no `..`, not absolute, no backslashes),
resolves (symlinks followed) to a regular file inside the folder, and has a checkpoint suffix;
anything else is refused before a byte of it is read. Loaded generators are cached: sessions
share one copy of each model (they never change its weights).

Each choice says what it is for: "drag" (generators with a latent, the Drag tab) or "paint"
(pix2pixHD label-to-image models, the Paint tab), read from a native checkpoint's config
beside the weights without loading them. Feature-cluster files (NAME.clusters.safetensors)
belong to their model and are not listed.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..checkpoints.native import read_config
from ..errors import CheckpointError, GanpriorError

CHECKPOINT_SUFFIXES = (".pkl", ".pt", ".pth", ".safetensors")
MAX_LISTED = 200        # files listed from the model folder
MAX_DEPTH = 3           # folders below the model folder that are searched
MAX_ID_CHARS = 500
CLUSTERS_SUFFIX = ".clusters.safetensors"
PAINT_ARCHS = ("pix2pixhd-global", "pix2pixhd-local")


@dataclass(frozen=True)
class ModelChoice:
    id: str             # what the client sends back: "zoo:NAME" or "file:REL/PATH"
    label: str
    resolution: int | None
    arch: str | None
    available: str      # "ok" or why it cannot be loaded

    @property
    def kind(self) -> str:
        """"paint" for pix2pixHD models (label maps in), "drag" for the rest."""
        return "paint" if self.arch in PAINT_ARCHS else "drag"

    def as_json(self) -> dict:
        return {"id": self.id, "label": self.label, "resolution": self.resolution,
                "arch": self.arch, "available": self.available, "kind": self.kind}


def native_info(weights: Path) -> tuple[str | None, int | None]:
    """(G's arch, resolution) from the native config beside `weights` (NAME.json), or
    (None, None) when there is none or it cannot be read: the weights are not opened."""
    config = weights.with_suffix(".json")
    try:
        if not config.is_file():
            return None, None
        cfg = read_config(config)
        g = cfg["G"]
        arch = g["arch"] if isinstance(g["arch"], str) else None
        res = (g.get("kwargs") or {}).get("img_resolution")
        if res is None:  # pix2pixHD: the size it was trained at
            size = ((cfg.get("provenance") or {}).get("pix2pixhd") or {}).get("resolution")
            res = size[0] if isinstance(size, list) and size else None
        return arch, res if isinstance(res, int) else None
    except (CheckpointError, OSError, KeyError, TypeError, AttributeError):
        return None, None


class ModelCatalog:
    """Lists and loads the models a client may choose (see the module doc)."""

    def __init__(self, model_dir=None, device="cpu", load=None, load_paint=None):
        self.model_dir = Path(model_dir).resolve() if model_dir is not None else None
        if self.model_dir is not None and not self.model_dir.is_dir():
            raise GanpriorError(f"{model_dir}: the model folder does not exist")
        self.device = device
        self._load = load or _load_generator
        self._load_paint = load_paint or _load_pix2pixhd
        self._cache: dict[str, object] = {}
        self._paint_cache: dict[str, object] = {}
        self._lock = threading.Lock()

    def choices(self) -> list[ModelChoice]:
        """The zoo (StyleGAN2 models first: they drag best), then the folder's checkpoints."""
        from ..checkpoints.zoo import zoo_entries
        zoo = sorted(zoo_entries().values(), key=lambda e: (e.arch != "stylegan2", e.name))
        out = [ModelChoice(f"zoo:{e.name}", f"{e.name} (zoo, {e.resolution} px)", e.resolution,
                           e.arch, e.availability()) for e in zoo]
        for rel in self._folder_files():
            arch, res = native_info(self.model_dir / rel) if rel.endswith(".safetensors") \
                else (None, None)
            out.append(ModelChoice(f"file:{rel}", f"{rel} (file)", res, arch, "ok"))
        return out

    def _folder_files(self) -> list[str]:
        if self.model_dir is None:
            return []
        found = []
        for root, dirs, files in os.walk(self.model_dir):  # does not enter symlinked folders
            depth = len(Path(root).relative_to(self.model_dir).parts)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < MAX_DEPTH else []
            for name in sorted(files):
                rel = (Path(root) / name).relative_to(self.model_dir).as_posix()
                if name.lower().endswith(CHECKPOINT_SUFFIXES) \
                        and not name.endswith(CLUSTERS_SUFFIX) and self._inside(rel) is not None:
                    found.append(rel)
                if len(found) >= MAX_LISTED:
                    return found
        return found

    def _inside(self, rel: str) -> Path | None:
        """The real path of `rel` when it is a regular file inside the folder, else None."""
        try:
            real = (self.model_dir / rel).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        if not real.is_relative_to(self.model_dir) or not real.is_file():
            return None
        return real

    def resolve(self, model_id) -> str:
        """The spec `load_networks` takes for a client's model id; ValueError when refused."""
        if not isinstance(model_id, str) or not 0 < len(model_id) <= MAX_ID_CHARS:
            raise ValueError("model: give one of the ids /api/models lists")
        kind, _, name = model_id.partition(":")
        if kind == "zoo":
            from ..checkpoints.zoo import zoo_entries
            if name not in zoo_entries():
                raise ValueError(f"model {name!r} is not in the zoo (see /api/models)")
            return name
        if kind != "file":
            raise ValueError(f"model {model_id!r}: ids start with zoo: or file:")
        if self.model_dir is None:
            raise ValueError("this server has no model folder (start it with --models DIR)")
        rel = PurePosixPath(name)
        if (not name or "\\" in name or "\0" in name or rel.is_absolute()
                or any(part in ("..", "") for part in name.split("/"))):
            raise ValueError(f"model {name!r}: must be a path inside the model folder "
                             "(relative, without '..')")
        if not name.lower().endswith(CHECKPOINT_SUFFIXES):
            raise ValueError(f"model {name!r}: not a checkpoint file "
                             f"({', '.join(CHECKPOINT_SUFFIXES)})")
        real = self._inside(name)
        if real is None:
            raise ValueError(f"model {name!r}: no such file inside the model folder "
                             "(links out of the folder are refused)")
        return str(real)

    def load(self, model_id):
        """The generator of `model_id` (loaded once, then shared)."""
        spec = self.resolve(model_id)
        with self._lock:  # two tabs opening one model load it once
            if spec not in self._cache:
                self._cache[spec] = self._load(spec, self.device)
            return self._cache[spec]

    def load_paint(self, model_id):
        """The pix2pixHD model of `model_id` (synthesis.Pix2PixHDModel with its clusters;
        loaded once, then shared); CheckpointError when it is not one."""
        spec = self.resolve(model_id)
        with self._lock:
            if spec not in self._paint_cache:
                self._paint_cache[spec] = self._load_paint(spec, self.device)
            return self._paint_cache[spec]


def _load_generator(spec: str, device):
    from ..checkpoints import load_generator
    return load_generator(spec, device)


def _load_pix2pixhd(spec: str, device):
    from ..synthesis import load_pix2pixhd
    model = load_pix2pixhd(spec, device)
    model.G.eval().requires_grad_(False)
    if model.E is not None:
        model.E.eval().requires_grad_(False)
    return model
