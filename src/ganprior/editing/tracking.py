"""Point tracking for DragGAN: where did each handle's content go after an optimisation step?

Features are a block's output [1, C, h, w] *bilinearly resized to the image size* [H, W]
(align_corners=False, as F.interpolate). Nothing here builds that resized map: `resized_at`
reads its values at integer pixels straight from the small map with grid_sample (same numbers,
a few hundred pixels instead of H*W), and `shifted_at` samples it between pixels.

Two trackers, both stepped with the features of the image the points belong to:

- `PaperTracker` (DragGAN, Pan et al. 2023): p_i <- argmin over the square of half-size r2
  around p_i of ||F(q) - f_i||_2, with f_i = F0(p_i) the handle's feature in the first image.
- `RobustTracker` (ours, in the spirit of FreeDrag / StableDrag; docs/drag.md): matches a
  template that follows the handle's appearance (a confidence-weighted running average of the
  matched features), and holds the point when the match is ambiguous. The confidence is the
  margin between the best match and the best one outside its immediate neighbourhood; a low
  margin (a flat or repetitive patch, where nearest neighbour jumps between look-alikes)
  keeps the previous point and resets the template to the initial feature, so that a few
  ambiguous steps cannot drag the template away from what the user clicked.

Points are (x, y) pixels, x to the right, y down.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TRACKERS = ("paper", "robust")


def _grid(ys, xs, size, origin=(0, 0), full=None, crop=None) -> torch.Tensor:
    """grid_sample coordinates (align_corners=False) of integer pixels of the H x W resize.

    Pixel i of a resize of an h-row map to H rows samples the map at u = (i + 0.5) h / H - 0.5,
    in grid_sample's align_corners=False units (2 u + 1) / h - 1 = (2 i + 1) / H - 1 whatever
    h is; "border" padding then clamps to the edge pixels exactly as F.interpolate does. For
    a crop of the map (rows from origin[0], `crop` its (rows, columns), `full` the whole
    map's) the same u is taken relative to the crop."""
    H, W = size
    if full is None:
        gx = (2 * xs.to(torch.float32) + 1) / W - 1
        gy = (2 * ys.to(torch.float32) + 1) / H - 1
    else:
        (h, w), (ch, cw) = full, crop
        uy = (ys.to(torch.float32) + 0.5) * h / H - 0.5 - origin[0]
        ux = (xs.to(torch.float32) + 0.5) * w / W - 0.5 - origin[1]
        gx, gy = (2 * ux + 1) / cw - 1, (2 * uy + 1) / ch - 1
    return torch.stack([gx, gy], dim=-1).view(1, 1, -1, 2)


def resized_at(feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
               size: tuple[int, int], origin=(0, 0), full=None) -> torch.Tensor:
    """Values [C, n] of F.interpolate(feat, size, "bilinear") at integer pixels (ys, xs).
    `feat` may be a crop of the map (its first row and column `origin`, the whole map's size
    `full`) that holds every map pixel the reads need."""
    crop = tuple(feat.shape[-2:])
    grid = _grid(ys, xs, size, origin, full, crop).to(feat.device, feat.dtype)
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)[0, :, 0]


def shifted_at(feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
               size: tuple[int, int], origin=(0, 0), full=None) -> torch.Tensor:
    """Values [C, n] of the resized map at real positions (ys, xs), bilinear between its
    pixels, zero outside the image (grid_sample align_corners=True, padding "zeros", on the
    resized map, as the official motion supervision samples it). `origin`, `full`: as
    resized_at."""
    H, W = size
    y0, x0 = torch.floor(ys), torch.floor(xs)
    out = 0
    for dy in (0, 1):
        for dx in (0, 1):
            yc, xc = y0 + dy, x0 + dx
            weight = (1 - (ys - yc).abs()) * (1 - (xs - xc).abs())
            inside = (yc >= 0) & (yc <= H - 1) & (xc >= 0) & (xc <= W - 1)
            values = resized_at(feat, yc.clamp(0, H - 1), xc.clamp(0, W - 1), size, origin,
                                full)
            out = out + values * (weight * inside).to(values.dtype)
    return out


def square(point, radius: int, size: tuple[int, int]):
    """Integer pixels (ys, xs) of the square of half-size `radius` around `point`, cut to
    the image."""
    H, W = size
    x, y = int(round(point[0])), int(round(point[1]))
    ys = torch.arange(max(y - radius, 0), min(y + radius, H - 1) + 1)
    xs = torch.arange(max(x - radius, 0), min(x + radius, W - 1) + 1)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return yy.reshape(-1), xx.reshape(-1)


