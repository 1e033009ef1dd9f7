"""Studio sessions: one per browser tab, each with its own latent, points, mask, drag and undo
history, and the Paint tab's canvas (app/paint.py); a store that hands them out by id and
expires the idle ones.

Everything here is plain Python over the library (the drag engine, the inversion engine); the
server calls these methods from worker threads. Each session has one lock, held for a whole
step or edit, so a session's state is never seen half-updated; different sessions never share
a lock, so one tab's work never waits on another's.
"""
from __future__ import annotations

import io
import math
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field

import torch

from ..errors import GanpriorError

MAX_POINTS = 32          # handle -> target pairs per drag
MAX_UNDO = 20            # drags remembered for undo
MAX_SEED = 2 ** 32 - 1
MAX_DRAG_STEPS = 2000
MAX_INVERT_STEPS = 2000
MAX_TUNE_STEPS = 2000


class SessionExpired(GanpriorError):
    """The session id is unknown: never made, expired, or closed by its tab going away."""


class Busy(GanpriorError):
    """The session is running a drag or an inversion; the request needs it idle."""


class Full(GanpriorError):
    """The server has as many sessions as it allows."""


def check_number(value, what: str, lo: float, hi: float, integer: bool = False) -> float:
    """A finite number (an int when `integer`) in [lo, hi]; ValueError naming `what`."""
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        raise ValueError(f"{what} must be {'an integer' if integer else 'a number'}, "
                         f"not {value!r}"[:200])
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{what} must be from {lo:g} to {hi:g}, not {value!r}"[:200])
    return value


def check_points(value: list, what: str, width: int, height: int, surface: str):
    """A client's list of [x, y] pairs -> (x, y) floats on the width x height `surface`
    ("image", "canvas"); ValueError naming `what` for a malformed or outside point."""
    out = []
    for p in value:
        if not (isinstance(p, list) and len(p) == 2):
            raise ValueError(f"{what}: each point is [x, y], not {p!r}"[:200])
        x, y = (check_number(v, f"{what} coordinate", -math.inf, math.inf) for v in p)
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            raise ValueError(f"{what}: point ({x:g}, {y:g}) is outside the {width}x{height} "
                             f"{surface} (0..{width - 1}, 0..{height - 1})")
        out.append((float(x), float(y)))
    return out


def parse_pairs(handles, targets, size: int) -> tuple[list, list]:
    """Client points -> lists of (x, y) floats inside a size x size image; ValueError when
    malformed, outside the image, unpaired or too many."""
    out = []
    for name, pts in (("handles", handles), ("targets", targets)):
        if not isinstance(pts, list) or len(pts) > MAX_POINTS:
            raise ValueError(f"{name} must be a list of at most {MAX_POINTS} [x, y] points")
        out.append(check_points(pts, name, size, size, "image"))
    if len(out[0]) != len(out[1]):
        raise ValueError(f"{len(out[0])} handles but {len(out[1])} targets: every handle needs "
                         "a target")
    if not out[0]:
        raise ValueError("place at least one handle -> target pair first")
    return out[0], out[1]


def parse_mask(data: bytes | None, size: int) -> torch.Tensor | None:
    """A size*size byte string (row by row, 1 = flexible, 0 = fixed) -> [size, size] float
    mask, or None (everything flexible)."""
    if data is None:
        return None
    if len(data) != size * size:
        raise ValueError(f"the mask has {len(data)} pixels; the image has {size}x{size} = "
                         f"{size * size}")
    mask = torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(size, size)
    if int(mask.max()) > 1:
        raise ValueError("mask pixels must be 0 (fixed) or 1 (flexible)")
    return mask.float()


def drag_settings(raw, resolution: int):
    """The client's drag settings (any missing one takes the engine's default) as the
    engine's DragSettings; ValueError for an unknown name or a value out of range."""
    from ..editing.drag import DragSettings
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ValueError("settings must be an object")
    allowed = {"lr": (1e-5, 1.0, False), "lambda_mask": (0.0, 1e4, False),
               "max_steps": (1, MAX_DRAG_STEPS, True), "n_ws": (1, 64, True)}
    unknown = set(raw) - set(allowed) - {"tracking", "space"}
    if unknown:
        raise ValueError(f"unknown drag settings: {', '.join(sorted(unknown))[:200]}")
    values = {k: check_number(raw[k], k, lo, hi, integer)
              for k, (lo, hi, integer) in allowed.items() if k in raw}
    for k, options in (("tracking", ("paper", "robust")), ("space", ("w+", "w"))):
        if k in raw:
            if raw[k] not in options:
                raise ValueError(f"{k} must be {' or '.join(options)}, not {raw[k]!r}"[:200])
            values[k] = raw[k]
    return DragSettings(**values)


