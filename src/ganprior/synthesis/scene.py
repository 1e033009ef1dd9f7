"""Label map (+ instance map) -> image with a trained pix2pixHD model, with per-instance
control of the appearance through the feature clusters.

    image, record = synthesize_scene(model, label, inst, clusters={"car": 3})

Each instance's feature is one cluster centre of its class: the one named for the instance
(`instance_clusters={6002: 1}`), else for its class (`clusters={"car": 3}`), else a random
cluster (`random_features=True`, drawn from `seed`; every instance draws, fixed or not, so
fixing one instance does not change the others' draws), else cluster 0 (the class's most
common look). Classes without clusters get the zero feature.
"""
from __future__ import annotations

import numpy as np
import torch

from ..nets.pix2pixhd import make_input

MAX_SIDE = 4096


def _as_ids(a, what: str) -> torch.Tensor:
    """[H, W], [1, H, W] or [1, 1, H, W] integer ids -> int64 [1, 1, H, W]."""
    t = torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
    while t.ndim < 4:
        t = t[None]
    if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] != 1:
        raise ValueError(f"the {what} must be one map [H, W], not {list(t.shape)}")
    if t.is_floating_point() and bool((t != t.round()).any()):
        raise ValueError(f"the {what} holds non-integer values")
    return t.long()


def check_size(model, h: int, w: int, what: str = "the label map"):
    m = model.size_multiple
    res = model.info.get("resolution")
    trained = f"; it was trained at {res[0]}x{res[1]}" if res else ""
    if h % m or w % m:
        raise ValueError(f"{what} is {w}x{h}: this model needs sides that are multiples of "
                         f"{m}{trained}")
    if max(h, w) > MAX_SIDE:
        raise ValueError(f"{what} is {w}x{h}: sides are limited to {MAX_SIDE}")


def instances_from_labels(label: torch.Tensor, things) -> torch.Tensor:
    """An instance map when none is given: "thing" classes split into connected regions
    (class * 1000 + k, as the procedural scenes), every other class one instance (its id)."""
    from scipy import ndimage
    lab = label[0, 0].cpu().numpy()
    inst = lab.astype(np.int64).copy()
    for c in things:
        regions, n = ndimage.label(lab == c)
        inst[regions > 0] = c * 1000 + regions[regions > 0] - 1
    return torch.from_numpy(inst)[None, None].to(label.device)


def _instance_classes(label: torch.Tensor, inst: torch.Tensor, label_nc: int) -> dict[int, int]:
    """{instance id: majority class inside it}."""
    ids, seg = torch.unique(inst.reshape(-1), return_inverse=True)
    votes = torch.bincount(seg * label_nc + label.reshape(-1), minlength=len(ids) * label_nc)
    classes = votes.reshape(len(ids), label_nc).argmax(1)
    return {int(i): int(c) for i, c in zip(ids.tolist(), classes.tolist())}


def choose_clusters(model, inst_classes: dict[int, int], clusters=None, instance_clusters=None,
                    random_features: bool = False, seed: int = 0) -> dict[int, int | None]:
    """{instance id: cluster index or None (its class has no clusters)}; ValueError for an
    unknown class, an instance not in the map or a cluster index out of range."""
    table = model.clusters
    by_class = {model.class_id(k): int(v) for k, v in (clusters or {}).items()}
    by_inst = {int(k): int(v) for k, v in (instance_clusters or {}).items()}
    for i in by_inst:
        if i not in inst_classes:
            raise ValueError(f"instance {i} is not in the instance map (ids: "
                             f"{', '.join(map(str, sorted(inst_classes)[:20]))})")
    for what, c, k in [(f"class {model.class_name(c)}", c, k) for c, k in by_class.items()] + \
                      [(f"instance {i} ({model.class_name(inst_classes[i])})", inst_classes[i], k)
                       for i, k in by_inst.items()]:
        n = table.n(c)
        if n == 0:
            raise ValueError(f"{what}: class {model.class_name(c)} has no feature clusters "
                             f"(no training instance was large enough)")
        if not 0 <= k < n:
            raise ValueError(f"{what}: cluster {k} is out of range 0..{n - 1}")
    rng = np.random.default_rng(seed)
    chosen = {}
    for i in sorted(inst_classes):
        c = inst_classes[i]
        n = table.n(c)
        drawn = int(rng.integers(n)) if n else None  # drawn for every instance: stable draws
        if n == 0:
            chosen[i] = None
        elif i in by_inst:
            chosen[i] = by_inst[i]
        elif c in by_class:
            chosen[i] = by_class[c]
        else:
            chosen[i] = drawn if random_features else 0
    return chosen


