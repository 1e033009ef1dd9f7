"""A trained pix2pixHD model for synthesis: its generator, encoder, what its inputs mean
(classes, feature length, size multiple) and its feature clusters, loaded by name or path.

    model = load_pix2pixhd("out/train/pix2pixhd")            # a run folder: newest snapshot
    model = load_pix2pixhd("run/pix2pixhd-epoch0200.safetensors")
    model = load_pix2pixhd("pix2pixhd-scenes128")            # the embedded model (a zoo name)

Loading goes through `checkpoints.load_networks`, so zoo names work as soon as the zoo lists
one; the clusters file (`encode-features`) is NAME.clusters.safetensors next to the weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError

PIX2PIXHD_ARCHS = ("pix2pixhd-global", "pix2pixhd-local")


@dataclass
class Pix2PixHDModel:
    G: torch.nn.Module
    E: torch.nn.Module | None
    info: dict                 # provenance["pix2pixhd"]: label_nc, classes, feat_num, ...
    weights: Path | None       # the .safetensors file (where the clusters file lives)
    name: str
    clusters: object | None = None  # synthesis.clusters.Clusters
    provenance: dict = field(default_factory=dict)

    @property
    def label_nc(self) -> int:
        return int(self.info["label_nc"])

    @property
    def feat_num(self) -> int:
        return int(self.info.get("feat_num") or 0)

    @property
    def instance(self) -> bool:
        return bool(self.info.get("instance", True))

    @property
    def size_multiple(self) -> int:
        return int(self.info.get("size_multiple") or self.G.size_multiple)

    @property
    def classes(self) -> list[str] | None:
        return self.info.get("classes")

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    def class_name(self, c: int) -> str:
        return self.classes[c] if self.classes else str(c)

    def class_id(self, name) -> int:
        """A class given by name (the dataset's classes) or id, checked; ValueError otherwise."""
        text = str(name).strip()
        if text.isdigit():
            c = int(text)
            if c >= self.label_nc:
                raise ValueError(f"class {c} is outside 0..{self.label_nc - 1}")
            return c
        if not self.classes:
            raise ValueError(f"unknown class {text!r}: this model has no class names; use a "
                             f"class id 0..{self.label_nc - 1}")
        if text not in self.classes:
            raise ValueError(f"unknown class {text!r} (classes: {', '.join(self.classes)})")
        return self.classes.index(text)


def _weights_file(spec: str) -> Path | None:
    from ..checkpoints import zoo_entries
    from ..checkpoints.native import native_paths
    zoo = zoo_entries()
    if spec in zoo:
        try:
            return native_paths(zoo[spec].locate())[0]
        except (CheckpointError, TypeError, ValueError):
            return None
    return native_paths(spec)[0]


def resolve_model_path(spec) -> str:
    """A run folder (with pix2pixhd-epochNNNN snapshots) -> its newest snapshot; anything else
    (zoo name, checkpoint file) as is."""
    from ..train.pix2pixhd import SNAPSHOT_PREFIX, latest_snapshot
    p = Path(str(spec))
    if p.is_dir() and (any(p.glob(f"{SNAPSHOT_PREFIX}*.safetensors")) or (p / "state.pt").exists()):
        try:
            return str(latest_snapshot(p))
        except FileNotFoundError as e:
            raise CheckpointError(str(e))
    return str(spec)


def load_pix2pixhd(spec, device="cpu", clusters: bool = True) -> Pix2PixHDModel:
    """The pix2pixHD model `spec` (zoo name, checkpoint file or training run folder) on
    `device`, with its feature clusters when `clusters` and the file exists. CheckpointError
    (one line) when it is not a pix2pixHD model or its clusters do not belong to it."""
    from ..checkpoints import load_networks
    path = resolve_model_path(spec)
    nets = load_networks(path, device=device)
    G = nets["G"]
    if getattr(G, "arch", None) not in PIX2PIXHD_ARCHS:
        raise CheckpointError(f"{spec}: not a pix2pixHD model (its generator is "
                              f"{getattr(G, 'arch', type(G).__name__)})")
    prov = nets["meta"].get("provenance") or {}
    info = prov.get("pix2pixhd")
    if not isinstance(info, dict) or not isinstance(info.get("label_nc"), int):
        raise CheckpointError(f"{spec}: its config does not say what its inputs are "
                              "(provenance.pix2pixhd with label_nc)")
    from ..nets.pix2pixhd import generator_input_nc
    want = generator_input_nc(info["label_nc"], bool(info.get("instance", True)),
                              int(info.get("feat_num") or 0))
    if G.input_nc != want:
        raise CheckpointError(f"{spec}: its generator takes {G.input_nc} channels, but its "
                              f"provenance describes {want}")
    E = nets.get("E")
    if int(info.get("feat_num") or 0) and E is None:
        raise CheckpointError(f"{spec}: the model uses instance features but has no encoder")
    model = Pix2PixHDModel(G, E, info, _weights_file(path), nets["meta"].get("name", str(spec)),
                           provenance=prov)
    if clusters and model.weights is not None:
        from .clusters import clusters_path, load_clusters
        cpath = clusters_path(model.weights)
        if cpath.exists():
            model.clusters = load_clusters(cpath, model)
    return model
