"""Paired datasets in pix2pixHD's layout: label maps, instance maps and images matched by
name, validated before training starts.

    ROOT/{phase}_label/  class ids, one per pixel (8/16-bit gray or palette PNG)
    ROOT/{phase}_inst/   instance ids (same size; absent with instance=False, `--no-instance`)
    ROOT/{phase}_img/    the images (absent when only labels are needed: inference)
    label_nc 0:          ROOT/{phase}_A/ (input images) and ROOT/{phase}_B/ (targets)

Files pair by name: the stem, less one Cityscapes suffix (`_gtFine_labelIds`,
`_gtFine_instanceIds`, `_leftImg8bit`, ...), so both `a.png`/`a.jpg` and Cityscapes'
`x_gtFine_labelIds.png`/`x_leftImg8bit.png` pair. `validate` reads every label and instance
map (one at a time) and every image's header; the first problem is a one-line DatasetError
naming the file and the value: a missing partner, a label outside 0..label_nc-1, sizes that
differ, an unreadable or unsupported file. JPEG label or instance maps are a notice.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import GanpriorError
from ..images import IMAGE_SUFFIXES, MAX_PIXELS, check_image, load_image
from ..limits import check_regular_file
from ..progress import progress_bar
from .images import DatasetError

MAX_FILES = 1_000_000         # per folder: a bound on listing and on the sample table
MAX_FILE_BYTES = 256 << 20    # one label map or image
PAIRING_SUFFIXES = ("_gtFine_labelIds", "_gtFine_instanceIds", "_gtFine_color",
                    "_gtCoarse_labelIds", "_gtCoarse_instanceIds", "_leftImg8bit",
                    "_labelIds", "_instanceIds")
ID_MODES = {"1", "L", "P", "I;16", "I;16L", "I;16B", "I;16N", "I"}
ID_FORMATS = ["PNG", "BMP", "TIFF", "JPEG", "WEBP"]
RESIZE_MODES = ("none", "resize", "scale_width")


@dataclass(frozen=True)
class Layout:
    """Where a paired dataset's files are. images=False: label (and instance) maps only."""
    root: Path
    label_nc: int
    phase: str = "train"
    instance: bool = True
    images: bool = True

    def __post_init__(self):
        if isinstance(self.label_nc, bool) or not isinstance(self.label_nc, int) or not (
                0 <= self.label_nc <= 65536):
            raise ValueError(f"label_nc must be an integer from 0 (RGB input) to 65536, not "
                             f"{self.label_nc!r}")
        if not isinstance(self.phase, str) or not self.phase or "/" in self.phase or \
                self.phase.startswith("."):
            raise ValueError(f"the phase must be a plain name (train, test), not {self.phase!r}")

    def folders(self) -> dict[str, Path]:
        """{'label': ..., 'inst': ..., 'image': ...} for the parts this layout uses."""
        root = Path(self.root)
        rgb = self.label_nc == 0
        out = {"label": root / f"{self.phase}_{'A' if rgb else 'label'}"}
        if self.instance:
            out["inst"] = root / f"{self.phase}_inst"
        if self.images:
            out["image"] = root / f"{self.phase}_{'B' if rgb else 'img'}"
        return out


@dataclass(frozen=True)
class Sample:
    key: str
    label: Path
    inst: Path | None = None
    image: Path | None = None


def pairing_key(path) -> str:
    """The name files pair by: the stem less one known suffix."""
    stem = Path(path).stem
    for suffix in PAIRING_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


_WHAT = {"label": "label maps", "inst": "instance maps", "image": "images"}


