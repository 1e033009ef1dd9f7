"""Procedural street scenes: label map, instance map and image triples for training and
measuring pix2pixHD offline.

Each scene is a side view of a street: sky (time of day, clouds), a far strip and a near strip
(sidewalk or grass), a road with lane marks, a row of buildings (each with its own colour,
wall texture, window grid and lit windows), trees (round or conifer, green or autumn),
street poles and cars (each its own colour and size, nearer ones lower and larger); then a
global lighting (brightness, colour cast, a side-to-side gradient) and sensor noise.
Everything per instance is drawn from a few discrete families plus jitter, so instance
features cluster meaningfully (k-means finds "red cars", "lit brick buildings", ...).

Drawing is numpy-vectorised per shape on the shape's bounding box; scene i of seed s is drawn
from `numpy.random.default_rng([s, i])` alone, so the same (seed, index, size) gives the same
pixels whatever --n is, and the same files (bit-identical with the same numpy and Pillow).

Files (the pix2pixHD layout, docs/pix2pixhd.md): {phase}_label/NNNNNN.png (8-bit gray, class
ids 0..7), {phase}_inst/NNNNNN.png (16-bit gray, Cityscapes-style instance ids: class*1000 + k
for "thing" classes, the class id for "stuff"), {phase}_img/NNNNNN.png (RGB), scenes.json.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import atomic_write, write_json
from ..progress import progress_bar

CLASSES = ("sky", "grass", "road", "sidewalk", "building", "tree", "car", "pole")
THINGS = ("building", "tree", "car", "pole")
LABEL_NC = len(CLASSES)
INSTANCE_BASE = 1000  # thing instance id = class * 1000 + k (Cityscapes' convention)
CLASS = {name: i for i, name in enumerate(CLASSES)}
# Cityscapes' colours for the same classes, to show label maps
PALETTE = {"sky": (70, 130, 180), "grass": (107, 142, 35), "road": (128, 64, 128),
           "sidewalk": (244, 35, 232), "building": (70, 70, 70), "tree": (0, 150, 0),
           "car": (0, 0, 142), "pole": (220, 220, 0)}
VERSION = 1  # bump when a change alters the pixels of a seed
SIZE_MULTIPLE = 32  # pix2pixHD's default global net (4 downsamplings) + one enhancer
SIZE_RANGE = (32, 1024)
MAX_SCENES = 1_000_000

CAR_COLOURS = [(0.75, 0.08, 0.08), (0.1, 0.2, 0.65), (0.9, 0.9, 0.88), (0.08, 0.08, 0.09),
               (0.62, 0.64, 0.66), (0.92, 0.75, 0.1), (0.1, 0.45, 0.2), (0.9, 0.45, 0.1)]
WALL_COLOURS = [(0.6, 0.27, 0.2), (0.62, 0.62, 0.6), (0.82, 0.74, 0.56), (0.38, 0.47, 0.6),
                (0.88, 0.87, 0.84), (0.32, 0.32, 0.36), (0.72, 0.52, 0.42)]
LEAF_COLOURS = [(0.18, 0.45, 0.14), (0.28, 0.55, 0.18), (0.1, 0.32, 0.14), (0.75, 0.5, 0.1),
                (0.8, 0.3, 0.08)]
# time of day: sky top, sky at the horizon, colour cast, brightness range, share of lit windows
TIMES = {"day": ((0.25, 0.5, 0.85), (0.7, 0.82, 0.95), (1.0, 1.0, 1.0), (0.95, 1.1), 0.1),
         "dusk": ((0.2, 0.22, 0.45), (0.95, 0.6, 0.35), (1.08, 0.92, 0.8), (0.65, 0.85), 0.6),
         "overcast": ((0.55, 0.57, 0.6), (0.78, 0.79, 0.8), (0.95, 0.98, 1.02), (0.8, 0.95),
                      0.25)}


@dataclass
class Scene:
    label: np.ndarray  # [S, S] uint8 class ids
    inst: np.ndarray   # [S, S] int32 instance ids
    image: np.ndarray  # [S, S, 3] uint8


class _Canvas:
    """The three maps being drawn; `put` paints a mask inside a box (later shapes occlude)."""

    def __init__(self, size: int):
        self.size = size
        self.image = np.zeros((size, size, 3), np.float32)
        self.label = np.zeros((size, size), np.uint8)
        self.inst = np.zeros((size, size), np.int32)
        self.counts = {c: 0 for c in THINGS}

    def box(self, y0, y1, x0, x1):
        """Clipped integer box and its local coordinate grids (None when empty)."""
        s = self.size
        y0, y1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)), s)
        x0, x1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)), s)
        if y0 >= y1 or x0 >= x1:
            return None
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        return (slice(y0, y1), slice(x0, x1)), ys, xs

    def new_instance(self, cls: str) -> int:
        k = self.counts[cls]
        self.counts[cls] += 1
        return CLASS[cls] * INSTANCE_BASE + k

    def put(self, where, mask, colour, cls: str, inst_id: int | None = None):
        # copyto with where= writes in place without gathering the masked pixels first
        np.copyto(self.image[where], colour, where=mask[..., None])
        np.copyto(self.label[where], CLASS[cls], where=mask)
        np.copyto(self.inst[where], CLASS[cls] if inst_id is None else inst_id, where=mask)


def _smooth_noise(rng, h: int, w: int, cells: int) -> np.ndarray:
    """[h, w] values in [0, 1]: a (cells+1)^2 random grid, bilinearly interpolated."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    fy = np.linspace(0, cells, h, endpoint=False, dtype=np.float32)
    fx = np.linspace(0, cells, w, endpoint=False, dtype=np.float32)
    iy, ix = fy.astype(int), fx.astype(int)
    ty, tx = (fy - iy)[:, None], (fx - ix)[None, :]
    a, b = grid[iy][:, ix], grid[iy][:, ix + 1]
    c, d = grid[iy + 1][:, ix], grid[iy + 1][:, ix + 1]
    return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty


