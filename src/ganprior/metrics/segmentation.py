"""Segmentation scores for label-to-image synthesis (the pix2pixHD paper's protocol) and the
small segmenter that gives them.

The protocol: a segmenter trained on real images labels the synthesised images; its pixel
accuracy and mean IoU against the label maps the images were synthesised from are compared
with the same segmenter's scores on the real images of those label maps (the oracle).

Scores (`confusion_matrix`, `segmentation_scores`, `SegmentationScore`) are counted exactly
in integers over the whole set, then divided once:
- pixel accuracy = correctly labelled pixels / all pixels;
- IoU of class c = TP_c / (TP_c + FP_c + FN_c), each count summed over every image of the set
  (not a mean of per-image IoUs);
- mean IoU = the mean of the IoUs of the classes whose union TP + FP + FN is not empty. A class
  absent from both the truth and the prediction is left out (its IoU is undefined); a class
  only predicted (or only in the truth) counts with IoU 0. This is how the Cityscapes
  evaluation averages (its classes with no pixels anywhere are NaN and skipped).

`SceneSegmenter` is a compact U-Net (3x3 conv, batch norm, ReLU; max-pool down, nearest
upsample and skip concatenation up) that trains on CPU in minutes at 128 px;
`train_segmenter` is seeded and repeats exactly; `save_segmenter` / `load_segmenter` keep it
as NAME.safetensors + NAME.json (its config is checked by the architecture registry before
anything is built).

`edit_locality` measures where an edit changed an image: the share of the absolute pixel
change that falls inside a mask (pix2pixHD's instance-level edits should stay in the edited
instance).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, GanpriorError
from ..files import atomic_write, atomic_write_text
from ..nets.registry import build, register
from ..progress import progress_bar

FORMAT = "ganprior-segmenter"
ARCH = "scene-unet"
MAX_CLASSES = 1024


# --- scores ---------------------------------------------------------------------------------
def confusion_matrix(pred, target, num_classes: int) -> torch.Tensor:
    """int64 [num_classes, num_classes]: entry [t, p] counts pixels of true class t predicted
    as p. `pred` and `target` are integer class maps of one shape (any batch layout).
    ValueError for other shapes or values outside 0..num_classes-1."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {list(pred.shape)} and truth {list(target.shape)} "
                         f"differ in shape")
    if pred.is_floating_point() or target.is_floating_point():
        raise ValueError("class maps must hold integers")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    for name, t in (("prediction", pred), ("truth", target)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            bad = int(t.min()) if int(t.min()) < 0 else int(t.max())
            raise ValueError(f"{name}: class {bad} is outside 0..{num_classes - 1}")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).cpu()


def segmentation_scores(confusion: torch.Tensor) -> dict:
    """{pixel_accuracy, mean_iou, iou: [per class, None where the union is empty],
    present: [classes counted in the mean], pixels} from a confusion matrix (module docstring
    for the definitions). Accuracy and mean IoU are NaN for an empty matrix."""
    cm = torch.as_tensor(confusion).long()
    tp = [int(v) for v in cm.diagonal()]
    truth = [int(v) for v in cm.sum(1)]
    predicted = [int(v) for v in cm.sum(0)]
    total = sum(truth)
    iou, present = [], []
    for c, (t, n_true, n_pred) in enumerate(zip(tp, truth, predicted)):
        union = n_true + n_pred - t
        iou.append(t / union if union else None)
        if union:
            present.append(c)
    ious = [iou[c] for c in present]
    return {"pixel_accuracy": sum(tp) / total if total else math.nan,
            "mean_iou": sum(ious) / len(ious) if ious else math.nan,
            "iou": iou, "present": present, "pixels": total}