def _list_folder(folder: Path, part: str, layout: Layout) -> dict[str, Path]:
    if not folder.is_dir():
        hint = {"inst": "; pass --no-instance to train without instance maps",
                "label": "" if layout.label_nc else " (label_nc 0: input images)",
                "image": " (label_nc 0: target images)" if not layout.label_nc else ""}[part]
        raise DatasetError(f"{folder}: no such folder ({_WHAT[part]} for phase "
                           f"'{layout.phase}'{hint})")
    found: dict[str, Path] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES or entry.name.startswith("."):
                continue
            if len(found) >= MAX_FILES:
                raise DatasetError(f"{folder}: more than {MAX_FILES:,} files")
            key = pairing_key(entry.name)
            if key in found:
                raise DatasetError(f"{folder}: {found[key].name} and {entry.name} both pair "
                                   f"as '{key}'")
            found[key] = folder / entry.name
    if not found:
        raise DatasetError(f"{folder}: no {_WHAT[part]} (PNG, JPEG, BMP, WebP, TIFF)")
    return found


def _more(keys: list) -> str:
    return f"; {len(keys) - 1} more like it" if len(keys) > 1 else ""


def find_samples(layout: Layout) -> list[Sample]:
    """The samples of a layout, sorted by name; DatasetError for a missing folder or a file
    without its partner (named, with the folder it was looked for in)."""
    parts = {part: _list_folder(folder, part, layout)
             for part, folder in layout.folders().items()}
    labels = parts["label"]
    folders = layout.folders()
    for part, files in parts.items():
        if part == "label":
            continue
        lonely = sorted(set(labels) - set(files))
        if lonely:
            raise DatasetError(f"{labels[lonely[0]]}: no partner in {folders[part]} (looked "
                               f"for '{lonely[0]}' with an image suffix){_more(lonely)}")
        extra = sorted(set(files) - set(labels))
        if extra:
            raise DatasetError(f"{files[extra[0]]}: no label map '{extra[0]}' in "
                               f"{folders['label']}{_more(extra)}")
    return [Sample(k, labels[k], parts.get("inst", {}).get(k), parts.get("image", {}).get(k))
            for k in sorted(labels)]


def _check_file(path: Path):
    """A regular file (a FIFO named x.png would block the read forever) of bounded size."""
    try:
        check_regular_file(path)
    except GanpriorError as e:
        raise DatasetError(str(e))
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetError(f"{path}: {size / 2**20:.0f} MiB is larger than the "
                           f"{MAX_FILE_BYTES >> 20} MiB limit for one file")


def _reason(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _header(path: Path) -> tuple[str, str, tuple[int, int]]:
    """(format, mode, (width, height)) without decoding the pixels."""
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=ID_FORMATS) as im:
                fmt, mode, size = im.format, im.mode, im.size
    except Exception as e:  # PIL raises many types on hostile files
        raise DatasetError(f"{path}: cannot read image ({_reason(e)})")
    if size[0] * size[1] > MAX_PIXELS:
        raise DatasetError(f"{path}: {size[0]}x{size[1]} is larger than the "
                           f"{MAX_PIXELS // 1_000_000} MP limit")
    return fmt, mode, size


def read_ids(path, what: str = "label map") -> np.ndarray:
    """[H, W] int64 ids of a label or instance map (gray 8/16/32-bit or palette: the index),
    after the header checks; DatasetError for colour and float images."""
    path = Path(path)
    _, mode, _ = _header(path)
    if mode not in ID_MODES:
        article = "an" if what[0] in "aeiou" else "a"
        raise DatasetError(f"{path}: an image of mode {mode}; {article} {what} holds one id per "
                           f"pixel (8- or 16-bit gray or palette PNG)")
    try:
        with Image.open(path, formats=ID_FORMATS) as im:
            im.load()
            a = np.asarray(im)
    except Exception as e:
        raise DatasetError(f"{path}: cannot decode ({_reason(e)})")
    return a.astype(np.int64)


def check_labels(ids: np.ndarray, label_nc: int, path, jpeg: bool = False) -> None:
    """DatasetError naming the file, the first bad value, where it is and how many pixels."""
    bad = (ids < 0) | (ids >= label_nc)
    if bad.any():
        y, x = np.unravel_index(int(np.argmax(bad)), bad.shape)
        why = "; a JPEG label map: lossy compression changes class ids, use PNG" if jpeg else ""
        raise DatasetError(f"{path}: label value {int(ids[y, x])} at x={x}, y={y} is outside "
                           f"0..{label_nc - 1} (label_nc {label_nc}; {int(bad.sum())} such "
                           f"pixels{why})")