def reference_features(feat: torch.Tensor, points, size) -> torch.Tensor:
    """f_i = the resized features at each (rounded) point: [n, C]."""
    ys = torch.tensor([int(round(p[1])) for p in points])
    xs = torch.tensor([int(round(p[0])) for p in points])
    return resized_at(feat, ys, xs, size).t().detach().clone()


def _match(feat, point, template, radius, size):
    """(ys, xs, distances) over the search square: ||F(q) - template||_2."""
    ys, xs = square(point, radius, size)
    values = resized_at(feat, ys, xs, size)  # [C, n]
    return ys, xs, torch.linalg.vector_norm(values - template[:, None], dim=0)


def _pick(old: torch.Tensor, keep, fresh: torch.Tensor) -> torch.Tensor:
    return torch.stack([old[k] if k is not None else fresh[i] for i, k in enumerate(keep)])


class PaperTracker:
    """DragGAN's nearest-neighbour tracking to the initial handle features."""

    name = "paper"

    def __init__(self, refs: torch.Tensor, r2: float):
        self.refs = refs  # [n, C]
        self.radius = int(round(r2))

    def track(self, feat: torch.Tensor, points, size, image=None) -> list[tuple[float, float]]:
        out = []
        with torch.no_grad():
            for point, ref in zip(points, self.refs):
                ys, xs, dist = _match(feat, point, ref, self.radius, size)
                k = int(torch.argmin(dist))
                out.append((float(xs[k]), float(ys[k])))
        return out

    def start(self, feat, points, size, image=None):
        """Nothing to cut: the references are the handles' features."""

    def select(self, keep: list[int | None], fresh: torch.Tensor, feat=None, points=None,
               size=None, image=None):
        """New handles: row i keeps old handle keep[i]'s reference, or takes fresh[i]."""
        self.refs = _pick(self.refs, keep, fresh)

    def state(self) -> dict:
        return {"refs": self.refs.clone()}

    def load_state(self, state: dict):
        self.refs = state["refs"].clone()