@dataclass
class Snapshot:
    """What undo goes back to: the latent before a drag and the points it started from."""
    ws: torch.Tensor
    handles: list
    targets: list


@dataclass
class StudioSession:
    """One tab's work. Call its methods through `locked` (the server does)."""
    id: str
    last_seen: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    model_id: str | None = None
    G: object = None
    origin: dict = field(default_factory=dict)   # {"kind": "seed", "seed", "trunc"} or photo
    start_ws: torch.Tensor | None = None         # the latent of the generated/inverted image
    ws: torch.Tensor | None = None               # the current latent
    handles: list = field(default_factory=list)
    targets: list = field(default_factory=list)
    mask: torch.Tensor | None = None
    drag: object = None                          # the running DragSession
    inversion: object = None                     # the running photo inversion
    photo: torch.Tensor | None = None
    inverted: dict | None = None                 # the photo's inversion parameters (the pivot)
    tune_steps: int = 0                          # PTI steps after the inversion (0: none)
    history: list = field(default_factory=list)  # Snapshots, newest last
    steps_run: int = 0                           # drag steps since the image was made
    drag_settings: dict | None = None            # the last drag's engine settings
    running: str | None = None                   # "drag" or "inversion" while one runs
    paint: object = None                         # the Paint tab's canvas (app/paint.py)
    closed: bool = False

    # --- making the starting image -------------------------------------------------------
    def start_from_seed(self, model_id: str, G, seed, trunc) -> torch.Tensor:
        """The image of `seed` at truncation `trunc` becomes the starting point."""
        self._require_idle()
        check_number(seed, "seed", 0, MAX_SEED, integer=True)
        check_number(trunc, "truncation", 0.0, 2.0)
        from ..generate import seeds_to_ws
        _, ws = seeds_to_ws(G, [seed], truncation_psi=float(trunc))
        self._start(model_id, G, ws, {"kind": "seed", "seed": seed, "trunc": float(trunc)})
        return self.image()

    def _start(self, model_id, G, ws, origin):
        self.model_id, self.G, self.origin = model_id, G, origin
        self.start_ws = ws.detach().clone()
        self.ws = self.start_ws.clone()
        self.handles, self.targets, self.mask = [], [], None
        self.drag = self.inversion = None
        self.history, self.steps_run, self.drag_settings = [], 0, None

    def set_photo(self, model_id: str, G, data: bytes, max_pixels: int) -> torch.Tensor:
        """Check and decode an uploaded photo (centre square at the model's resolution); the
        inversion then runs step by step (`begin_inversion`)."""
        from PIL import Image

        from ..images import check_image, load_image
        self._require_idle()
        check_image(io.BytesIO(data), name="photo")  # format, header, library-wide limits
        with Image.open(io.BytesIO(data)) as im:     # header only: no pixels decoded yet
            w, h = im.size
        if w * h > max_pixels:
            raise ValueError(f"photo: {w}x{h} = {w * h:,} pixels is more than this server "
                             f"accepts ({max_pixels:,})")
        target = load_image(io.BytesIO(data), resolution=G.img_resolution, name="photo",
                            quiet=True, channels=G.img_channels)
        self.model_id, self.G, self.photo = model_id, G, target
        self.drag = self.inversion = None
        return target

    def begin_inversion(self, steps, tune_steps=0) -> None:
        """Start inverting the uploaded photo (one step per `inversion_step`) as `ganprior
        drag --image` does (editing.drag.invert_photo's settings: W+, or z for a generator
        without W; lr 0.03, loss auto); `tune_steps` > 0 then tunes a copy of the generator
        on it (PTI, `tune_photo`)."""
        self._require_idle()
        if self.photo is None:
            raise ValueError("upload a photo first")
        check_number(steps, "inversion steps", 1, MAX_INVERT_STEPS, integer=True)
        check_number(tune_steps, "tuning steps", 0, MAX_TUNE_STEPS, integer=True)
        from ..inversion import make_method
        from ..inversion.engine import InversionSession
        method = make_method("w+" if "w+" in self.G.latent_spaces else "z")
        self.inversion = InversionSession(self.G, self.photo.to(self.G.device), method,
                                          steps=steps, lr=0.03, loss="auto")
        self.tune_steps, self.running = tune_steps, "inversion"

    def inversion_step(self, show_every: int = 10) -> dict:
        """One inversion step: {"step", "steps", "psnr", "done", "image"}; "image" is the
        current fit [1, C, H, W] every `show_every` steps and at the end, else None."""
        inv = self.inversion
        inv.step()
        show = inv.done or inv.step_count % show_every == 0
        return {"step": inv.step_count, "steps": inv.steps, "done": inv.done,
                "psnr": float(inv.last["psnr"][0]),
                "image": inv.state()["image"].cpu() if show else None}

    def finish_inversion(self) -> None:
        """The best parameters the inversion found (so far, when stopped early) become the
        starting point; the session stays busy when tuning comes next."""
        from ..inversion.tuning import pivot_ws
        inv = self.inversion
        result = inv.result()
        self.inverted = {k: v.to(self.G.device) for k, v in result.params.items()}
        ws = pivot_ws(self.G, self.inverted)
        self._start(self.model_id, self.G, ws, {"kind": "photo", "inversion_steps": inv.step_count,
                                               "psnr": round(result.psnr[0], 2),
                                               "loss": inv.loss_info.get("loss")})
        self.inversion = inv if self.tune_steps else None
        self.running = "inversion" if self.tune_steps else None

    def tune_photo(self) -> None:
        """PTI: a copy of the generator tuned so that it renders the photo at the inverted
        latent; this session drags with that copy (the shared model is untouched)."""
        from ..inversion.tuning import tune
        result = tune(self.G, self.photo.to(self.G.device), self.inversion.method,
                      self.inverted, kind="pti", steps=self.tune_steps)
        origin = dict(self.origin, tuning_steps=self.tune_steps, tuned_psnr=round(result.psnr, 2))
        self._start(self.model_id, result.G.eval().requires_grad_(False), self.start_ws, origin)
        self.running = None

    # --- dragging ------------------------------------------------------------------------
    def begin_drag(self, handles, targets, mask: bytes | None, settings: dict) -> None:
        """A new drag from the current latent with these points, mask and settings (the
        state before it is remembered for undo)."""
        self._require_idle()
        self._require_image()
        size = self.G.img_resolution
        handles, targets = parse_pairs(handles, targets, size)
        mask_t = parse_mask(mask, size)
        from ..editing.drag import DragSession
        drag = DragSession(self.G, self.ws, handles, targets, mask=mask_t,
                           settings=drag_settings(settings, size))
        # undo goes back to this latent with the points as placed (to retry other settings)
        self.history = (self.history + [Snapshot(self.ws.clone(), handles, targets)])[-MAX_UNDO:]
        self.drag, self.handles, self.targets, self.mask = drag, handles, targets, mask_t
        self.drag_settings = asdict(drag.settings)
        self.running = "drag"

    def drag_step(self) -> dict:
        """One optimisation step of the running drag (the engine's step() record)."""
        out = self.drag.step()
        self.ws = self.drag.ws().detach()
        self.handles = [tuple(map(float, p)) for p in out["points"]]
        self.steps_run += 1
        return out

    def end_drag(self) -> None:
        """Drop the drag's optimiser and features; its result stays as the current latent."""
        self.drag, self.running = None, None

    def abort(self) -> None:
        """After a failed step: drop the run (the latent stays as the last good step left it)."""
        self.drag = self.inversion = self.running = None
        self.tune_steps = 0

    def undo(self) -> None:
        """Back to the latent and points before the last drag."""
        self._require_idle()
        self._require_image()
        if not self.history:
            raise ValueError("nothing to undo")
        snap = self.history.pop()
        self.ws, self.handles, self.targets, self.drag = snap.ws, snap.handles, snap.targets, None

    def reset(self) -> None:
        """Back to the starting image, no points, no mask, no history."""
        self._require_idle()
        self._require_image()
        self._start(self.model_id, self.G, self.start_ws, self.origin)

    # --- reading -------------------------------------------------------------------------
    def _require_idle(self):
        if self.running:
            what = "a drag" if self.running == "drag" else "an inversion"
            raise Busy(f"this session is running {what}; stop it first")

    def _require_image(self):
        if self.ws is None:
            raise ValueError("generate an image or upload a photo first")

    def image(self) -> torch.Tensor:
        """The current image [1, C, H, W] in [-1, 1] (CPU)."""
        self._require_image()
        with torch.no_grad():
            return self.G.synthesize(self.ws.to(self.G.device)).cpu()

    def points_record(self) -> dict:
        """What the points download holds: model, origin, points, mask size, steps."""
        self._require_image()
        return {"model": self.model_id, "origin": self.origin,
                "resolution": self.G.img_resolution,
                "handles": [list(p) for p in self.handles],
                "targets": [list(p) for p in self.targets],
                "mask_flexible_pixels": None if self.mask is None else int(self.mask.sum()),
                "drag_steps": self.steps_run, "undo_depth": len(self.history),
                # the settings of the last drag (None before one ran), so it can be redone
                "settings": self.drag_settings}

    def painting(self):
        """The Paint tab's canvas (app/paint.py PaintState); ValueError before one is made."""
        if self.paint is None:
            raise ValueError("choose a pix2pixHD model and start a canvas first")
        return self.paint

    def latent_bytes(self) -> bytes:
        """The current latent as a safetensors file ("ws" [1, num_ws, w_dim]), which
        `ganprior generate --projected-w` and `mix` read."""
        from safetensors.torch import save
        self._require_image()
        return save({"ws": self.ws.detach().cpu().contiguous()},
                    metadata={"model": str(self.model_id), "format": "ganprior-studio"})

    def locked(self, fn, *args):
        """fn(*args) with the session's lock held; SessionExpired once the session is closed.
        A session closed while fn ran is freed here, when fn is over."""
        with self.lock:
            if self.closed:
                raise SessionExpired("this session has expired or was closed; reload the page")
            try:
                return fn(*args)
            finally:
                if self.closed:
                    self.free()

    def free(self) -> None:
        """Release the tensors (the tab is gone). Call with the lock held."""
        self.closed = True
        self.drag = self.inversion = self.G = self.photo = self.inverted = None
        self.ws = self.start_ws = self.mask = self.paint = None
        self.history = []


