"""The studio's Paint tab, session side: one pix2pixHD canvas per session (the model, the label
and instance maps, each instance's feature cluster, the last synthesis), edited by the
client's messages. The maths is the library's (synthesis/editing.py, synthesis/scene.py);
this module checks what a client sends and keeps the session's choices. Nothing here knows
about HTTP; callers hold the session's lock.

Edit messages (JSON objects, `op` says which):
    {"op": "brush", "class": C, "radius": R, "points": [[x, y], ...], "stroke": N}
        paint C along the polyline; a thing class paints one new instance per stroke number N
        (later messages with the same N extend it)
    {"op": "instance", "class": C, "box": [x0, y0, x1, y1], "shape": "rect" | "ellipse"}
        a new instance of thing class C (a fresh id)
    {"op": "erase", "points": [[x, y], ...]}
        remove the thing instances under the points (back to the stuff beneath)
    {"op": "cluster", "instance": ID | "all", "cluster": K | "random" | "default"}
        the instance's feature cluster: K, one drawn at random now, or the default (0)
Coordinates are image pixels (x right, y down, integers are pixel centres).
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..synthesis import editing
from .sessions import check_number, check_points

MAX_STROKE_POINTS = 512       # points in one brush or erase message
MAX_RADIUS = 64               # brush radius, image pixels
MAX_STROKE_NUMBER = 2 ** 31
DEFAULT_SIZE = 128
OPS = ("brush", "instance", "erase", "cluster")


@dataclass
class PaintState:
    model_id: str
    model: object                              # synthesis.Pix2PixHDModel
    canvas: editing.LabelCanvas
    table: dict                                # class names, colours, thing classes
    origin: dict                               # {"kind": "scene", "seed"} or blank / file
    seed: int = 0
    choices: dict = field(default_factory=dict)   # instance id -> cluster picked for it
    drawn: set = field(default_factory=set)       # ids whose cluster was drawn at random
    stroke: tuple | None = None                   # (stroke number, instance id it paints)
    seq: int = 0                                  # the client's number of the last edit applied
    image: torch.Tensor | None = None
    record: dict = field(default_factory=dict)
    ms: float = 0.0
    rng: np.random.Generator = None


def canvas_size(model) -> tuple[int, int]:
    """(h, w): the size the model was trained at (128 px when it does not say)."""
    res = model.info.get("resolution")
    if isinstance(res, list) and len(res) == 2 and all(isinstance(v, int) for v in res):
        w, h = res
    else:
        w = h = DEFAULT_SIZE
    from ..synthesis.scene import check_size
    check_size(model, h, w, "the canvas")
    return h, w


def start_paint(model_id: str, model, start="scene", seed=0, fill=None) -> PaintState:
    """A new canvas for `model`: the procedural scene of `seed` ("scene") or one stuff class
    (`fill`, "blank"); then synthesised once."""
    if start not in ("scene", "blank"):
        raise ValueError(f"start must be scene or blank, not {start!r}"[:200])
    check_number(seed, "seed", 0, 2 ** 32 - 1, integer=True)
    if not model.label_nc:
        raise ValueError(f"{model.name} translates images (label_nc 0): it has no label map "
                         "to paint")
    table = editing.class_table(model.info, model.label_nc)
    things = table["things"]
    h, w = canvas_size(model)
    if start == "scene":
        if h != w:
            raise ValueError(f"procedural scenes are square; this model works at {w}x{h}: "
                             "start from a blank canvas")
        canvas = editing.scene_canvas(seed, h, model.label_nc, table["names"], things)
        origin = {"kind": "scene", "seed": seed}
    else:
        if fill is None:
            fill = next((c for c in range(model.label_nc) if c not in things), 0)
        check_number(fill, "fill class", 0, model.label_nc - 1, integer=True)
        canvas = editing.blank_canvas((h, w), model.label_nc, things, fill)
        origin = {"kind": "blank", "fill": fill}
    state = PaintState(model_id, model, canvas, table, origin, seed=seed,
                       rng=np.random.default_rng(seed))
    render(state)
    return state


def _points(value, canvas, what="points") -> list[tuple[float, float]]:
    h, w = canvas.size
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_STROKE_POINTS:
        raise ValueError(f"{what} must be a list of 1 to {MAX_STROKE_POINTS} [x, y] points")
    return check_points(value, what, w, h, "canvas")


def _class(msg, state) -> int:
    return int(check_number(msg.get("class"), "class", 0, state.canvas.label_nc - 1,
                            integer=True))


def apply_edit(state: PaintState, msg: dict) -> None:
    """Apply one edit message (module doc); ValueError, one line, when it is malformed."""
    op = msg.get("op")
    canvas = state.canvas
    if op == "brush":
        cls = _class(msg, state)
        radius = check_number(msg.get("radius"), "radius", 0, MAX_RADIUS)
        points = _points(msg.get("points"), canvas)
        stroke = check_number(msg.get("stroke", 0), "stroke", 0, MAX_STROKE_NUMBER, integer=True)
        instance = None
        if cls in canvas.things:
            if state.stroke is not None and state.stroke[0] == stroke \
                    and state.stroke[1] // editing.INSTANCE_BASE == cls:
                instance = state.stroke[1]
            else:
                instance = editing.new_instance_id(canvas, cls)
                state.stroke = (stroke, instance)
        editing.paint_stroke(canvas, cls, points, radius, instance)
    elif op == "instance":
        cls = _class(msg, state)
        box = msg.get("box")
        if not (isinstance(box, list) and len(box) == 4):
            raise ValueError("box must be [x0, y0, x1, y1]")
        (x0, y0), (x1, y1) = _points([box[:2], box[2:]], canvas, "box")
        editing.place_instance(canvas, cls, (x0, y0, x1, y1), msg.get("shape", "rect"))
    elif op == "erase":
        ids = {editing.instance_at(canvas, int(round(x)), int(round(y)))
               for x, y in _points(msg.get("points"), canvas)}
        things = [i for i in sorted(ids) if editing.is_thing_instance(canvas, i)]
        if not things:
            names = ", ".join(state.table["names"][c] for c in sorted(canvas.things))
            raise ValueError(f"nothing to erase there: erase removes instances of thing "
                             f"classes ({names or 'none'})")
        for i in things:
            editing.erase_instance(canvas, i)
    elif op == "cluster":
        set_cluster(state, msg.get("instance"), msg.get("cluster"))
    else:
        raise ValueError(f"op must be one of {', '.join(OPS)}, not {op!r}"[:200])
    _forget_gone(state)


def set_cluster(state: PaintState, instance, choice) -> None:
    """Instance `instance` ("all": every instance) takes cluster `choice`: an index, "random"
    (one drawn now from the session's generator) or "default" (cluster 0, as synthesis)."""
    model = state.model
    if not model.feat_num:
        raise ValueError(f"{model.name} was trained without instance features: there are no "
                         "clusters to choose")
    if model.clusters is None:
        raise ValueError(f"{model.name} has no feature clusters yet (ganprior encode-features)")
    classes = editing.instance_classes(state.canvas)
    if instance == "all":
        if choice not in ("random", "default"):
            raise ValueError('every instance at once takes "random" or "default", not '
                             f'{choice!r}'[:200])
        targets = sorted(classes)
    else:
        check_number(instance, "instance", 0, editing.MAX_INSTANCE_ID, integer=True)
        if instance not in classes:
            raise ValueError(f"there is no instance {instance} on the canvas")
        targets = [instance]
    for i in targets:
        n = model.clusters.n(classes[i])
        if choice == "default":
            state.choices.pop(i, None)
            state.drawn.discard(i)
        elif n == 0:
            if instance != "all":
                raise ValueError(f"instance {i}: class {state.table['names'][classes[i]]} "
                                 "has no feature clusters")
        elif choice == "random":
            state.choices[i] = int(state.rng.integers(n))
            state.drawn.add(i)
        else:
            check_number(choice, "cluster", 0, n - 1, integer=True)
            state.choices[i] = int(choice)
            state.drawn.discard(i)


def _forget_gone(state: PaintState) -> None:
    """Choices of instances no longer on the canvas are dropped (their ids may be reused)."""
    present = set(np.unique(state.canvas.inst).tolist())
    state.choices = {i: k for i, k in state.choices.items() if i in present}
    state.drawn &= present


def load_map(state: PaintState, data: bytes, kind: str) -> None:
    """An uploaded label map ("label": instances made from it) or instance map ("inst", for
    the label map on the canvas) replaces the canvas's; ValueError when it does not fit."""
    canvas = state.canvas
    if kind == "label":
        label = editing.read_id_png(data, "label map", canvas.size)
        new = editing.canvas_from_maps(label, None, canvas.label_nc, canvas.things)
    elif kind == "inst":
        inst = editing.read_id_png(data, "instance map", canvas.size)
        new = editing.canvas_from_maps(canvas.label, inst, canvas.label_nc, canvas.things)
    else:
        raise ValueError(f"kind must be label or inst, not {kind!r}"[:200])
    state.canvas, state.stroke = new, None
    state.origin = {"kind": "file"}
    _forget_gone(state)


def render(state: PaintState) -> None:
    """Synthesise the canvas with the session's cluster choices."""
    from ..synthesis import synthesize_scene
    t0 = time.perf_counter()
    c = state.canvas
    image, record = synthesize_scene(state.model, c.label, c.inst,
                                     instance_clusters=dict(state.choices) or None)
    state.image, state.record = image.cpu(), record
    state.ms = 1000 * (time.perf_counter() - t0)


def _b64_u16(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<u2").tobytes()).decode()


def view(state: PaintState, full: bool = False) -> dict:
    """What the page redraws from: the maps (base64 little-endian uint16, row by row), the
    instances with their clusters, the timing; `full` adds the model's classes and size.
    (The server adds the image.)"""
    c = state.canvas
    model = state.model
    classes = editing.instance_classes(c)
    used = state.record.get("instances", {})
    instances = []
    for i, cls in sorted(classes.items()):
        entry = {"id": i, "class": cls, "thing": cls in c.things,
                 "clusters": model.clusters.n(cls) if model.clusters is not None else 0,
                 "cluster": used.get(str(i), {}).get("cluster"),
                 "choice": "random" if i in state.drawn else
                 ("picked" if i in state.choices else "default")}
        instances.append(entry)
    out = {"seq": state.seq, "label": _b64_u16(c.label), "inst": _b64_u16(c.inst),
           "instances": instances, "ms": round(state.ms, 1), "origin": state.origin}
    if full:
        h, w = c.size
        out.update({"model": state.model_id, "width": w, "height": h,
                    "label_nc": c.label_nc, "classes": state.table,
                    "features": bool(model.feat_num), "has_clusters": model.clusters is not None})
    return out


def label_file(state: PaintState) -> bytes:
    return editing.label_png(state.canvas.label, state.canvas.label_nc)


def instance_file(state: PaintState) -> bytes:
    return editing.instance_png(state.canvas.inst)
