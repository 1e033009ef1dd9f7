"""Instance feature clusters (pix2pixHD's `encode_features.py`): run the trained encoder over the
training set, take one mean feature per instance larger than `min_area` of the image, and
k-means them per class. At synthesis time each instance gets one cluster centre of its class:
picked (`--cluster car=3`), drawn at random, or by default cluster 0.

Clusters are numbered by size, largest first, so cluster 0 is a class's most common look.
They are stored next to the model's weights as NAME.clusters.safetensors: tensors
`class{C}.centres` [K, F] and `class{C}.counts` [K], and the JSON meta (feature length, the
options, instances per class, the SHA-256 of the weights they were computed with) in the
file's header, so one atomic file holds it all and an old file cannot pass for a new model's.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from ..files import atomic_write
from ..progress import progress_bar

FORMAT = "ganprior-pix2pixhd-clusters"
SUFFIX = ".clusters.safetensors"
MAX_CLUSTERS = 1000
KMEANS_N_INIT = 10


@dataclass
class Clusters:
    centres: dict[int, torch.Tensor]   # class -> [K, feat_num], largest cluster first
    counts: dict[int, torch.Tensor]    # class -> [K] instances in each cluster
    meta: dict

    def n(self, c: int) -> int:
        """Clusters of class c (0 when none: no training instance was large enough)."""
        return int(self.centres[c].shape[0]) if c in self.centres else 0


def clusters_path(weights) -> Path:
    """NAME.clusters.safetensors for NAME.safetensors."""
    w = Path(weights)
    stem = w.name[: -len(".safetensors")] if w.name.endswith(".safetensors") else w.name
    return w.with_name(stem + SUFFIX)


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def instance_features(pixel_features: torch.Tensor, inst: torch.Tensor, label: torch.Tensor,
                      label_nc: int):
    """Per instance of a batch: (mean feature [M, F], class [M], area as a share of its image
    [M]). The class is the majority label inside the instance, so any id encoding works."""
    n, f, h, w = pixel_features.shape
    ids = inst.reshape(n, h * w).long()
    ids = ids - ids.min()
    keys = ids + torch.arange(n, device=ids.device)[:, None] * (ids.max() + 1)
    _, segment = torch.unique(keys.reshape(-1), return_inverse=True)
    m = int(segment.max()) + 1
    flat = pixel_features.permute(1, 0, 2, 3).reshape(f, n * h * w).float()
    sums = flat.new_zeros(f, m).index_add_(1, segment, flat)
    sizes = torch.bincount(segment, minlength=m)
    votes = torch.bincount(segment * label_nc + label.reshape(-1).long(),
                           minlength=m * label_nc).reshape(m, label_nc)
    return (sums / sizes.to(flat.dtype)).t(), votes.argmax(1), sizes.double() / (h * w)


def cluster_features(per_class: dict[int, np.ndarray], n_clusters: int = 10, seed: int = 0,
                     n_init: int = KMEANS_N_INIT) -> tuple[dict, dict]:
    """k-means per class (scikit-learn, n_init fixed, seeded): ({class: centres [K, F]},
    {class: counts [K]}) with K = min(n_clusters, instances), clusters sorted largest first."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits
    centres, counts = {}, {}
    for c, feats in sorted(per_class.items()):
        if len(feats) == 0:
            continue
        k = min(n_clusters, len(feats))
        # one thread: a few thousand 3-D points need no more, the result does not depend on
        # the machine's core count, and a shared machine is not oversubscribed
        with threadpool_limits(limits=1):
            km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(feats)
        sizes = np.bincount(km.labels_, minlength=k)
        order = sorted(range(k), key=lambda i: (-sizes[i], tuple(km.cluster_centers_[i])))
        centres[c] = torch.tensor(km.cluster_centers_[order], dtype=torch.float32)
        counts[c] = torch.tensor(sizes[order], dtype=torch.int64)
    return centres, counts


@torch.no_grad()
def collect_features(E, dataset, label_nc: int, min_area: float, device="cpu", batch: int = 8,
                     progress: bool = True) -> tuple[dict[int, np.ndarray], int]:
    """({class: [instances, F] mean features of instances with area > min_area}, images)."""
    found: dict[int, list] = {}
    idx = list(range(len(dataset)))
    bar = progress_bar(total=len(idx), desc="encode features", unit="img", enabled=progress)
    for start in range(0, len(idx), batch):
        items = [dataset[i] for i in idx[start:start + batch]]
        image = torch.stack([it["image"] for it in items]).to(device)
        inst = torch.stack([it["inst"] for it in items]).to(device)
        label = torch.stack([it["label"] for it in items]).to(device)
        feats, classes, areas = instance_features(E.pixel_features(image), inst, label, label_nc)
        keep = areas > min_area
        for f, c in zip(feats[keep].cpu().numpy(), classes[keep].tolist()):
            found.setdefault(int(c), []).append(f)
        bar.update(len(items))
    bar.close()
    return {c: np.stack(v).astype(np.float64) for c, v in found.items()}, len(idx)


