"""Editing label and instance maps for pix2pixHD: brush strokes, placing and erasing instances,
starting from a procedural scene or a blank canvas, and the maps as PNG files (the studio's
Paint tab is a thin shell over this module).

    canvas = scene_canvas(seed=3, size=128, label_nc=8, classes=None, things={4, 5, 6, 7})
    paint_stroke(canvas, 2, [(10, 90), (60, 96)], radius=4)     # road
    car = place_instance(canvas, 6, (20, 70, 50, 86))            # a new car, its own id
    erase_instance(canvas, car)                                  # back to the road under it
    image, record = synthesize_scene(model, canvas.label, canvas.inst)

Instance ids follow the procedural scenes (Cityscapes'): a "thing" pixel of class c has id
c * 1000 + k (k = 0, 1, ... per class), a "stuff" pixel the class id itself. The canvas also
keeps a stuff layer, the stuff class under every pixel, so that erasing an instance (or the
pixels a new one no longer covers) gives back what lay beneath: where a loaded map has things
the stuff under them is taken from the nearest stuff pixel.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..data.scenes import CLASSES as SCENE_CLASSES
from ..data.scenes import INSTANCE_BASE, PALETTE, THINGS
from ..data.scenes import scene as render_scene

MAX_INSTANCE_ID = 65535   # 16-bit instance PNGs
MAX_SIDE = 4096
SHAPES = ("rect", "ellipse")


@dataclass
class LabelCanvas:
    label: np.ndarray       # [H, W] int64 class ids, 0..label_nc-1
    inst: np.ndarray        # [H, W] int64 instance ids
    stuff: np.ndarray       # [H, W] int64 the stuff class under each pixel
    label_nc: int
    things: frozenset       # class ids that have instances

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.label.shape


def class_table(info: dict, label_nc: int) -> dict:
    """{"names", "colours", "things"} of a model's classes: its provenance (names, palette and
    thing classes of the data it was trained on) or, for a model that names none but has the
    procedural scenes' class count, the scenes' classes; other colours evenly spread hues."""
    from ..train.pix2pixhd import label_colours
    names = info.get("classes")
    palette = info.get("palette")
    things = info.get("things")
    if not names and label_nc == len(SCENE_CLASSES):
        names, palette, things = list(SCENE_CLASSES), PALETTE, list(THINGS)
    if not (isinstance(names, list) and len(names) == label_nc):
        names = [str(c) for c in range(label_nc)]
    palette = palette if isinstance(palette, dict) else None
    colours = label_colours(label_nc, names, palette)
    thing_ids = sorted({names.index(t) for t in (things or []) if t in names})
    return {"names": names, "colours": colours.tolist(), "things": thing_ids}


def _ids(a, what: str, h=None, w=None) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"the {what} must be one map of integer ids [H, W], not "
                         f"{list(a.shape)} {a.dtype}")
    if h is not None and a.shape != (h, w):
        raise ValueError(f"the {what} is {a.shape[1]}x{a.shape[0]}; the canvas is {w}x{h}")
    return a.astype(np.int64)


def check_label_values(label: np.ndarray, label_nc: int) -> None:
    """ValueError naming the first class id outside 0..label_nc-1, where it is and how often."""
    bad = (label < 0) | (label >= label_nc)
    if bad.any():
        y, x = np.unravel_index(int(np.argmax(bad)), bad.shape)
        raise ValueError(f"label value {int(label[y, x])} at x={x}, y={y} is outside "
                         f"0..{label_nc - 1} (this model has {label_nc} classes; "
                         f"{int(bad.sum())} such pixels)")


def fill_stuff(label: np.ndarray, things) -> np.ndarray:
    """The stuff layer of a label map: stuff pixels keep their class, thing pixels take the
    class of the nearest stuff pixel (all things: the lowest non-thing class, or 0)."""
    from scipy import ndimage
    is_thing = np.isin(label, list(things))
    if not is_thing.any():
        return label.copy()
    if is_thing.all():
        free = [c for c in range(int(label.max()) + 2) if c not in things]
        return np.full_like(label, free[0] if free else 0)
    _, (iy, ix) = ndimage.distance_transform_edt(is_thing, return_indices=True)
    return label[iy, ix]


def canvas_from_maps(label, inst, label_nc: int, things) -> LabelCanvas:
    """A canvas from a label map and its instance map (None: things split into connected
    regions, `instances_from_labels`); ValueError for bad values or sizes."""
    label = _ids(label, "label map")
    h, w = label.shape
    if max(h, w) > MAX_SIDE:
        raise ValueError(f"the label map is {w}x{h}: sides are limited to {MAX_SIDE}")
    check_label_values(label, label_nc)
    things = frozenset(int(t) for t in things)
    if inst is None:
        import torch

        from .scene import instances_from_labels
        inst = instances_from_labels(torch.from_numpy(label)[None, None], things)[0, 0].numpy()
    inst = _ids(inst, "instance map", h, w)
    if inst.min() < 0 or inst.max() > MAX_INSTANCE_ID:
        raise ValueError(f"instance ids must be 0..{MAX_INSTANCE_ID} (16-bit), not "
                         f"{int(inst.min() if inst.min() < 0 else inst.max())}")
    return LabelCanvas(label, inst, fill_stuff(label, things), label_nc, things)


def blank_canvas(size: tuple[int, int], label_nc: int, things, fill: int = 0) -> LabelCanvas:
    """A canvas of one stuff class `fill`."""
    h, w = size
    if fill in things or not 0 <= fill < label_nc:
        raise ValueError(f"a blank canvas is filled with a stuff class of 0..{label_nc - 1}, "
                         f"not {fill}")
    label = np.full((h, w), fill, np.int64)
    return LabelCanvas(label, label.copy(), label.copy(), label_nc, frozenset(things))


def scene_canvas(seed: int, size: int, label_nc: int, classes, things) -> LabelCanvas:
    """The procedural scene of `seed` (data/scenes.py, scene 0 of that seed) at `size` px in
    the model's class ids (matched by name; a model without names uses the scenes' ids).
    ValueError when the model does not have the scenes' classes."""
    names = list(classes) if classes else list(SCENE_CLASSES)
    missing = [c for c in SCENE_CLASSES if c not in names]
    if missing or len(names) > label_nc:
        raise ValueError(f"this model's classes are not the procedural scenes' "
                         f"({', '.join(SCENE_CLASSES)}): start from a blank canvas")
    sc = render_scene(seed, 0, size)
    to_model = np.array([names.index(c) for c in SCENE_CLASSES], np.int64)
    label = to_model[sc.label]
    old = sc.inst.astype(np.int64)
    k = np.where(old >= INSTANCE_BASE, old % INSTANCE_BASE, 0)
    inst = np.where(old >= INSTANCE_BASE, label * INSTANCE_BASE + k, label)
    return canvas_from_maps(label, inst, label_nc, things)


