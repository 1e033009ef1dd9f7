"""DragGAN (Pan et al., SIGGRAPH 2023): move image content by dragging handle points to targets.

    session = DragSession(G, ws, handles=[(20, 30)], targets=[(26, 30)])
    while not session.done:
        record = session.step()      # image, tracked points, distances, loss, seconds, done
    session.ws()                     # the edited latent

Each step renders the current latent with the features of one synthesis block (resized to
the image, see tracking.py), tracks every handle on them (tracking.py), and, unless every
handle is within `d` of its target, takes one Adam step on the latent against

    sum_i mean_{q in disc(p_i, r1), c} |F(q + u_i) - sg(F(q))|
        + lambda mean_{q, c} |F - F0| (1 - M)

with u_i the unit vector from handle i to its target, M the flexible area (1 = may move) and
F0 the features of the start image: means over channels and pixels, like the official code's
l1_loss (docs/drag.md lists every difference from it). The record of a step describes the
image the step started from, so points and image always match; `done` is set by the step that
finds every handle within d (or that reaches max_steps) and takes no optimisation step.

Latent: "w+" optimises the first `n_ws` rows of ws (the rest stay as given); "w" optimises one
vector shared by every row (an offset added to all rows, so a seed's equal rows stay equal).
For generators with one row (DCGAN: ws = z[:, None, :]) both optimise z itself.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F

from ..nets.base import GeneratorBase
from .tracking import TRACKERS, make_tracker, reference_features, resized_at, shifted_at

SPACES = ("w+", "w")
PAPER_RESOLUTION = 512                      # r1, r2 and d below are the paper's at 512 px
PAPER_R1, PAPER_R2, PAPER_D = 3.0, 12.0, 2.0
MIN_R1, MIN_R2, MIN_D = 3.0, 4.0, 1.0       # floors for small images (docs/drag.md)
PAPER_BLOCK = 5                             # the 6th synthesis block's output (official)
STATE_VERSION = 1

Point = tuple[float, float]


@dataclass
class DragSettings:
    """Settings of one drag; None means the default for the model's resolution."""
    layer: str | None = None      # block whose features drive the edit (None: `default_layer`)
    lr: float = 2e-3
    lambda_mask: float = 20.0     # weight of the fixed-area term
    r1: float | None = None       # motion-supervision disc radius, px
    r2: float | None = None       # tracking search square half-size, px
    d: float | None = None        # a handle within d px of its target is done
    n_ws: int = 6                 # rows of ws optimised in "w+" mode
    space: str = "w+"             # "w+" | "w"
    tracking: str = "paper"       # "paper" | "robust"
    max_steps: int = 300

    def check(self):
        """ValueError naming the first bad setting."""
        if self.space not in SPACES:
            raise ValueError(f"unknown space {self.space!r}; choose {' or '.join(SPACES)}")
        if self.tracking not in TRACKERS:
            raise ValueError(f"unknown tracking {self.tracking!r}; choose "
                             f"{' or '.join(TRACKERS)}")
        for name in ("lr", "r1", "r2", "d"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a number > 0, not {v}")
        if not (isinstance(self.lambda_mask, (int, float)) and math.isfinite(self.lambda_mask)
                and self.lambda_mask >= 0):
            raise ValueError(f"lambda must be a number >= 0, not {self.lambda_mask}")
        if not isinstance(self.n_ws, int) or self.n_ws < 1:
            raise ValueError(f"n_ws must be an integer >= 1, not {self.n_ws}")
        if not isinstance(self.max_steps, int) or self.max_steps < 0:
            raise ValueError(f"max_steps must be an integer >= 0, not {self.max_steps}")
        return self


def scaled_radii(resolution: int) -> dict[str, float]:
    """The paper's r1 = 3, r2 = 12 and stop distance d = 2 px at 512 px, scaled linearly with
    the image size, with floors (r1 3, r2 4, d 1 px) below which the disc and the search
    square hold too few pixels of a small image's upsampled features."""
    s = resolution / PAPER_RESOLUTION
    return {"r1": max(PAPER_R1 * s, MIN_R1), "r2": max(PAPER_R2 * s, MIN_R2),
            "d": max(PAPER_D * s, MIN_D)}


def feature_names(features: list[torch.Tensor]) -> list[str]:
    """Names of synthesize_with_features' block outputs: "b{r}" for an r x r map, as the
    generator interface names its layers (the last may be the full-resolution block, which
    layer_names leaves out)."""
    return [f"b{f.shape[-1]}" for f in features]


def default_layer(names: list[str], resolution: int) -> str:
    """The official choice, the 6th block's output, when there is one; smaller models (64 px:
    five blocks, whose last is the image's) take the block one octave below the image, the
    place the 6th block has in a 256 px StyleGAN2."""
    if len(names) > PAPER_BLOCK:
        return names[PAPER_BLOCK]
    below = f"b{resolution // 2}"
    return below if below in names else names[-1]


# --- input checks ------------------------------------------------------------------------------
def _check_points(handles, targets, size) -> tuple[list[Point], list[Point]]:
    H, W = size
    if len(handles) == 0:
        raise ValueError("give at least one handle -> target pair")
    if len(handles) != len(targets):
        raise ValueError(f"{len(handles)} handles but {len(targets)} targets")
    out = []
    for kind, points in (("handle", handles), ("target", targets)):
        checked = []
        for i, p in enumerate(points):
            try:
                x, y = (float(v) for v in p)
            except (TypeError, ValueError):
                raise ValueError(f"{kind} {i + 1} must be an (x, y) pair, not {p!r}") from None
            if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= W - 1
                    and 0 <= y <= H - 1):
                raise ValueError(f"{kind} {i + 1} ({x:g}, {y:g}) is outside the {W}x{H} image "
                                 f"(x 0..{W - 1}, y 0..{H - 1})")
            checked.append((x, y))
        out.append(checked)
    # tracking works on pixels: handles start on the nearest one
    return [(float(round(x)), float(round(y))) for x, y in out[0]], out[1]