def check_sample(sample: Sample, layout: Layout) -> list[str]:
    """Check one sample (raises DatasetError); returns its notices (JPEG maps)."""
    notes = []
    fmt, _, size = _header(sample.label)
    if layout.label_nc:
        if fmt == "JPEG":
            notes.append(f"{sample.label}: a JPEG label map; lossy compression changes class "
                         f"ids along edges (use PNG)")
        check_labels(read_ids(sample.label), layout.label_nc, sample.label, fmt == "JPEG")
    else:
        _check_image(sample.label)
    for other, what in ((sample.inst, "instance map"), (sample.image, "image")):
        if other is None:
            continue
        ofmt, _, osize = _header(other)
        if osize != size:
            raise DatasetError(f"{other}: {osize[0]}x{osize[1]}, but its label map "
                               f"{sample.label.name} is {size[0]}x{size[1]}")
        if what == "instance map":
            if ofmt == "JPEG":
                notes.append(f"{other}: a JPEG instance map; lossy compression changes ids "
                             f"along edges (use PNG)")
            if (read_ids(other, what) < 0).any():
                raise DatasetError(f"{other}: negative instance ids")
        else:
            _check_image(other)
    return notes


def _check_image(path: Path):
    try:
        check_image(path)
    except GanpriorError as e:
        raise DatasetError(str(e))


def validate(layout: Layout, progress: bool = True) -> tuple[list[Sample], list[str]]:
    """(samples, notices) after checking every sample; the first problem is raised."""
    samples = find_samples(layout)
    notes = []
    for s in progress_bar(samples, desc="checking", unit="file", enabled=progress):
        notes += check_sample(s, layout)
    if len(notes) > 1:  # one line, not one per file
        notes = [f"{len(notes)} maps are JPEG (first: {notes[0]})"]
    return samples, notes


# --- sizes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SizePlan:
    resize_to: tuple[int, int]       # (w, h) after resizing
    crop: tuple[int, int] | None     # (w, h) of the random crop, or None
    final: tuple[int, int]           # (w, h) given to the network: multiples of `multiple`


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(math.floor(value / multiple + 0.5)) * multiple)