class SessionStore:
    """Sessions by id; idle ones (no request for `ttl` seconds) are dropped by `reap`."""

    def __init__(self, ttl: float = 1800.0, max_sessions: int = 16, clock=time.monotonic):
        self.ttl, self.max_sessions, self.clock = ttl, max_sessions, clock
        self._sessions: dict[str, StudioSession] = {}
        self._lock = threading.Lock()

    def create(self) -> StudioSession:
        self.reap()
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise Full(f"the studio already has {self.max_sessions} open sessions; close a "
                           "tab or wait for idle ones to expire")
            s = StudioSession(id=secrets.token_urlsafe(16), last_seen=self.clock())
            self._sessions[s.id] = s
            return s

    def get(self, sid) -> StudioSession:
        """The session `sid`, marked as just used; SessionExpired when there is none."""
        self.reap()
        with self._lock:
            s = self._sessions.get(sid) if isinstance(sid, str) else None
            if s is None:
                raise SessionExpired("this session has expired or was closed; reload the page")
            s.last_seen = self.clock()
            return s

    def touch(self, s: StudioSession) -> None:
        s.last_seen = self.clock()

    def remove(self, sid) -> None:
        with self._lock:
            s = self._sessions.pop(sid, None)
        if s is None:
            return
        s.closed = True  # a step in flight frees the session when it ends (see `locked`)
        if s.lock.acquire(blocking=False):  # never wait here: callers may be the event loop
            try:
                s.free()
            finally:
                s.lock.release()

    def reap(self) -> list[str]:
        """Drop the sessions idle for longer than ttl; returns their ids."""
        now = self.clock()
        with self._lock:
            old = [sid for sid, s in self._sessions.items() if now - s.last_seen > self.ttl]
        for sid in old:
            self.remove(sid)
        return old

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, sid) -> bool:
        return sid in self._sessions