def save_clusters(path, centres: dict, counts: dict, meta: dict) -> Path:
    """One safetensors file, meta JSON in its header; written atomically."""
    from safetensors.torch import save_file
    tensors = {}
    for c in centres:
        tensors[f"class{c}.centres"] = centres[c].contiguous()
        tensors[f"class{c}.counts"] = counts[c].contiguous()
    if not tensors:  # safetensors needs one tensor; an empty table still says "encoded"
        tensors["none"] = torch.zeros(0)
    header = {"format": FORMAT, "meta": json.dumps(meta, allow_nan=False)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def load_clusters(path, model=None) -> Clusters:
    """Read and check a clusters file (against `model`: feature length, classes, weights
    hash). CheckpointError, one line, when it is not usable."""
    from safetensors import SafetensorError, safe_open
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable clusters file ({e})")
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a pix2pixHD clusters file")
    try:
        meta = json.loads(header.get("meta", ""))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: unreadable meta ({e})")
    feat_num = model.feat_num if model is not None else meta.get("feat_num")
    label_nc = model.label_nc if model is not None else 1 << 16
    centres, counts = {}, {}
    for key, t in tensors.items():
        if key == "none":
            continue
        name, _, part = key.partition(".")
        if not (name.startswith("class") and name[5:].isdigit()
                and part in ("centres", "counts")):
            raise CheckpointError(f"{path}: unexpected entry {key!r}")
        c = int(name[5:])
        if c >= label_nc:
            raise CheckpointError(f"{path}: clusters for class {c}, but the model has "
                                  f"{label_nc} classes")
        (centres if part == "centres" else counts)[c] = t
    for c, t in centres.items():
        if t.ndim != 2 or t.shape[1] != feat_num or not 1 <= t.shape[0] <= MAX_CLUSTERS \
                or c not in counts or counts[c].shape != (t.shape[0],) \
                or not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: class {c}'s clusters are not [K, {feat_num}] "
                                  f"finite centres with their counts")
    if model is not None and model.weights is not None and meta.get("model_sha256"):
        if model.weights.exists() and file_sha256(model.weights) != meta["model_sha256"]:
            raise CheckpointError(f"{path}: computed for other weights than "
                                  f"{model.weights.name}; rerun `ganprior encode-features`")
    return Clusters(centres, counts, meta)


def encode_features(model, data, n_clusters: int = 10, min_area: float = 1 / 64,
                    seed: int = 0, progress: bool = True) -> tuple[Path, Clusters]:
    """Cluster the instance features of the training set `data` (the layout the model was
    trained on) with the model's encoder; writes and returns the clusters file beside the
    model's weights. `model` is a loaded Pix2PixHDModel."""
    from ..data.paired import Layout, PairedDataset
    if model.E is None or not model.feat_num:
        raise ValueError(f"{model.name}: the model was trained without instance features "
                         "(--features); there is nothing to encode")
    if model.weights is None or not model.weights.exists():
        raise ValueError(f"{model.name}: encode-features writes beside the model's weights; "
                         "pass the checkpoint file or run folder")
    if not (isinstance(n_clusters, int) and 1 <= n_clusters <= MAX_CLUSTERS):
        raise ValueError(f"--clusters must be an integer from 1 to {MAX_CLUSTERS}, "
                         f"not {n_clusters!r}")
    if not 0 <= min_area < 1:
        raise ValueError(f"--min-area must be a share of the image in [0, 1), not {min_area}")
    training = model.provenance.get("training") or {}
    dataset = PairedDataset(Layout(Path(data), model.label_nc, instance=True),
                            training.get("resize", "none"), training.get("load_size"), None,
                            model.size_multiple, flip=False, check=True, progress=progress)
    per_class, images = collect_features(model.E, dataset, model.label_nc, min_area,
                                         model.device, progress=progress)
    centres, counts = cluster_features(per_class, n_clusters, seed)
    meta = {"feat_num": model.feat_num, "n_clusters": n_clusters, "min_area": min_area,
            "seed": seed, "n_init": KMEANS_N_INIT, "images": images, "data": str(data),
            "instances": {model.class_name(c): len(v) for c, v in sorted(per_class.items())},
            "clusters": {model.class_name(c): int(t.shape[0]) for c, t in centres.items()},
            "model": model.weights.name, "model_sha256": file_sha256(model.weights)}
    path = save_clusters(clusters_path(model.weights), centres, counts, meta)
    clusters = Clusters(centres, counts, meta)
    model.clusters = clusters
    return path, clusters