def _check_class(canvas: LabelCanvas, cls) -> int:
    if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) \
            or not 0 <= cls < canvas.label_nc:
        raise ValueError(f"class {cls!r} is outside 0..{canvas.label_nc - 1}"[:200])
    return int(cls)


def new_instance_id(canvas: LabelCanvas, cls: int) -> int:
    """A fresh id for a new instance of thing class `cls`: cls * 1000 + the smallest k no
    instance on the canvas has. ValueError for a stuff class, or when ids run out."""
    cls = _check_class(canvas, cls)
    if cls not in canvas.things:
        raise ValueError(f"class {cls} is a stuff class: it has no instances (paint it with "
                         "the brush)")
    if cls == 0:
        raise ValueError("class 0 cannot have instances: their ids (class * 1000 + k) would "
                         "be the stuff classes' ids")
    base = cls * INSTANCE_BASE
    if base + INSTANCE_BASE - 1 > MAX_INSTANCE_ID:
        raise ValueError(f"class {cls}: its instance ids would not fit a 16-bit instance map")
    ids = np.unique(canvas.inst)
    used = set((ids[(ids >= base) & (ids < base + INSTANCE_BASE)] - base).tolist())
    free = next((k for k in range(INSTANCE_BASE) if k not in used), None)
    if free is None:
        raise ValueError(f"class {cls} already has {INSTANCE_BASE} instances")
    return base + free