def _check_mask(mask, size) -> torch.Tensor | None:
    if mask is None:
        return None
    mask = torch.as_tensor(mask)
    if mask.ndim != 2 or tuple(mask.shape) != tuple(size):
        raise ValueError(f"the mask must be {size[1]}x{size[0]} (the image size), "
                         f"got {'x'.join(map(str, reversed(mask.shape)))}")
    mask = mask.float()
    if not bool(torch.isfinite(mask).all()):
        raise ValueError("the mask has NaN or infinite values")
    return (mask > 0.5).float()  # 1 = flexible, 0 = fixed


def _check_handles_free(handles, mask):
    if mask is None:
        return
    for i, (x, y) in enumerate(handles):
        if mask[int(y), int(x)] == 0:
            raise ValueError(f"handle {i + 1} ({x:g}, {y:g}) is in the fixed area of the mask")


def _check_ws(G, ws) -> torch.Tensor:
    want = (1, G.num_ws, G.w_dim)
    if not isinstance(ws, torch.Tensor) or tuple(ws.shape) != want:
        got = list(ws.shape) if isinstance(ws, torch.Tensor) else type(ws).__name__
        raise ValueError(f"the start latent must be ws {list(want)}, got {got}")
    if not bool(torch.isfinite(ws).all()):
        raise ValueError("the start latent has NaN or infinite values")
    return ws.detach().to(G.device, torch.float32).clone()


# --- the losses --------------------------------------------------------------------------------
def motion_loss(feat: torch.Tensor, points, targets, active, r1: float,
                size: tuple[int, int], origin=(0, 0), full=None) -> torch.Tensor:
    """DragGAN's motion supervision on `feat` [1, C, h, w] resized to `size`: for each active
    handle p with unit direction u to its target, mean over the disc |q - p| <= r1 (pixels in
    the image) and the channels of |F(q + u) - sg(F(q))|; summed over handles. `feat` may be
    the crop `loss_box` names (first row and column `origin` of a `full`-sized map)."""
    H, W = size
    loss = feat.new_zeros(())
    for (px, py), (tx, ty), on in zip(points, targets, active):
        if not on:
            continue
        norm = math.hypot(tx - px, ty - py)
        ux, uy = (tx - px) / norm, (ty - py) / norm
        ys, xs = _disc(px, py, r1, H, W)
        here = resized_at(feat, ys, xs, size, origin, full).detach()
        there = shifted_at(feat, ys.float() + uy, xs.float() + ux, size, origin, full)
        loss = loss + (there - here).abs().mean()
    return loss