class SegmentationScore:
    """Accumulates a confusion matrix over a set, image by image or batch by batch."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred, target) -> "SegmentationScore":
        self.confusion += confusion_matrix(pred, target, self.num_classes)
        return self

    def result(self) -> dict:
        return segmentation_scores(self.confusion)


# --- edit locality --------------------------------------------------------------------------
def edit_locality(before: torch.Tensor, after: torch.Tensor, mask: torch.Tensor,
                  dilate: int = 0) -> float:
    """Share of the absolute pixel change |after - before| (summed over channels) that lies
    inside `mask`, grown by `dilate` pixels (a (2 dilate + 1)^2 square) first. Images
    [C, H, W] or [N, C, H, W]; mask [H, W], [1, H, W] or [N, 1, H, W] (bool or 0/1). NaN when
    nothing changed."""
    if before.shape != after.shape:
        raise ValueError(f"images {list(before.shape)} and {list(after.shape)} differ in shape")
    b, a = before.double(), after.double()
    if b.ndim == 3:
        b, a = b[None], a[None]
    change = (a - b).abs().sum(1, keepdim=True)          # [N, 1, H, W]
    m = torch.as_tensor(mask).to(change.device)
    while m.ndim < 4:
        m = m[None]
    m = m.double()
    if dilate > 0:
        m = F.max_pool2d(m, 2 * dilate + 1, stride=1, padding=dilate)
    m = (m > 0).expand_as(change)
    total = float(change.sum())
    return float(change[m].sum()) / total if total > 0 else math.nan


# --- the segmenter --------------------------------------------------------------------------
def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True))


@register("S", ARCH)
class SceneSegmenter(nn.Module):
    """A compact U-Net: images [N, in_channels, H, W] in [-1, 1] -> class logits
    [N, num_classes, H, W]. `depth` poolings (H, W multiples of 2^depth); level i has
    width * 2^i channels. The defaults (width 8, depth 4) have 0.49 M parameters, most of
    them at the coarse levels, where they cost little time."""

    def __init__(self, in_channels: int = 3, num_classes: int = 8, width: int = 8,
                 depth: int = 4):
        super().__init__()
        for name, value, lo, hi in (("in_channels", in_channels, 1, 64),
                                    ("num_classes", num_classes, 2, MAX_CLASSES),
                                    ("width", width, 1, 256), ("depth", depth, 1, 6)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"segmenter {name} must be an integer in {lo}..{hi}, "
                                 f"not {value!r}")
        self.num_classes, self.depth = num_classes, depth
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, chans[0])] +
                                  [_block(chans[i - 1], chans[i]) for i in range(1, depth)])
        self.bottom = _block(chans[depth - 1], chans[depth])
        # up step i: upsampled features of level i+1 (chans[i+1]) + the skip of level i
        self.up = nn.ModuleList([_block(chans[i + 1] + chans[i], chans[i])
                                 for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    @property
    def size_multiple(self) -> int:
        return 2 ** self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"segmenter input is {w}x{h}: sides must be multiples of "
                             f"{self.size_multiple}")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = block(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skip], 1))
        return self.head(x)


def _check_set(images: torch.Tensor, labels: torch.Tensor, num_classes: int):
    if images.ndim != 4 or labels.ndim != 3 or images.shape[0] != labels.shape[0] \
            or images.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"training set: images [N, C, H, W] and labels [N, H, W] of the same "
                         f"N, H, W expected, not {list(images.shape)} and {list(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"training labels must lie in 0..{num_classes - 1}")


def _augment(x: torch.Tensor, y: torch.Tensor, g: torch.Generator, jitter: float):
    """Horizontal flips (half the samples) and a brightness / contrast jitter per sample, all
    drawn from `g` (the scenes are side views: left and right are alike)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None], y.flip(-1), y)
    if jitter > 0:
        gain = 1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * jitter
        shift = (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * jitter
        x = (x * gain + shift).clamp(-1, 1)
    return x, y


def balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Median-frequency balancing (Eigen & Fergus 2015, SegNet): w_c = median frequency /
    frequency of c, over the classes present (absent classes get weight 1). Thin rare
    classes (poles: 1 % of the pixels) are otherwise never predicted."""
    freq = torch.bincount(labels.reshape(-1).long(), minlength=num_classes).double()
    present = freq > 0
    w = torch.ones(num_classes, dtype=torch.float64)
    w[present] = freq[present].median() / freq[present]
    return w.float()


def train_segmenter(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                    steps: int = 1000, batch: int = 8, lr: float = 2e-3, seed: int = 0,
                    width: int = 8, depth: int = 4, jitter: float = 0.1, balance: bool = True,
                    device="cpu", progress: bool = True) -> tuple[SceneSegmenter, dict]:
    """Train a SceneSegmenter on `images` [N, 3, H, W] in [-1, 1] and their class maps
    `labels` [N, H, W] (int) with cross-entropy (classes weighted by `balanced_weights` when
    `balance`), Adam (`lr`, cosine decay to 0 over `steps`), minibatches of `batch` from
    successive permutations, flips and a brightness jitter.
    Everything random comes from `seed`: the same call gives the same weights (same torch
    build and thread count). Returns (the net in eval mode, a log: the mean loss of each
    30th of the run, seconds, images/s)."""
    _check_set(images, labels, num_classes)
    if not (isinstance(steps, int) and steps >= 1 and isinstance(batch, int) and batch >= 1):
        raise ValueError("steps and batch must be positive integers")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # the caller's global random state is left alone
        torch.manual_seed(seed)
        net = SceneSegmenter(images.shape[1], num_classes, width, depth).to(device)
    g = torch.Generator().manual_seed(seed)
    weight = balanced_weights(labels, num_classes).to(device) if balance else None
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    n, order, pos = images.shape[0], torch.empty(0, dtype=torch.long), 0
    log = {"loss": [], "steps": steps, "batch": batch, "lr": lr, "seed": seed,
           "class_weights": None if weight is None else [round(float(v), 4) for v in weight]}
    bar = progress_bar(range(steps), desc="train segmenter", unit="step", enabled=progress)
    start, running, every = time.perf_counter(), 0.0, max(1, steps // 30)
    net.train()
    with torch.enable_grad():
        for step in bar:
            idx = []
            while len(idx) < min(batch, n):   # successive permutations: every image as often
                if pos >= len(order):
                    order, pos = torch.randperm(n, generator=g), 0
                take = min(batch - len(idx), len(order) - pos)
                idx += order[pos:pos + take].tolist()
                pos += take
            x, y = _augment(images[idx].float(), labels[idx].long(), g, jitter)
            loss = F.cross_entropy(net(x.to(device)), y.to(device), weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach())
            if (step + 1) % every == 0 or step + 1 == steps:
                k = (step + 1) % every or every
                log["loss"].append(round(running / k, 5))
                bar.set_postfix(loss=f"{running / k:.3f}")
                running = 0.0
    seconds = time.perf_counter() - start
    log.update(seconds=round(seconds, 1), images_per_s=round(steps * batch / seconds, 2))
    return net.eval(), log


@torch.no_grad()
def segment(net: SceneSegmenter, images: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """Class maps int64 [N, H, W] for images [N, C, H, W] in [-1, 1] (the net in eval mode)."""
    net.eval()
    dev = next(net.parameters()).device
    out = [net(images[i:i + batch].float().to(dev)).argmax(1).cpu()
           for i in range(0, images.shape[0], batch)]
    return torch.cat(out) if out else torch.zeros(0, *images.shape[-2:], dtype=torch.long)


# --- files ----------------------------------------------------------------------------------
def segmenter_paths(path) -> tuple[Path, Path]:
    """(NAME.safetensors, NAME.json) for NAME, NAME.safetensors or NAME.json."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_segmenter(path, net: SceneSegmenter, meta: dict | None = None) -> tuple[Path, Path]:
    """NAME.safetensors (weights, batch-norm statistics) + NAME.json (architecture, config and
    `meta`: classes, training data and settings, scores), both written atomically."""
    from safetensors.torch import save_file
    weights, config = segmenter_paths(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT}))
    cfg = {"format": FORMAT, "version": 1, "arch": net.arch, "kwargs": net.config,
           "meta": meta or {}}
    atomic_write_text(config, json.dumps(cfg, indent=1, allow_nan=False) + "\n")
    return weights, config


def load_segmenter(path, device="cpu") -> tuple[SceneSegmenter, dict]:
    """(net in eval mode, meta) from save_segmenter's files. CheckpointError (one line) when
    they are missing, malformed or do not fit together."""
    from ..checkpoints.native import read_config, read_safetensors
    from ..checkpoints.state import load_state_strict
    weights, config = segmenter_paths(path)
    for f in (config, weights):
        if not f.is_file():
            raise CheckpointError(f"{f}: no such segmenter file")
    cfg = read_config(config)
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT or cfg.get("arch") != ARCH:
        raise CheckpointError(f"{config}: not a {FORMAT} config")
    try:
        net = build(ARCH, cfg.get("kwargs") or {}, role="S", what=str(config))
    except ValueError as e:
        raise CheckpointError(f"{config}: {e}")
    state = read_safetensors(weights)
    try:
        load_state_strict(net, state, str(weights))
    except GanpriorError as e:
        raise CheckpointError(str(e))
    return net.to(device).eval(), cfg.get("meta") or {}