def stroke_mask(size: tuple[int, int], points, radius: float) -> np.ndarray:
    """[H, W] bool: the pixels (centres at integer coordinates) within `radius` of the
    polyline through `points` [(x, y), ...] (one point: a disc)."""
    h, w = size
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    mask = np.zeros((h, w), bool)
    segments = zip(pts, pts[1:]) if len(pts) > 1 else [(pts[0], pts[0])]
    for a, b in segments:
        x0, x1 = sorted((a[0], b[0]))
        y0, y1 = sorted((a[1], b[1]))
        xs = np.arange(max(0, int(np.floor(x0 - radius))), min(w, int(np.ceil(x1 + radius)) + 1))
        ys = np.arange(max(0, int(np.floor(y0 - radius))), min(h, int(np.ceil(y1 + radius)) + 1))
        if not len(xs) or not len(ys):
            continue
        d = b - a
        px, py = xs[None, :] - a[0], ys[:, None] - a[1]
        length2 = float(d @ d)
        t = np.clip((px * d[0] + py * d[1]) / length2, 0, 1) if length2 else 0.0
        near = (px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 <= radius * radius
        mask[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] |= near
    return mask


def paint_stroke(canvas: LabelCanvas, cls: int, points, radius: float,
                 instance: int | None = None) -> np.ndarray:
    """Paint class `cls` along a brush stroke (see stroke_mask) over whatever is there. A
    stuff class paints the stuff layer too; a thing class paints instance `instance` (give
    one from new_instance_id for a new stroke, or an existing id to extend it). Returns the
    mask painted."""
    cls = _check_class(canvas, cls)
    mask = stroke_mask(canvas.size, points, radius)
    if cls in canvas.things:
        if instance is None:
            raise ValueError("painting a thing class needs the instance it belongs to")
        canvas.inst[mask] = instance
    else:
        canvas.inst[mask] = cls
        canvas.stuff[mask] = cls
    canvas.label[mask] = cls
    return mask


def shape_mask(size: tuple[int, int], box, shape: str = "rect") -> np.ndarray:
    """[H, W] bool: the pixels of the box (x0, y0, x1, y1), corners included, in any order,
    clipped to the canvas; "ellipse": the ellipse inscribed in it."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be {' or '.join(SHAPES)}, not {shape!r}"[:200])
    h, w = size
    x0, x1 = sorted((float(box[0]), float(box[2])))
    y0, y1 = sorted((float(box[1]), float(box[3])))
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    if shape == "rect":
        return (xs >= np.floor(x0)) & (xs <= np.ceil(x1)) & (ys >= np.floor(y0)) & \
            (ys <= np.ceil(y1))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = (x1 - x0) / 2 + 0.5, (y1 - y0) / 2 + 0.5  # a 1-pixel box is that pixel
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1


def place_instance(canvas: LabelCanvas, cls: int, box, shape: str = "rect") -> int:
    """A new instance of thing class `cls` filling `box` (see shape_mask) in front of
    everything; returns its id. ValueError when the shape misses the canvas."""
    cls = _check_class(canvas, cls)
    new = new_instance_id(canvas, cls)
    mask = shape_mask(canvas.size, box, shape)
    if not mask.any():
        raise ValueError("the instance's box lies outside the canvas")
    canvas.label[mask] = cls
    canvas.inst[mask] = new
    return new


def instance_classes(canvas: LabelCanvas) -> dict[int, int]:
    """{instance id: its class (the majority label inside it)}."""
    ids, seg = np.unique(canvas.inst.reshape(-1), return_inverse=True)
    votes = np.bincount(seg * canvas.label_nc + canvas.label.reshape(-1),
                        minlength=len(ids) * canvas.label_nc).reshape(len(ids), canvas.label_nc)
    return dict(zip(ids.tolist(), votes.argmax(1).tolist()))


def is_thing_instance(canvas: LabelCanvas, instance: int) -> bool:
    """Whether `instance` is on the canvas and belongs to a thing class."""
    pixels = canvas.inst == instance
    return bool(pixels.any()) and int(np.bincount(canvas.label[pixels]).argmax()) in canvas.things


def erase_instance(canvas: LabelCanvas, instance: int) -> np.ndarray:
    """Remove a thing instance: its pixels go back to the stuff layer (label and id). Returns
    the mask erased; ValueError when `instance` is not a thing instance on the canvas."""
    if not is_thing_instance(canvas, instance):
        raise ValueError(f"there is no instance {instance} of a thing class to erase")
    mask = canvas.inst == instance
    canvas.label[mask] = canvas.stuff[mask]
    canvas.inst[mask] = canvas.stuff[mask]
    return mask


def instance_at(canvas: LabelCanvas, x: int, y: int) -> int:
    """The instance id at pixel (x, y)."""
    h, w = canvas.size
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"({x}, {y}) is outside the {w}x{h} canvas")
    return int(canvas.inst[y, x])


# --- files -------------------------------------------------------------------------------------

def label_png(label: np.ndarray, label_nc: int) -> bytes:
    """A label map as PNG bytes: 8-bit gray (16-bit above 256 classes)."""
    from PIL import Image
    dtype = np.uint8 if label_nc <= 256 else np.uint16
    buf = io.BytesIO()
    Image.fromarray(np.asarray(label).astype(dtype)).save(buf, format="PNG")
    return buf.getvalue()


def instance_png(inst: np.ndarray) -> bytes:
    """An instance map as 16-bit gray PNG bytes (the procedural scenes' files)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.asarray(inst).astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def read_id_png(data: bytes, what: str, size: tuple[int, int] | None = None,
                max_pixels: int = MAX_SIDE * MAX_SIDE) -> np.ndarray:
    """[H, W] int64 ids of an uploaded label or instance map (8/16-bit gray or palette PNG),
    checked from the header (format, mode, size: `size` (h, w) when given) before decoding;
    ValueError in one line otherwise."""
    from PIL import Image

    from ..data.paired import ID_MODES
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            mode, (w, h) = im.mode, im.size
    except Exception as e:  # PIL raises many types on hostile bytes
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"the {what} is not a readable PNG ({why})")
    if mode not in ID_MODES:
        raise ValueError(f"the {what} is a PNG of mode {mode}; it must hold one id per pixel "
                         "(8- or 16-bit gray or palette)")
    if w * h > max_pixels:
        raise ValueError(f"the {what} is {w}x{h}, more than {max_pixels:,} pixels")
    if size is not None and (h, w) != tuple(size):
        raise ValueError(f"the {what} is {w}x{h}; the canvas is {size[1]}x{size[0]}")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            im.load()
            return np.asarray(im).astype(np.int64)
    except Exception as e:
        raise ValueError(f"the {what} cannot be decoded ({type(e).__name__})")