def loss_box(points, active, r1: float, size: tuple[int, int], full: tuple[int, int]):
    """(y0, y1, x0, x1): the pixels of the (h, w) = `full` map that motion_loss reads for the
    active handles (their discs, one pixel more for the shifted samples, the bilinear
    neighbours), or None when no handle is active."""
    H, W = size
    h, w = full
    rows, cols = [], []
    for (px, py), on in zip(points, active):
        if on:
            rows += [math.floor(py - r1) - 1, math.ceil(py + r1) + 1]
            cols += [math.floor(px - r1) - 1, math.ceil(px + r1) + 1]
    if not rows:
        return None

    def span(lo, hi, n, N):
        u = lambda i: min(max((min(max(i, 0), N - 1) + 0.5) * n / N - 0.5, 0), n - 1)  # noqa: E731
        return max(0, math.floor(u(lo))), min(n, math.floor(u(hi)) + 2)  # + the bilinear pair
    return (*span(min(rows), max(rows), h, H), *span(min(cols), max(cols), w, W))


def fixed_area_loss(feat: torch.Tensor, feat0: torch.Tensor, mask: torch.Tensor,
                    lambda_mask: float, size: tuple[int, int]) -> torch.Tensor:
    """lambda * mean over pixels and channels of |F - F0| (1 - M), both resized to `size`
    (M: 1 = flexible); the mean runs over the whole image, as the official l1_loss."""
    fixed = (1 - mask).to(feat.device, feat.dtype)[None, None]
    now = F.interpolate(feat, size=size, mode="bilinear", align_corners=False)
    then = F.interpolate(feat0, size=size, mode="bilinear", align_corners=False)
    return lambda_mask * ((now - then).abs() * fixed).mean()


def _disc(px, py, r1, H, W):
    """Integer pixels within distance r1 of (px, py), inside the image."""
    reach = int(math.floor(r1)) + 1
    x0, y0 = int(round(px)), int(round(py))
    ys = torch.arange(max(y0 - reach, 0), min(y0 + reach, H - 1) + 1)
    xs = torch.arange(max(x0 - reach, 0), min(x0 + reach, W - 1) + 1)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    inside = (xx - px) ** 2 + (yy - py) ** 2 <= r1 * r1
    return yy[inside], xx[inside]


# --- the session -------------------------------------------------------------------------------
@dataclass
class _Setup:
    """What a session derives from the model and settings (not part of its state)."""
    layer: str
    index: int                   # into synthesize_with_features' list
    channels: int                # the block's own channels (features_at may append RGB)
    split: bool                  # features_at / synthesize_from can run the block split
    r1: float
    r2: float
    d: float
    n_rows: int                  # rows of ws the latent parameter covers
    size: tuple[int, int] = field(default=(0, 0))