def patch_offsets(half: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(dy, dx) of the (2 half + 1)^2 pixels of a patch centred on 0."""
    o = torch.arange(-half, half + 1)
    dy, dx = torch.meshgrid(o, o, indexing="ij")
    return dy.reshape(-1), dx.reshape(-1)


def patch_features(feat, ys, xs, half, size) -> torch.Tensor:
    """Resized features [C, n, m] of the patch around each of n pixels (edges clamped)."""
    H, W = size
    dy, dx = patch_offsets(half)
    py = (ys[:, None] + dy[None]).clamp(0, H - 1)
    px = (xs[:, None] + dx[None]).clamp(0, W - 1)
    n, m = py.shape
    return resized_at(feat, py.reshape(-1), px.reshape(-1), size).reshape(-1, n, m)


class RobustTracker(PaperTracker):
    """Patch template tracking with a confidence gate (our design; docs/drag.md).

    The paper matches one feature vector; a look-alike pixel nearby wins as soon as the
    handle's own feature changes a little, and in flat regions the point runs ahead of the
    content. Here each handle is a *patch* template T_i: the features of the (2 `half` + 1)^2
    pixels around it (one feature cell each way), divided by the start map's RMS feature
    norm, with the image's RGB there times `pixel_weight`, cut from the start image. Cost
    D(q) = mean over the patch of ||P(q + o) - T_i(o)||_2 over the r2 square. margin =
    (d2 - d1) / d2, d1 the best cost and d2 the best one farther than `half` px (Chebyshev)
    from it. margin < `min_margin` (two places match equally): the point stays and the
    template returns to the start's patch. Otherwise the point moves, and with `rate` > 0 the
    template follows the match, T_i <- (1 - a) T_i + a P(q1), a = `rate` * margin (off by
    default: in the benchmark's trials the updated template drifted with the features the
    optimisation changes, and lost more handles than the fixed one). `reach` (px, optional)
    caps how far the point may move in one step.
    """

    name = "robust"

    def __init__(self, refs: torch.Tensor, r2: float, half: int = 1,
                 min_margin: float = 0.01, rate: float = 0.0, pixel_weight: float = 1.0,
                 reach: int | None = None):
        super().__init__(refs, r2)
        self.half, self.min_margin, self.rate, self.reach = half, min_margin, rate, reach
        self.pixel_weight = pixel_weight
        self.initial = self.templates = None  # [n, C(+3), m], cut by `start`
        self.feature_scale = 1.0
        self.margins: list[float] = [1.0] * len(refs)

    def _patches(self, feat, ys, xs, size, image):
        values = patch_features(feat, ys, xs, self.half, size) / self.feature_scale
        if self.pixel_weight > 0 and image is not None:
            pixels = patch_features(image.to(feat.device, feat.dtype), ys, xs, self.half, size)
            values = torch.cat([values, self.pixel_weight * pixels])
        return values

    def start(self, feat, points, size, image=None):
        """Cut the initial patch templates around `points` from `feat` (and `image`)."""
        self.feature_scale = float(feat.square().sum(dim=1).mean().sqrt().clamp_min(1e-12))
        ys = torch.tensor([int(round(p[1])) for p in points])
        xs = torch.tensor([int(round(p[0])) for p in points])
        self.initial = self._patches(feat, ys, xs, size, image).permute(1, 0, 2).detach().clone()
        self.templates = self.initial.clone()

    def track(self, feat: torch.Tensor, points, size, image=None) -> list[tuple[float, float]]:
        if self.initial is None:
            raise ValueError("RobustTracker.start() must cut the templates first")
        out, margins = [], []
        with torch.no_grad():
            for i, point in enumerate(points):
                ys, xs = square(point, self.radius, size)
                values = self._patches(feat, ys, xs, size, image)  # [C, n, m]
                cost = torch.linalg.vector_norm(values - self.templates[i][:, None], dim=0)
                cost = cost.mean(dim=1)
                if self.reach is not None:
                    x, y = int(round(point[0])), int(round(point[1]))
                    near = torch.maximum((ys - y).abs(), (xs - x).abs()) <= self.reach
                    k = int(torch.argmin(torch.where(near, cost, torch.full_like(cost, math.inf))))
                else:
                    k = int(torch.argmin(cost))
                far = torch.maximum((ys - ys[k]).abs(), (xs - xs[k]).abs()) > self.half
                d1 = float(cost[k])
                d2 = float(cost[far].min()) if bool(far.any()) else math.inf
                margin = 1.0 if math.isinf(d2) else (d2 - d1) / max(d2, 1e-12)
                margins.append(margin)
                if margin < self.min_margin:
                    out.append((float(point[0]), float(point[1])))
                    self.templates[i] = self.initial[i]
                    continue
                out.append((float(xs[k]), float(ys[k])))
                a = self.rate * margin
                self.templates[i] = (1 - a) * self.templates[i] + a * values[:, k]
        self.margins = margins
        return out

    def select(self, keep: list[int | None], fresh: torch.Tensor, feat=None, points=None,
               size=None, image=None):
        """As PaperTracker.select; new handles cut their patch from `feat` at `points`."""
        super().select(keep, fresh)
        old_initial, old_templates, scale = self.initial, self.templates, self.feature_scale
        self.start(feat, points, size, image)
        self.feature_scale = scale
        for i, k in enumerate(keep):
            if k is not None:
                self.initial[i], self.templates[i] = old_initial[k], old_templates[k]
        self.margins = [self.margins[k] if k is not None else 1.0 for k in keep]

    def state(self) -> dict:
        return {"refs": self.refs.clone(), "initial": self.initial.clone(),
                "feature_scale": torch.tensor(self.feature_scale, dtype=torch.float64),
                "templates": self.templates.clone(),
                "margins": torch.tensor(self.margins, dtype=torch.float64)}

    def load_state(self, state: dict):
        self.refs = state["refs"].clone()
        self.initial = state["initial"].clone()
        self.feature_scale = float(state["feature_scale"])
        self.templates = state["templates"].clone()
        self.margins = [float(m) for m in state["margins"]]


def make_tracker(kind: str, refs: torch.Tensor, r2: float, half: int = 1):
    """The tracker called `kind` ("paper" or "robust"); a robust one still needs `start`."""
    if kind == "paper":
        return PaperTracker(refs, r2)
    if kind == "robust":
        return RobustTracker(refs, r2, half=half)
    raise ValueError(f"unknown tracking {kind!r}; choose {' or '.join(TRACKERS)}")