def plan_size(width: int, height: int, resize: str = "none", load_size: int | None = None,
              crop_size: int | None = None, multiple: int = 1) -> SizePlan:
    """pix2pixHD's resize_or_crop: resize ('resize': to load_size square; 'scale_width':
    width load_size, aspect kept; 'none'), then an optional random crop_size square crop,
    (crop_size rounded down to a multiple of `multiple`), then both sides rounded to the
    nearest multiple of `multiple` (2^n_downsampling * 2^n_local_enhancers), resizing again
    where they are not (images smaller than the crop, 'none' and 'scale_width' sizes)."""
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}, not {resize!r}")
    if resize != "none" and not (isinstance(load_size, int) and load_size > 0):
        raise ValueError(f"resize {resize!r} needs a positive load size, not {load_size!r}")
    if crop_size is not None and not (isinstance(crop_size, int) and crop_size > 0):
        raise ValueError(f"the crop size must be a positive integer, not {crop_size!r}")
    if not isinstance(multiple, int) or multiple < 1 or multiple & (multiple - 1):
        raise ValueError(f"the size multiple must be a power of two, not {multiple!r}")
    if resize == "resize":
        w, h = load_size, load_size
    elif resize == "scale_width":
        w, h = load_size, max(1, int(round(load_size * height / width)))
    else:
        w, h = width, height
    crop = None
    if crop_size is not None:  # rounded down, so that a full crop needs no second resize
        side = max(multiple, crop_size // multiple * multiple)
        crop = (min(side, w), min(side, h))
    cw, ch = crop or (w, h)
    return SizePlan((w, h), crop, (_round_to(cw, multiple), _round_to(ch, multiple)))


def _nearest(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an id map (pixel centres), exact for integer ids."""
    w, h = size
    if a.shape == (h, w):
        return a
    rows = np.minimum(((np.arange(h) + 0.5) * a.shape[0] / h).astype(int), a.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * a.shape[1] / w).astype(int), a.shape[1] - 1)
    return a[rows][:, cols]


class PairedDataset(torch.utils.data.Dataset):
    """Items: {'label': int64 [1, H, W] class ids (label_nc 0: float [3, H, W] in [-1, 1]),
    'inst': int64 [1, H, W] instance ids (when the layout has them; what make_input,
    instance_average and FeatureEncoder take), 'image': float [3, H, W] in [-1, 1] (when the
    layout has images), 'key': the pairing name}. Random crops and flips are drawn from
    (seed, epoch, index), so a run's items do not depend on worker processes; call
    `set_epoch` each epoch. Validation (`validate`) runs in the constructor unless told not to."""

    def __init__(self, layout: Layout, resize: str = "none", load_size: int | None = None,
                 crop_size: int | None = None, multiple: int = 1, flip: bool = False,
                 seed: int = 0, check: bool = True, progress: bool = False):
        self.layout = layout
        plan_size(64, 64, resize, load_size, crop_size, multiple)  # the options, checked once
        self.resize, self.load_size, self.crop_size = resize, load_size, crop_size
        self.multiple, self.flip, self.seed, self.epoch = multiple, flip, seed, 0
        if check:
            self.samples, self.notes = validate(layout, progress)
            for note in self.notes:
                warnings.warn(note, stacklevel=2)
        else:
            self.samples, self.notes = find_samples(layout), []

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self):
        return len(self.samples)

    def _rgb(self, path: Path) -> Image.Image:
        try:
            return load_image(path, as_pil=True, quiet=True)
        except GanpriorError as e:
            raise DatasetError(str(e))

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        rgb_input = self.layout.label_nc == 0
        label = self._rgb(s.label) if rgb_input else read_ids(s.label)
        size = label.size if rgb_input else (label.shape[1], label.shape[0])
        plan = plan_size(*size, self.resize, self.load_size, self.crop_size, self.multiple)
        box = None
        if plan.crop:
            x = int(rng.integers(0, plan.resize_to[0] - plan.crop[0] + 1))
            y = int(rng.integers(0, plan.resize_to[1] - plan.crop[1] + 1))
            box = (x, y, x + plan.crop[0], y + plan.crop[1])
        flip = self.flip and bool(rng.random() < 0.5)

        def ids(a: np.ndarray, path) -> torch.Tensor:
            if (a.shape[1], a.shape[0]) != size:
                raise DatasetError(f"{path}: {a.shape[1]}x{a.shape[0]}, but its label map is "
                                   f"{size[0]}x{size[1]}")
            a = _nearest(a, plan.resize_to)
            if box:
                a = a[box[1]:box[3], box[0]:box[2]]
            a = _nearest(a, plan.final)
            return torch.from_numpy(np.ascontiguousarray(a[:, ::-1] if flip else a))[None]

        def picture(im: Image.Image, path) -> torch.Tensor:
            if im.size != size:  # e.g. an EXIF rotation the header did not show
                raise DatasetError(f"{path}: {im.size[0]}x{im.size[1]} after decoding, but "
                                   f"its label map is {size[0]}x{size[1]}")
            if im.size != plan.resize_to:
                im = im.resize(plan.resize_to, Image.BICUBIC)
            if box:
                im = im.crop(box)
            if im.size != plan.final:
                im = im.resize(plan.final, Image.BICUBIC)
            if flip:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            a = np.asarray(im, dtype=np.float32) / 127.5 - 1
            return torch.from_numpy(a).permute(2, 0, 1).contiguous()

        item = {"key": s.key,
                "label": picture(label, s.label) if rgb_input else ids(label, s.label)}
        if s.inst is not None:
            item["inst"] = ids(read_ids(s.inst, "instance map"), s.inst)
        if s.image is not None:
            item["image"] = picture(self._rgb(s.image), s.image)
        return item