def _jitter(rng, colour, amount=0.06):
    c = np.asarray(colour, np.float32) + rng.normal(0, amount, 3).astype(np.float32)
    return np.minimum(np.maximum(c, 0), 1)  # (np.clip's overhead dominates on 3 values)


def _sky(cv: _Canvas, rng, time: str, horizon: float):
    top, bottom = (np.asarray(c, np.float32) for c in TIMES[time][:2])
    s = cv.size
    h = min(s, int(np.ceil(horizon)) + 1)  # below it the ground covers everything
    t = (np.arange(h, dtype=np.float32) / max(horizon, 1)).clip(0, 1)[:, None, None]
    sky = top * (1 - t) + bottom * t
    clouds = _smooth_noise(rng, h, s, int(rng.integers(3, 7)))
    cover = rng.uniform(0.45, 0.8)
    amount = np.clip((clouds - cover) * 3, 0, 1)[..., None] * rng.uniform(0.5, 0.9)
    cv.image[:h] = sky * (1 - amount) + amount * (0.95 if time != "dusk" else 0.85)
    cv.label[:] = CLASS["sky"]
    cv.inst[:] = CLASS["sky"]


def _strip(cv: _Canvas, rng, kind: str, y_top, slope: float, y_bottom=None):
    """Grass or sidewalk between two slanted lines y = y0 + slope * (x - S/2)."""
    s, u = cv.size, cv.size / 128
    tilt = abs(slope) * s / 2
    box = cv.box(y_top - tilt, s if y_bottom is None else y_bottom + tilt, 0, s)
    if box is None:
        return
    where, ys, xs = box
    line = ys >= y_top + slope * (xs - s / 2)
    if y_bottom is not None:
        line &= ys < y_bottom + slope * (xs - s / 2)
    shape = line.shape + (1,)
    if kind == "grass":
        base = _jitter(rng, LEAF_COLOURS[int(rng.integers(0, 3))], 0.05)
        colour = base * (0.8 + 0.4 * rng.random(shape, dtype=np.float32))
    else:
        base = _jitter(rng, (0.68, 0.66, 0.62), 0.05)
        tile = max(2, int(round(rng.uniform(4, 8) * u)))
        joints = ((xs.astype(int) % tile == 0) | (ys.astype(int) % max(2, tile // 2) == 0))
        colour = base * (1 - 0.18 * joints[..., None]) * (
            0.95 + 0.1 * rng.random(shape, dtype=np.float32))
    cv.put(where, line, colour, kind)


def _road(cv: _Canvas, rng, y_top: float, y_bottom: float, slope: float):
    s, u = cv.size, cv.size / 128
    tilt = abs(slope) * s / 2
    where, ys, xs = cv.box(y_top - tilt, y_bottom + tilt, 0, s)
    offset = slope * (xs - s / 2)
    mask = (ys >= y_top + offset) & (ys < y_bottom + offset)
    grey = rng.uniform(0.22, 0.38)
    colour = np.full(mask.shape + (3,), grey, np.float32) * _jitter(rng, (1, 1, 1), 0.03)
    colour *= 0.9 + 0.2 * rng.random(mask.shape + (1,), dtype=np.float32)
    mid = (y_top + y_bottom) / 2 + offset
    dash, gap = rng.uniform(6, 12) * u, rng.uniform(5, 10) * u
    phase = rng.uniform(0, dash + gap)
    lane = (np.abs(ys - mid) < max(0.6, 0.8 * u)) & (((xs + phase) % (dash + gap)) < dash)
    paint = (0.92, 0.92, 0.9) if rng.random() < 0.7 else (0.9, 0.75, 0.2)
    colour[lane] = paint
    cv.put(where, mask, colour, "road")


def _building(cv: _Canvas, rng, x0: float, width: float, base: float, height: float,
              lit_share: float):
    u = cv.size / 128
    top = base - height
    roof = height * rng.uniform(0.15, 0.35) if rng.random() < 0.2 else 0.0
    box = cv.box(top - roof, base, x0, x0 + width)
    if box is None:
        return
    where, ys, xs = box
    cx = x0 + width / 2
    mask = (ys >= top - roof * (1 - np.abs(xs - cx) / (width / 2))) & (xs < x0 + width)
    wall = _jitter(rng, WALL_COLOURS[int(rng.integers(0, len(WALL_COLOURS)))], 0.05)
    # shading from separable row / column factors (texture, cornice) times per-pixel grain
    rows = np.where(ys < top + max(1, u), 0.7, 1.0).astype(np.float32)    # the cornice
    cols = np.ones_like(xs)
    texture = int(rng.integers(0, 3))  # 0 plain, 1 brick courses, 2 vertical panels
    if texture == 1:
        course = max(2, int(round(2 * u)))
        rows *= 1 - 0.15 * ((ys.astype(int) - int(top)) % course == 0)
    elif texture == 2:
        panel = max(3, int(round(rng.uniform(3, 6) * u)))
        cols *= 1 - 0.12 * ((xs.astype(int) - int(x0)) % panel == 0)
    grain = rng.random(mask.shape, dtype=np.float32)
    shade = (0.92 + 0.16 * grain) * rows * cols
    colour = shade[..., None] * wall
    # windows: a grid with its own spacing and size; some lit
    px, py = rng.uniform(5, 10) * u, rng.uniform(6, 11) * u
    ww, wh = px * rng.uniform(0.35, 0.65), py * rng.uniform(0.35, 0.6)
    mx, my = rng.uniform(1.5, 3) * u, rng.uniform(2, 4) * u
    lx, ly = xs - x0 - mx, ys - top - my
    in_col = (lx >= 0) & (lx % px < ww) & (xs < x0 + width - mx)     # [1, w]
    in_row = (ly >= 0) & (ly % py < wh) & (ys < base - 2 * my)       # [h, 1]
    col = (lx // px).astype(int) % 32
    row = (ly // py).astype(int) % 32
    lit = rng.random((32, 32)) < np.clip(lit_share + rng.normal(0, 0.15), 0, 1)
    glass = _jitter(rng, (0.12, 0.16, 0.22), 0.03)
    light = _jitter(rng, (0.95, 0.82, 0.45), 0.05)
    window = in_row & in_col
    pane = np.where(lit[row, col][..., None], light, glass)
    np.copyto(colour, pane, where=window[..., None])
    cv.put(where, mask, colour, "building", cv.new_instance("building"))


def _tree(cv: _Canvas, rng, x: float, base: float, scale: float):
    u = cv.size / 128 * scale
    tree = cv.new_instance("tree")
    trunk_h, trunk_w = rng.uniform(8, 16) * u, max(1.0, rng.uniform(1.5, 3) * u)
    box = cv.box(base - trunk_h, base, x - trunk_w / 2, x + trunk_w / 2)
    bark = _jitter(rng, (0.35, 0.23, 0.12), 0.04)
    if box is not None:
        where, ys, xs = box
        cv.put(where, np.ones(np.broadcast_shapes(ys.shape, xs.shape), bool), bark, "tree", tree)
    leaf = _jitter(rng, LEAF_COLOURS[int(rng.integers(0, len(LEAF_COLOURS)))], 0.05)
    top = base - trunk_h
    if rng.random() < 0.3:  # conifer: a triangle
        h, w = rng.uniform(18, 30) * u, rng.uniform(9, 15) * u
        box = cv.box(top - h, top + 2 * u, x - w / 2, x + w / 2)
        if box is None:
            return
        where, ys, xs = box
        mask = np.abs(xs - x) <= (ys - (top - h)) / h * w / 2
    else:  # round: a few overlapping discs
        r = rng.uniform(6, 11) * u
        k = int(rng.integers(3, 6))
        centres = np.stack([x + rng.uniform(-0.8, 0.8, k) * r,
                            top - r * 0.6 + rng.uniform(-0.9, 0.2, k) * r], 1)
        radii = r * rng.uniform(0.55, 0.9, k)
        box = cv.box((centres[:, 1] - radii).min(), (centres[:, 1] + radii).max(),
                     (centres[:, 0] - radii).min(), (centres[:, 0] + radii).max())
        if box is None:
            return
        where, ys, xs = box
        mask = np.zeros(np.broadcast_shapes(ys.shape, xs.shape), bool)
        for (cx, cy), rr in zip(centres, radii):
            mask |= (xs - cx) ** 2 + (ys - cy) ** 2 <= rr * rr
    shade = 0.7 + 0.5 * rng.random(mask.shape + (1,), dtype=np.float32)
    cv.put(where, mask, leaf * shade, "tree", tree)


def _pole(cv: _Canvas, rng, x: float, base: float, scale: float):
    u = cv.size / 128 * scale
    pole = cv.new_instance("pole")
    h, w = rng.uniform(28, 45) * u, max(1.0, 1.2 * u)
    metal = _jitter(rng, (0.3, 0.31, 0.33), 0.05)
    arm = rng.uniform(4, 8) * u * (1 if rng.random() < 0.5 else -1)
    for y0, y1, x0, x1 in [(base - h, base, x - w / 2, x + w / 2),
                           (base - h, base - h + w, min(x, x + arm), max(x, x + arm))]:
        box = cv.box(y0, y1, x0, x1)
        if box is not None:
            where, ys, xs = box
            cv.put(where, np.ones(np.broadcast_shapes(ys.shape, xs.shape), bool), metal,
                   "pole", pole)


def _car(cv: _Canvas, rng, x: float, bottom: float, length: float):
    car = cv.new_instance("car")
    r = 0.11 * length
    body_h = length * rng.uniform(0.22, 0.3)
    cabin_h = length * rng.uniform(0.16, 0.22)
    body_top, body_bottom = bottom - r * 0.6 - body_h, bottom - r * 0.6
    box = cv.box(body_top - cabin_h, bottom, x - length / 2, x + length / 2)
    if box is None:
        return
    where, ys, xs = box
    # a soft shadow on whatever is below (road pixels keep their label)
    sh = cv.box(bottom - r, bottom + r * 0.5, x - length * 0.55, x + length * 0.55)
    if sh is not None:
        d = ((sh[2] - x) / (length * 0.55)) ** 2 + ((sh[1] - bottom) / (r * 0.75)) ** 2
        cv.image[sh[0]] *= np.where(d < 1, 0.6 + 0.4 * d, 1)[..., None]
    cy, half = (body_top + body_bottom) / 2, body_h / 2
    body = ((xs - x) / (length / 2)) ** 4 + ((ys - cy) / half) ** 4 <= 1
    forward = 1 if rng.random() < 0.5 else -1
    c0 = x + forward * length * rng.uniform(-0.3, -0.2)   # cabin centre leans backwards
    cw = length * rng.uniform(0.42, 0.55)
    rise = np.clip((body_top - ys) / cabin_h, 0, 1)
    cabin = (ys <= body_top + 1) & (ys >= body_top - cabin_h) & (
        np.abs(xs - c0) <= cw / 2 * (1 - 0.35 * rise))
    wheels = np.zeros(body.shape, bool)
    for wx in (x - length * 0.3, x + length * 0.3):
        wheels |= (xs - wx) ** 2 + (ys - (bottom - r)) ** 2 <= r * r
    paint = _jitter(rng, CAR_COLOURS[int(rng.integers(0, len(CAR_COLOURS)))], 0.05)
    shape = body | cabin | wheels
    colour = np.broadcast_to(paint, shape.shape + (3,)).copy()
    colour *= (0.85 + 0.3 * np.clip((cy - ys) / half, -1, 1) * 0.5)[..., None]  # top lit
    inset = max(1.0, 0.02 * length)
    glass = cabin & (ys >= body_top - cabin_h + inset) & (
        np.abs(xs - c0) <= cw / 2 * (1 - 0.35 * rise) - inset)
    colour[glass] = _jitter(rng, (0.2, 0.26, 0.32), 0.03)
    colour[wheels] = (0.07, 0.07, 0.07)
    hub = np.zeros(body.shape, bool)
    for wx in (x - length * 0.3, x + length * 0.3):
        hub |= (xs - wx) ** 2 + (ys - (bottom - r)) ** 2 <= (0.4 * r) ** 2
    colour[hub] = (0.6, 0.6, 0.6)
    lamp = body & (np.abs(xs - (x + forward * length * 0.47)) < 0.03 * length) & (
        np.abs(ys - (cy - half * 0.2)) < 0.12 * body_h)
    colour[lamp] = (1.0, 0.95, 0.7)
    cv.put(where, shape, colour, "car", car)


def render_scene(rng: np.random.Generator, size: int = 128) -> Scene:
    """One scene of `size` x `size` pixels drawn from `rng`."""
    s, u = size, size / 128
    cv = _Canvas(s)
    time = str(rng.choice(list(TIMES), p=[0.6, 0.25, 0.15]))
    horizon = rng.uniform(0.38, 0.52) * s
    _sky(cv, rng, time, horizon)
    slope = rng.uniform(-0.06, 0.06)
    road_top = horizon + rng.uniform(0.04, 0.1) * s
    road_bottom = road_top + rng.uniform(0.26, 0.38) * s
    # the far strip reaches below the road's highest point; the road covers the rest
    _strip(cv, rng, "sidewalk" if rng.random() < 0.7 else "grass", horizon, 0.0,
           road_top + abs(slope) * s / 2 + 1)
    _road(cv, rng, road_top, road_bottom, slope)
    _strip(cv, rng, "sidewalk" if rng.random() < 0.5 else "grass", road_bottom, slope)

    # buildings, left to right with occasional gaps; the row's base is the horizon
    lit = TIMES[time][4]
    x = -rng.uniform(0, 0.15) * s
    while x < s:
        width = rng.uniform(0.14, 0.34) * s
        if rng.random() < 0.2:
            x += rng.uniform(0.03, 0.12) * s  # a gap: sky shows
        _building(cv, rng, x, width, horizon + 1, rng.uniform(0.12, 0.42) * s, lit)
        x += width * rng.uniform(0.8, 1.0)  # neighbours may overlap a little

    far = horizon + (road_top - horizon) * 0.6  # where far trees and poles stand
    for _ in range(int(rng.integers(1, 4))):
        _tree(cv, rng, rng.uniform(0, s), far + rng.uniform(-1, 1) * u, rng.uniform(0.7, 1.0))
    for _ in range(int(rng.integers(0, 3))):
        _pole(cv, rng, rng.uniform(0, s), far, 0.8)

    # cars: far (higher, smaller) to near (lower, larger), so nearer ones occlude
    n_cars = int(rng.integers(1, 6))
    t = np.sort(rng.uniform(0.35, 1.0, n_cars))
    for ti in t:
        x = rng.uniform(0.05, 0.95) * s
        bottom = road_top + ti * (road_bottom - road_top) + slope * (x - s / 2)
        _car(cv, rng, x, bottom, (0.16 + 0.2 * ti) * s * rng.uniform(0.9, 1.1))

    near = s - rng.uniform(0.0, 0.05) * s
    for _ in range(int(rng.integers(0, 3))):
        _tree(cv, rng, rng.uniform(0, s), near, rng.uniform(1.2, 1.6))
    for _ in range(int(rng.integers(0, 2))):
        _pole(cv, rng, rng.uniform(0, s), near, 1.3)

    # lighting: brightness, the time's colour cast, a side-to-side gradient; then noise
    cast = np.asarray(TIMES[time][2], np.float32) * _jitter(rng, (1, 1, 1), 0.03)
    gain = rng.uniform(*TIMES[time][3])
    side = 1 + rng.uniform(-0.15, 0.15) * (np.arange(s, dtype=np.float32) / s - 0.5)
    light = (255 * gain * cast)[None, None, :] * side[None, :, None]  # [1, S, 3]
    img = cv.image * light
    img += (255 * rng.uniform(0.008, 0.03)) * rng.standard_normal(img.shape, dtype=np.float32)
    img += 0.5
    image = np.clip(img, 0, 255, out=img).astype(np.uint8)
    return Scene(cv.label, cv.inst, image)


def scene(seed: int, index: int, size: int = 128) -> Scene:
    """Scene `index` of the set drawn with `seed` (independent of every other scene)."""
    return render_scene(np.random.default_rng([seed, index]), size)


def colourise(label: np.ndarray) -> np.ndarray:
    """[H, W] class ids -> [H, W, 3] uint8 in PALETTE's colours (to look at label maps)."""
    table = np.array([PALETTE[c] for c in CLASSES], np.uint8)
    return table[label]


def check_options(n: int, size: int, phase: str, seed: int):
    """ValueError (one line) for options `write_scenes` cannot use."""
    lo, hi = SIZE_RANGE
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SCENES:
        raise ValueError(f"--n must be an integer from 1 to {MAX_SCENES:,}, not {n}")
    if (isinstance(size, bool) or not isinstance(size, int) or not lo <= size <= hi
            or size % SIZE_MULTIPLE):
        raise ValueError(f"--size must be a multiple of {SIZE_MULTIPLE} from {lo} to {hi}, "
                         f"not {size}")
    if not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"--seed must be an integer from 0 to 2^63-1, not {seed}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", phase or ""):
        raise ValueError(f"--phase must be a short name of letters, digits, - and _ "
                         f"(train, test, val), not {phase!r}")


def _save_png(path: Path, array: np.ndarray):
    # level 3: 20 % faster than the default 6 for 7 % larger files (the images are noisy)
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG",
                                                               compress_level=3))


def write_scenes(out, n: int, size: int = 128, seed: int = 0, phase: str = "train",
                 progress: bool = True) -> dict:
    """Write n scenes into out/{phase}_label, {phase}_inst, {phase}_img (each file atomic;
    scenes.json, the manifest, last). Refuses phase folders that already hold files. Returns
    the manifest's entry for the phase."""
    check_options(n, size, phase, seed)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is an existing file, not a folder")
    dirs = {kind: out / f"{phase}_{kind}" for kind in ("label", "inst", "img")}
    for d in dirs.values():
        if d.exists() and (not d.is_dir() or any(d.iterdir())):
            raise ValueError(f"{d} already exists and is not an empty folder; choose another "
                             f"--out or --phase")
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for i in progress_bar(range(n), desc="scenes", unit="scene", enabled=progress):
        sc = scene(seed, i, size)
        name = f"{i:06d}.png"
        _save_png(dirs["label"] / name, sc.label)
        _save_png(dirs["inst"] / name, sc.inst.astype(np.uint16))
        _save_png(dirs["img"] / name, sc.image)
    entry = {"n": n, "size": size, "seed": seed, "version": VERSION,
             "files": f"{phase}_label/, {phase}_inst/, {phase}_img/ NNNNNN.png"}
    manifest_path = out / "scenes.json"
    manifest = {}
    if manifest_path.is_file() and manifest_path.stat().st_size < 1 << 20:
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            manifest = {}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("phases"), dict):
        manifest = {"phases": {}}
    manifest.update(describe())
    manifest["phases"][phase] = entry
    write_json(manifest_path, manifest, indent=1)
    return entry


def describe() -> dict:
    """What a scenes folder's manifest says about its classes and id encoding."""
    return {"generator": "ganprior procedural scenes", "label_nc": LABEL_NC,
            "classes": list(CLASSES), "things": list(THINGS),
            "palette": {c: list(PALETTE[c]) for c in CLASSES},
            "instance_ids": f"thing classes: class * {INSTANCE_BASE} + k (k = 0, 1, ... per "
                            f"class and scene); stuff classes: the class id; 16-bit PNG"}
