"""DragGAN (Pan et al., SIGGRAPH 2023): move image content by dragging handle points to targets.

    session = DragSession(G, ws, handles=[(20, 30)], targets=[(26, 30)])
    while not session.done:
        record = session.step()      # image, tracked points, distances, loss, seconds, done
    session.ws()                     # the edited latent

Each step renders the current latent with the features of one synthesis block (resized to
the image, see tracking.py), tracks every handle on them (tracking.py), and, unless every
handle is within `d` of its target, takes one Adam step on the latent against

    sum_i mean_{q in disc(p_i, r1), c} |F(q + u_i) - sg(F(q))|  +  lambda mean_{q, c} |F - F0|(1 - M)

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
MIN_R1, MIN_R2, MIN_D = 2.0, 4.0, 1.0       # floors for small images (docs/drag.md)
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
    the image size, with floors (r1 2, r2 4, d 1 px) below which the disc and the search
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
    in the state and the records (the drag itself is deterministic)."""

    def __init__(self, G: GeneratorBase, ws: torch.Tensor, handles, targets, mask=None,
                 settings: DragSettings | None = None, seed: int = 0):
        self.G = G
        self.settings = copy.copy(settings or DragSettings()).check()
        self.seed = int(seed)
        self.ws0 = _check_ws(G, ws)
        size = (G.img_resolution, G.img_resolution)
        self.handles, self.targets = _check_points(handles, targets, size)
        self.mask = _check_mask(mask, size)
        _check_handles_free(self.handles, self.mask)
        with torch.no_grad():
            _, feats = G.synthesize_with_features(self.ws0)
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

    def _forward(self, ws):
        """(block features with autograd to ws, image without). The split runs the later
        blocks without autograd (faster on CPU, nothing to differentiate there)."""
        st = self._setup
        if not st.split:
            image, feats = self.G.synthesize_with_features(ws)
            return feats[st.index].float(), image.detach()
        full = self.G.features_at(st.layer, ws)
        with torch.no_grad():
            image = self.G.synthesize_from(st.layer, full.detach(), ws.detach())
        return full[:, :st.channels].float(), image

    # --- the losses --------------------------------------------------------------------------
    def _motion_loss(self, feat, points, active):
        st = self._setup
        H, W = st.size
        loss = feat.new_zeros(())
        reach = int(math.floor(st.r1))
        for (px, py), (tx, ty), on in zip(points, self.targets, active):
            if not on:
                continue
            norm = math.hypot(tx - px, ty - py)
            ux, uy = (tx - px) / norm, (ty - py) / norm
            ys, xs = _disc(px, py, st.r1, reach, H, W)
            here = resized_at(feat, ys, xs, st.size).detach()
            there = shifted_at(feat, ys.float() + uy, xs.float() + ux, st.size)
            loss = loss + (there - here).abs().mean()
        return loss

    def _mask_loss(self, feat):
        if self.mask is None or self.settings.lambda_mask == 0 or bool(self.mask.all()):
            return None
        st = self._setup
        fixed = (1 - self.mask).to(feat.device)[None, None]
        now = F.interpolate(feat, size=st.size, mode="bilinear", align_corners=False)
        then = F.interpolate(self.feat0, size=st.size, mode="bilinear", align_corners=False)
        return self.settings.lambda_mask * ((now - then).abs() * fixed).mean()

    # --- stepping ----------------------------------------------------------------------------
    def distances(self, points=None) -> list[float]:
        points = self.points if points is None else points
        return [math.hypot(tx - px, ty - py) for (px, py), (tx, ty) in zip(points, self.targets)]

    def step(self) -> dict:
        """Render the current latent, track the handles on it and, unless done, take one
        optimisation step. Returns the record of the rendered image:
        {"step", "image" [1, C, H, W] cpu, "points", "targets", "distances", "loss",
         "seconds", "done"}."""
        t0 = time.perf_counter()
        st = self._setup
        feat, image = self._forward(self._ws())
        if self.step_count > 0:  # step 0 renders the start image: the handles are where given
            self.points = self.tracker.track(feat.detach(), self.points, st.size)
        dist = self.distances()
        active = [d > st.d for d in dist]
        self._done = not any(active) or self.step_count >= self.settings.max_steps
        loss = self._motion_loss(feat, self.points, active)
        mask_loss = self._mask_loss(feat)
        if mask_loss is not None:
            loss = loss + mask_loss
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
        with torch.no_grad():
            _, feats = self.G.synthesize_with_features(self._ws())
        return feats[self._setup.index].detach().float().clone()

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
            current = self._current_features()
            fresh = reference_features(current, handles, self._setup.size)
            self.tracker.select(keep, fresh)
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


def _disc(px, py, r1, reach, H, W):
    """Integer pixels within distance r1 of (px, py), inside the image."""
    x0, y0 = int(round(px)), int(round(py))
    ys = torch.arange(max(y0 - reach - 1, 0), min(y0 + reach + 1, H - 1) + 1)
    xs = torch.arange(max(x0 - reach - 1, 0), min(x0 + reach + 1, W - 1) + 1)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    inside = (xx - px) ** 2 + (yy - py) ** 2 <= r1 * r1
    return yy[inside], xx[inside]


def _cpu_optimizer_state(state: dict) -> dict:
    out = copy.deepcopy(state)
    for per_param in out["state"].values():
        for k, v in per_param.items():
            if isinstance(v, torch.Tensor):
                per_param[k] = v.detach().cpu().clone()
    return out