class DragSession:
    """One drag edit of the image G renders from `ws` ([1, num_ws, w_dim]); see the module
    doc. `mask` [H, W]: 1 = flexible, 0 = fixed (None: everything may move). `seed` is kept
    in the state (the drag itself is deterministic). G's weights are frozen
    (requires_grad_(False)): only the latent learns."""

    def __init__(self, G: GeneratorBase, ws: torch.Tensor, handles, targets, mask=None,
                 settings: DragSettings | None = None, seed: int = 0):
        self.G = G
        self.settings = copy.copy(settings or DragSettings()).check()
        self.seed = int(seed)
        self.ws0 = _check_ws(G, ws)
        G.requires_grad_(False)  # only the latent learns (as the inversion engine does)
        size = (G.img_resolution, G.img_resolution)
        self.handles, self.targets = _check_points(handles, targets, size)
        self.mask = _check_mask(mask, size)
        _check_handles_free(self.handles, self.mask)
        with torch.no_grad():
            image0, feats = G.synthesize_with_features(self.ws0)
        self._setup = self._derive(feats, size)
        self.feat0 = feats[self._setup.index].detach().float().clone()
        self.points = list(self.handles)
        self.step_count = 0
        self._done = False
        rows = self._setup.n_rows
        self.delta = torch.zeros(1, rows, G.w_dim, device=G.device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.delta], lr=self.settings.lr)
        refs = reference_features(self.feat0, self.handles, size)
        self.tracker = make_tracker(self.settings.tracking, refs, self._setup.r2,
                                    self._suppress())
        self.tracker.start(self.feat0, self.handles, size, image0.detach().float())

    @staticmethod
    def check_inputs(G: GeneratorBase, handles, targets, mask=None,
                     settings: DragSettings | None = None):
        """The ValueErrors a session would raise for these points, mask and settings, before
        any costly work (an inversion) is spent on them."""
        size = (G.img_resolution, G.img_resolution)
        checked, _ = _check_points(handles, targets, size)
        _check_handles_free(checked, _check_mask(mask, size))
        settings = (settings or DragSettings()).check()
        if settings.layer is not None:
            with torch.no_grad():
                _, feats = G.synthesize_with_features(
                    G.w_avg.reshape(1, 1, -1).expand(1, G.num_ws, -1).float())
            names = feature_names(feats)
            if settings.layer not in names:
                raise ValueError(f"unknown layer {settings.layer!r} for drag features; this "
                                 f"model has {', '.join(names)}")

    # --- derived values ----------------------------------------------------------------------
    def _derive(self, feats, size) -> _Setup:
        G, s = self.G, self.settings
        names = feature_names(feats)
        layer = s.layer or default_layer(names, G.img_resolution)
        if layer not in names:
            raise ValueError(f"unknown layer {layer!r} for drag features; this model has "
                             f"{', '.join(names)}")
        index = names.index(layer)
        radii = scaled_radii(G.img_resolution)
        r1, r2, d = (radii[k] if getattr(s, k) is None else float(getattr(s, k))
                     for k in ("r1", "r2", "d"))
        n_rows = 1 if s.space == "w" else min(s.n_ws, G.num_ws)
        return _Setup(layer=layer, index=index, channels=feats[index].shape[1],
                      split=layer in G.layer_names, r1=r1, r2=r2, d=d, n_rows=n_rows, size=size)

    def _suppress(self) -> int:
        """Pixels of one feature cell of the resized map (RobustTracker's neighbourhood)."""
        return max(1, round(self.G.img_resolution / self.feat0.shape[-1]))

    @property
    def layer(self) -> str:
        return self._setup.layer

    @property
    def radii(self) -> dict[str, float]:
        """The r1, r2 and d in use (px)."""
        return {"r1": self._setup.r1, "r2": self._setup.r2, "d": self._setup.d}

    @property
    def done(self) -> bool:
        return self._done

    # --- latent and forward ------------------------------------------------------------------
    def _ws(self) -> torch.Tensor:
        if self.settings.space == "w":
            return self.ws0 + self.delta  # one shared vector: broadcast over every row
        rest = self.ws0.shape[1] - self.delta.shape[1]
        return self.ws0 + F.pad(self.delta, (0, 0, 0, rest))

    def ws(self) -> torch.Tensor:
        """The current full ws [1, num_ws, w_dim] (detached)."""
        with torch.no_grad():
            return self._ws().detach().clone()

    def image(self) -> torch.Tensor:
        """The image of the current latent [1, C, H, W] in [-1, 1] (no step)."""
        with torch.no_grad():
            return self.G.synthesize(self._ws()).detach().cpu()

    def _render(self, ws):
        """(block features, image) of ws without autograd."""
        st = self._setup
        with torch.no_grad():
            if not st.split:
                image, feats = self.G.synthesize_with_features(ws)
                return feats[st.index].float(), image
            full = self.G.features_at(st.layer, ws)
            image = self.G.synthesize_from(st.layer, full, ws)
        return full[:, :st.channels].float(), image

    def _forward(self, ws):
        """(block features with autograd to ws, image without). The split runs the later
        blocks without autograd (nothing to differentiate there)."""
        st = self._setup
        if not st.split:
            image, feats = self.G.synthesize_with_features(ws)
            return feats[st.index].float(), image.detach()
        full = self.G.features_at(st.layer, ws)
        with torch.no_grad():
            image = self.G.synthesize_from(st.layer, full.detach(), ws.detach())
        return full[:, :st.channels].float(), image

    @property
    def _crops(self) -> bool:
        """Whether G computes features_in_box from crops (else it would run G twice)."""
        return type(self.G).features_in_box is not GeneratorBase.features_in_box

    def _mask_active(self) -> bool:
        return (self.mask is not None and self.settings.lambda_mask > 0
                and not bool(self.mask.all()))

    # --- stepping ----------------------------------------------------------------------------
    def distances(self, points=None) -> list[float]:
        points = self.points if points is None else points
        return [math.hypot(tx - px, ty - py) for (px, py), (tx, ty) in zip(points, self.targets)]

    def step(self) -> dict:
        """Render the current latent, track the handles on it and, unless done, take one
        optimisation step. Returns the record of the rendered image:
        {"step", "image" [1, C, H, W] cpu, "points", "targets", "distances", "loss",
         "seconds", "done"}.

        Without a fixed area the render runs without autograd and the gradient comes from the
        few feature pixels the motion term reads (G.features_in_box: crops of the blocks);
        with one, the fixed-area term needs the whole map, so the block runs with autograd."""
        t0 = time.perf_counter()
        st = self._setup
        ws = self._ws()
        masked = self._mask_active()
        whole = masked or not self._crops  # the gradient needs the whole map
        if whole:
            feat, image = self._forward(ws)
        else:
            feat, image = self._render(ws)
        if self.step_count > 0:  # step 0 renders the start image: the handles are where given
            self.points = self.tracker.track(feat.detach(), self.points, st.size, image)
        dist = self.distances()
        active = [d > st.d for d in dist]
        self._done = not any(active) or self.step_count >= self.settings.max_steps
        full = tuple(feat.shape[-2:])
        box = None if whole or self._done else loss_box(self.points, active, st.r1, st.size,
                                                          full)
        if box is None:
            loss = motion_loss(feat, self.points, self.targets, active, st.r1, st.size)
        else:
            crop = self.G.features_in_box(st.layer, ws, box).float()
            loss = motion_loss(crop, self.points, self.targets, active, st.r1, st.size,
                               origin=(box[0], box[2]), full=full)
        if masked:
            loss = loss + fixed_area_loss(feat, self.feat0, self.mask, self.settings.lambda_mask,
                                          st.size)
        record = {"step": self.step_count, "image": image.detach().cpu(),
                  "points": list(self.points), "targets": list(self.targets),
                  "distances": dist, "loss": float(loss.detach())}
        if not self._done:
            grad, = torch.autograd.grad(loss, [self.delta], allow_unused=True)
            self.delta.grad = torch.zeros_like(self.delta) if grad is None else grad
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step_count += 1
        record.update(seconds=time.perf_counter() - t0, done=self._done)
        return record

    def run(self, callback=None) -> list[dict]:
        """Step until done; `callback(record)` after each step. Returns the records."""
        records = []
        while not self._done:
            records.append(self.step())
            if callback is not None:
                callback(records[-1])
        return records

    # --- edits between steps -----------------------------------------------------------------
    def _current_features(self) -> torch.Tensor:
        return self._current()[0]

    def _current(self):
        """(block features, image) of the current latent, detached."""
        with torch.no_grad():
            image, feats = self.G.synthesize_with_features(self._ws())
        return feats[self._setup.index].detach().float().clone(), image.detach().float()

    def set_points(self, handles, targets):
        """New handle -> target pairs on the current image (keeps the latent and optimiser).
        A handle left where the tracker has it keeps its reference feature (and template);
        a new or moved one takes the current image's feature there, and the fixed-area
        reference becomes the current image (as in the official code when points change)."""
        handles, targets = _check_points(handles, targets, self._setup.size)
        _check_handles_free(handles, self.mask)
        keep = [i if i < len(self.points) and handles[i] == self.points[i] else None
                for i in range(len(handles))]
        if not all(k is not None for k in keep) or len(handles) != len(self.points):
            current, image = self._current()
            fresh = reference_features(current, handles, self._setup.size)
            self.tracker.select(keep, fresh, current, handles, self._setup.size, image)
            self.feat0 = current
        self.handles, self.targets = handles, targets
        self.points = list(handles)
        self._done = False

    def set_mask(self, mask):
        """A new flexible (1) / fixed (0) mask [H, W] or None, painted on the current image:
        the fixed area is held at the current image's features from now on."""
        mask = _check_mask(mask, self._setup.size)
        _check_handles_free(self.points, mask)
        self.mask = mask
        self.feat0 = self._current_features()
        self._done = False

    # --- save / restore ----------------------------------------------------------------------
    def state(self) -> dict:
        """Everything the next step depends on, as tensors (CPU) and plain values."""
        cpu = lambda t: None if t is None else t.detach().cpu().clone()  # noqa: E731
        return {"version": STATE_VERSION, "settings": asdict(self.settings), "seed": self.seed,
                "layer": self._setup.layer, "ws0": cpu(self.ws0), "delta": cpu(self.delta),
                "feat0": cpu(self.feat0), "mask": cpu(self.mask),
                "handles": [list(p) for p in self.handles],
                "targets": [list(p) for p in self.targets],
                "points": [list(p) for p in self.points],
                "step": self.step_count, "done": self._done,
                "optimizer": _cpu_optimizer_state(self.optimizer.state_dict()),
                "tracker": {k: cpu(v) for k, v in self.tracker.state().items()}}

    @classmethod
    def from_state(cls, G: GeneratorBase, state: dict,
                   settings: DragSettings | None = None) -> "DragSession":
        """The session `state()` saved: its next step is the one the original would have
        taken. `settings` may change lr, lambda_mask, radii and max_steps, not the latent
        (space, n_ws), the layer or the tracking."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError("not a drag session state (or of another version)")
        saved = DragSettings(**state["settings"]).check()
        settings = copy.copy(settings or saved).check()
        for name in ("space", "n_ws", "tracking"):
            if getattr(settings, name) != getattr(saved, name):
                raise ValueError(f"a restored drag keeps its {name} "
                                 f"({getattr(saved, name)!r})")
        if settings.layer not in (None, state["layer"]):
            raise ValueError(f"a restored drag keeps its layer ({state['layer']!r})")
        settings = replace(settings, layer=state["layer"])
        self = cls.__new__(cls)
        self.G, self.settings, self.seed = G, settings, int(state["seed"])
        G.requires_grad_(False)
        self.ws0 = _check_ws(G, state["ws0"])
        size = (G.img_resolution, G.img_resolution)
        self.feat0 = state["feat0"].to(G.device).clone()
        with torch.no_grad():
            _, feats = G.synthesize_with_features(self.ws0)
        self._setup = self._derive(feats, size)
        self.handles = [tuple(p) for p in state["handles"]]
        self.targets = [tuple(p) for p in state["targets"]]
        self.points = [tuple(p) for p in state["points"]]
        self.mask = None if state["mask"] is None else state["mask"].clone()
        self.step_count, self._done = int(state["step"]), bool(state["done"])
        if tuple(state["delta"].shape) != (1, self._setup.n_rows, G.w_dim):
            raise ValueError("the saved latent does not fit this model")
        self.delta = state["delta"].to(G.device).clone().requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.delta], lr=settings.lr)
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        for group in self.optimizer.param_groups:
            group["lr"] = settings.lr
        tracker = state["tracker"]
        self.tracker = make_tracker(settings.tracking, tracker["refs"].to(G.device),
                                    self._setup.r2, self._suppress())
        self.tracker.load_state({k: v.to(G.device) for k, v in tracker.items()})
        return self


def _cpu_optimizer_state(state: dict) -> dict:
    out = copy.deepcopy(state)
    for per_param in out["state"].values():
        for k, v in per_param.items():
            if isinstance(v, torch.Tensor):
                per_param[k] = v.detach().cpu().clone()
    return out


# --- pictures of a drag ------------------------------------------------------------------------
HANDLE_COLOUR, TARGET_COLOUR, LINE_COLOUR = (230, 40, 40), (40, 90, 230), (255, 255, 255)


def render_points(image, handles, targets, scale: int | None = None):
    """A PIL image of `image` (tensor in [-1, 1], uint8 array or PIL image) with each handle
    (red) joined by a line to its target (blue). Small images are enlarged `scale` times first
    (nearest neighbour; default: to about 256 px) so the marks stay readable; points are in
    the original image's pixels."""
    from PIL import Image, ImageDraw

    from ..images import to_picture
    picture = Image.fromarray(to_picture(image)).convert("RGB")
    if scale is None:
        scale = max(1, 256 // max(picture.size))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    radius = max(2, scale + 1)
    at = lambda p: ((p[0] + 0.5) * scale, (p[1] + 0.5) * scale)  # noqa: E731  pixel centres
    for h, t in zip(handles, targets):
        draw.line([at(h), at(t)], fill=LINE_COLOUR, width=max(1, scale // 2))
    for colour, points in ((TARGET_COLOUR, targets), (HANDLE_COLOUR, handles)):
        for p in points:
            x, y = at(p)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour,
                         outline=(0, 0, 0))
    return picture


def animation_frames(records: list[dict], max_frames: int = 60, scale: int | None = None):
    """Frames (PIL) of a drag: the records' images with their points drawn, at most
    `max_frames` of them evenly spread, always with the first and the last."""
    if not records:
        raise ValueError("no steps to animate")
    n, m = len(records), max(1, min(len(records), max_frames))
    picks = sorted({round(i * (n - 1) / max(1, m - 1)) for i in range(m)})
    return [render_points(records[i]["image"], records[i]["points"], records[i]["targets"],
                          scale) for i in picks]


def write_animation(path, frames, seconds_per_frame: float = 0.08, hold_last: float = 1.0):
    """Write PIL `frames` as an animated GIF or WebP (by the suffix of `path`), atomically;
    the last frame stays `hold_last` seconds. Returns the path."""
    from pathlib import Path

    from ..files import atomic_write
    path = Path(path)
    kind = {".gif": "GIF", ".webp": "WEBP"}.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"an animation is written as .gif or .webp, not {path.name!r}")
    if not frames:
        raise ValueError("no frames to write")
    ms = max(20, round(seconds_per_frame * 1000))
    durations = [ms] * (len(frames) - 1) + [max(ms, round(hold_last * 1000))]
    extra = {"lossless": True} if kind == "WEBP" else {"disposal": 1}
    return atomic_write(path, lambda tmp: frames[0].save(
        tmp, format=kind, save_all=True, append_images=list(frames[1:]), duration=durations,
        loop=0, **extra))


def before_after(records: list[dict], scale: int | None = None):
    """One PIL image: the start (handles where given) beside the end (tracked points)."""
    from PIL import Image
    first = render_points(records[0]["image"], records[0]["points"], records[0]["targets"], scale)
    last = render_points(records[-1]["image"], records[-1]["points"], records[-1]["targets"],
                         scale)
    gap = max(4, first.width // 64)
    out = Image.new("RGB", (first.width * 2 + gap, first.height), (255, 255, 255))
    out.paste(first, (0, 0))
    out.paste(last, (first.width + gap, 0))
    return out


# --- text points -------------------------------------------------------------------------------
def parse_points(text: str) -> tuple[list[Point], list[Point]]:
    """'x1,y1>x2,y2 ; x3,y3>x4,y4' -> (handles, targets), pixels. One ValueError per bad
    pair, naming it."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("--points is empty: give handle>target pairs like '20,30>26,30'")
    handles, targets = [], []
    for i, pair in enumerate(text.split(";")):
        pair = pair.strip()
        if not pair and i > 0 and i == len(text.split(";")) - 1:
            continue  # a trailing ';'
        try:
            a, b = pair.split(">")
            (hx, hy), (tx, ty) = ([float(v) for v in side.split(",")] for side in (a, b))
        except ValueError:
            raise ValueError(f"--points: pair {i + 1} {pair!r} is not 'x,y>x,y'") from None
        if not all(math.isfinite(v) for v in (hx, hy, tx, ty)):
            raise ValueError(f"--points: pair {i + 1} {pair!r} is not finite")
        handles.append((hx, hy))
        targets.append((tx, ty))
    return handles, targets


def format_points(handles, targets) -> str:
    """The inverse of parse_points."""
    return " ; ".join(f"{hx:g},{hy:g}>{tx:g},{ty:g}"
                      for (hx, hy), (tx, ty) in zip(handles, targets))


class FrameKeeper:
    """Keeps at most about 2 x `max_frames` of a drag's records (8-bit images and points),
    evenly spread, however long the drag: when full it drops every other one and keeps
    every 2nd record from then on (the first and the latest are always kept)."""

    def __init__(self, max_frames: int = 60):
        self.max_frames, self.stride, self.kept, self.last = max(2, max_frames), 1, [], None

    def add(self, record: dict):
        from ..images import to_uint8
        small = {"image": to_uint8(record["image"])[0], "points": list(record["points"]),
                 "targets": list(record["targets"]), "step": record["step"]}
        self.last = small
        if record["step"] % self.stride == 0:
            self.kept.append(small)
            if len(self.kept) >= 2 * self.max_frames:
                self.kept, self.stride = self.kept[::2], self.stride * 2

    def records(self) -> list[dict]:
        out = list(self.kept)
        if self.last is not None and (not out or out[-1] is not self.last):
            out.append(self.last)
        return out


# --- real photos -------------------------------------------------------------------------------
@dataclass
class PhotoStart:
    """Where a drag of a photo starts: the generator to drag with (a PTI-tuned copy when
    tuned), the inverted latent ws [1, num_ws, w_dim] and the runs that made them."""
    G: GeneratorBase
    ws: torch.Tensor
    inversion: object            # inversion.engine.InversionResult
    tuning: object | None = None  # inversion.tuning.TuneResult
    method: str = "w+"


def invert_photo(G: GeneratorBase, photo: torch.Tensor, steps: int = 300, lr: float = 0.03,
                 loss: str = "auto", tune: bool = False, tune_steps: int | None = None,
                 seed: int = 0, progress: bool = False) -> PhotoStart:
    """Invert `photo` [1, C, R, R] (the model's resolution, in [-1, 1]) into W+ with the
    inversion engine (z for generators without W, e.g. DCGAN), then optionally tune a copy of
    G on it with PTI (the pivot is the inverted latent). docs/drag.md has the settings."""
    from ..inversion import invert, make_method
    from ..inversion.tuning import pivot_ws, tune as tune_generator
    R = G.img_resolution
    if (not isinstance(photo, torch.Tensor) or photo.ndim != 4 or photo.shape[0] != 1
            or tuple(photo.shape[1:]) != (G.img_channels, R, R)):
        got = list(photo.shape) if isinstance(photo, torch.Tensor) else type(photo).__name__
        raise ValueError(f"the photo must be [1, {G.img_channels}, {R}, {R}], got {got}")
    name = "w+" if "w+" in G.latent_spaces else "z"
    method = make_method(name)
    photo = photo.to(G.device)
    inversion = invert(G, photo, method, steps=steps, lr=lr, loss=loss, seed=seed,
                       progress=progress)
    params = {k: v.to(G.device) for k, v in inversion.params.items()}
    tuning, G_drag = None, G
    if tune:
        tuning = tune_generator(G, photo, method, params, kind="pti", steps=tune_steps,
                                seed=seed, progress=progress)
        G_drag = tuning.G
    with torch.no_grad():
        ws = pivot_ws(G, params).detach().clone()
    return PhotoStart(G=G_drag, ws=ws, inversion=inversion, tuning=tuning, method=name)


def session_from_photo(G: GeneratorBase, photo: torch.Tensor, handles, targets, mask=None,
                       settings: DragSettings | None = None, seed: int = 0,
                       **invert_options) -> tuple[DragSession, PhotoStart]:
    """Invert (and optionally tune, `tune=True`) `photo`, then start a drag on the result:
    (session, PhotoStart). The points and mask are checked before the inversion runs."""
    DragSession.check_inputs(G, handles, targets, mask, settings)
    start = invert_photo(G, photo, seed=seed, **invert_options)
    return DragSession(start.G, start.ws, handles, targets, mask, settings, seed), start


def drag_pictures(G: GeneratorBase, ws: torch.Tensor, handles, targets, out_dir, mask=None,
                  settings: DragSettings | None = None, max_frames: int = 40,
                  name: str = "drag") -> dict:
    """Run one drag and write OUT_DIR/NAME_before_after.png (start | end, points drawn) and
    OUT_DIR/NAME.gif; returns {"before_after", "animation" (paths), "steps", "initial",
    "final" (mean handle-target distances, px), "seconds"} (what a demo page shows)."""
    from pathlib import Path

    from ..files import atomic_write
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    session = DragSession(G, ws, handles, targets, mask=mask, settings=settings)
    keeper, first, last = FrameKeeper(max_frames), None, None
    t0 = time.perf_counter()
    while not session.done:
        last = session.step()
        first = first or last
        keeper.add(last)
    seconds = time.perf_counter() - t0
    kept = keeper.records()
    pair = out_dir / f"{name}_before_after.png"
    atomic_write(pair, lambda tmp: before_after(kept).save(tmp, format="PNG"))
    gif = write_animation(out_dir / f"{name}.gif", animation_frames(kept, max_frames))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {"before_after": pair, "animation": gif, "steps": session.step_count,
            "initial": mean(first["distances"]), "final": mean(last["distances"]),
            "seconds": seconds}