def feature_map(model, inst: torch.Tensor, inst_classes: dict, chosen: dict) -> torch.Tensor:
    """[1, F, H, W]: every instance's pixels hold its chosen cluster centre (zeros: none)."""
    ids = sorted(inst_classes)
    table = torch.zeros(len(ids), model.feat_num, device=inst.device)
    for row, i in enumerate(ids):
        if chosen[i] is not None:
            table[row] = model.clusters.centres[inst_classes[i]][chosen[i]].to(inst.device)
    index = torch.searchsorted(torch.tensor(ids, device=inst.device), inst.reshape(-1))
    h, w = inst.shape[2:]
    return table[index].t().reshape(1, model.feat_num, h, w)


@torch.no_grad()
def synthesize_scene(model, label, inst=None, clusters: dict | None = None,
                     instance_clusters: dict | None = None, random_features: bool = False,
                     seed: int = 0, image=None) -> tuple[torch.Tensor, dict]:
    """(image [1, 3, H, W] in [-1, 1], record) for one label map with `model` (a loaded
    Pix2PixHDModel). `label`: class ids [H, W]; `inst`: instance ids of the same size (None:
    made from the labels, see `instances_from_labels`). `clusters` {class name or id: k},
    `instance_clusters` {instance id: k}, `random_features` and `seed` choose the instance
    features (module docstring); `image` (a real image [1, 3, H, W] in [-1, 1]) takes them
    from that image through the encoder instead. The record says each instance's class and
    cluster. ValueError for bad maps, classes or clusters."""
    dev = model.device
    label = _as_ids(label, "label map").to(dev)
    h, w = label.shape[2:]
    check_size(model, h, w)
    lo, hi = int(label.min()), int(label.max())
    if lo < 0 or hi >= model.label_nc:
        bad = lo if lo < 0 else hi
        raise ValueError(f"the label map holds class {bad}, outside this model's "
                         f"0..{model.label_nc - 1}")
    things = [model.class_id(t) for t in model.info.get("things") or []]
    made_inst = inst is None
    if made_inst:
        inst = instances_from_labels(label, things)
    else:
        inst = _as_ids(inst, "instance map").to(dev)
    if inst.shape != label.shape:
        raise ValueError(f"the instance map is {inst.shape[3]}x{inst.shape[2]}, the label map "
                         f"{w}x{h}")
    if int(inst.min()) < 0:
        raise ValueError("the instance map holds negative ids")
    inst_classes = _instance_classes(label, inst, model.label_nc)
    record = {"size": [w, h], "instances_from_labels": made_inst, "seed": seed,
              "random_features": random_features, "instances": {}}
    asked = bool(clusters or instance_clusters or random_features)
    feat = None
    if model.feat_num:
        if image is not None:
            if asked:
                raise ValueError("features come from the image or from the clusters, not both")
            image = torch.as_tensor(image, dtype=torch.float32).to(dev)
            if image.shape != (1, 3, h, w):
                raise ValueError(f"the image is {list(image.shape)}, not [1, 3, {h}, {w}]")
            feat = model.E(image, inst)
            record["features"] = "encoded from the image"
        elif model.clusters is None:
            raise ValueError(f"{model.name} has no feature clusters yet: run `ganprior "
                             f"encode-features --model {model.name} --data TRAINING_DATA`")
        else:
            chosen = choose_clusters(model, inst_classes, clusters, instance_clusters,
                                     random_features, seed)
            feat = feature_map(model, inst, inst_classes, chosen)
            record["instances"] = {str(i): {"class": model.class_name(c), "cluster": chosen[i]}
                                   for i, c in inst_classes.items()}
    elif asked or image is not None:
        raise ValueError(f"{model.name} was trained without instance features: its output "
                         "has no clusters to choose (--cluster, --random-features, --image)")
    x = make_input(label, inst if model.instance else None, feat, label_nc=model.label_nc)
    return model.G(x).clamp(-1, 1), record
