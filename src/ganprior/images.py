"""Image conversion and files: tensors in [-1, 1] <-> uint8 pictures, PNG writing, grids."""
from __future__ import annotations

import contextlib

import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import GanpriorError, ImageError
from .files import atomic_write
from .limits import check_regular_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
FORMATS = ["PNG", "JPEG", "BMP", "WEBP", "TIFF"]  # JPEG also opens multi-picture (MPO) files
MAX_PIXELS = 64_000_000  # refuse decompression bombs well before they exhaust memory
MIN_SIDE = 8             # smaller inputs carry no usable picture (and would be upscaled 8x+)
MAX_ASPECT = 4.0         # when centre-cropping to a square, keep at least a quarter
BACKGROUND = (255, 255, 255)  # transparent pixels are shown on white, as photo viewers do
logger = logging.getLogger("ganprior.images")


def quantize_8bit(img: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] in [-1, 1] -> uint8 tensor of the same shape, quantised exactly like NVIDIA's
    generate.py and metrics (x * 127.5 + 128, clamped to 0..255, truncated): the one place the
    8-bit convention lives (PNGs, FID/KID inputs, C2ST's "as saved" images)."""
    return (img.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def as_saved_image(img: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] in [-1, 1] -> the same after a round trip through an 8-bit PNG (float)."""
    return quantize_8bit(img).float() / 127.5 - 1


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> [N, H, W, C] uint8 numpy, as `quantize_8bit`, so the same
    seed gives the same PNG as NVIDIA's generate.py."""
    return quantize_8bit(img).permute(0, 2, 3, 1).cpu().numpy()


def to_picture(image) -> np.ndarray:
    """One image as an [H, W, C] (or [H, W]) uint8 array, from any of the forms `save_image`
    takes: a tensor in [-1, 1] ([C, H, W] or [1, C, H, W]; quantised as `quantize_8bit`), a
    uint8 array ([H, W, C] or [H, W]) or a PIL image."""
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        return np.asarray(image)
    if isinstance(image, torch.Tensor):
        if image.ndim == 3:
            image = image[None]
        if image.ndim != 4 or image.shape[0] != 1:
            raise ValueError(f"save_image writes one image: a tensor [C, H, W] or [1, C, H, W], "
                             f"not {list(image.shape)} (save a batch image by image, or grid())")
        return to_uint8(image)[0]
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"save_image takes a uint8 array [H, W, C] or [H, W], a tensor in "
                         f"[-1, 1] or a PIL image, not a {arr.dtype} array of shape {arr.shape}")
    return arr


def save_image(image, path) -> Path:
    """Write one image as PNG, atomically (temp file + rename); returns the path.

    `image` is a tensor in [-1, 1] ([C, H, W] or [1, C, H, W], as `load_image` returns and
    generators produce), a uint8 array [H, W, C] / [H, W], or a PIL image. 8-bit content
    survives `save_image(load_image(p), q)` exactly.
    """
    arr = to_picture(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))


def grid(images: np.ndarray, cols: int | None = None, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile [N, H, W, C] uint8 images into one picture with `pad` pixels between them."""
    n, h, w, c = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = images[i]
    return out


def _notice(message: str):
    """Printed on stderr (logging's last-resort handler needs no set-up), never an error."""
    logger.warning("note: %s", message)


def _open(path):
    """Image.open limited to the formats we accept: other PIL plugins (EPS runs Ghostscript,
    PSD, ...) are never reached, whatever the file is called."""
    with warnings.catch_warnings():  # our own pixel limit speaks first, in one line
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        Image.init()  # WebP and TIFF are not among the plugins PIL preloads
        return Image.open(path, formats=FORMATS)


def _check_size(im, label: str, resolution):
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{label}: {w}x{h} is larger than the {MAX_PIXELS // 1_000_000} MP limit")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{label}: {w}x{h} is too small (at least {MIN_SIDE} px on each side)")
    if resolution is not None and max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageError(f"{label}: {w}x{h} has an aspect ratio above {MAX_ASPECT:g}:1; the "
                         "centre square would drop most of it (crop it first)")


def _to_srgb(im, label: str):
    """8-bit images with an embedded ICC profile are converted to sRGB (what the models were
    trained on); other images are taken to be sRGB already."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "L", "LA", "CMYK", "P", "PA"):
        return im
    from PIL import ImageCms
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ValueError, TypeError) as e:
        raise ImageError(f"{label}: its embedded ICC colour profile is unreadable ({e})")
    alpha = im.getchannel("A") if "A" in im.getbands() else None
    if im.mode == "P" and "transparency" in im.info:
        alpha = im.convert("RGBA").getchannel("A")
    colour = {"L": "L", "LA": "L", "CMYK": "CMYK"}.get(im.mode, "RGB")
    base = im.convert(colour)
    try:
        out = ImageCms.profileToProfile(base, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as e:
        raise ImageError(f"{label}: cannot apply its ICC colour profile ({e})")
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _to_unit(im, label: str) -> list:
    """The image as a list of PIL 'F' planes (R, G, B or L) with values in [0, 1]:
    8-bit / 255, 16-bit / 65535 (the type's range, not the image's maximum), float as stored
    (must lie in [0, 1]); alpha composited onto BACKGROUND."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float32)
        if im.mode == "I" and (a.min() < 0 or a.max() > 65535):
            raise ImageError(f"{label}: 32-bit integer pixels outside 0..65535 are not supported")
        return [Image.fromarray(a / 65535)]
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        if not np.isfinite(a).all():
            raise ImageError(f"{label}: {int((~np.isfinite(a)).sum())} pixels are NaN or infinite")
        lo, hi = float(a.min()), float(a.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ImageError(f"{label}: float pixels must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]")
        return [Image.fromarray(np.clip(a, 0, 1))]
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info) or (
        im.mode in ("L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        im = Image.alpha_composite(flat, rgba).convert("RGB")
    elif im.mode not in ("L", "RGB"):
        im = im.convert("L" if im.mode in ("1",) else "RGB")
    return [Image.fromarray(np.asarray(band, dtype=np.float32) / 255) for band in im.split()]


def _centre_square(im, resolution, label: str, quiet: bool):
    """Centre-crop to a square (before the float conversion: less memory) with a notice when
    the image is then resized."""
    w, h = im.size
    if (w, h) == (resolution, resolution):
        return im
    side = min(w, h)
    if not quiet:
        crop = f"centre-cropped to {side}x{side}, " if w != h else ""
        scale = "upscaled" if side < resolution else "downscaled"
        _notice(f"{label}: {w}x{h} {crop}{scale} to {resolution}x{resolution}")
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


def _refuse_irregular(path):
    """A path must name a regular file: reading a FIFO or a device could block forever."""
    if isinstance(path, (str, Path)):
        try:
            check_regular_file(Path(path))
        except GanpriorError as e:
            raise ImageError(str(e))


@contextlib.contextmanager
def _opened(path, label: str, resolution: int | None):
    """The opened image, its size checked; anything that goes wrong while it is open (PIL's
    plugins raise many types on hostile files: SyntaxError, ...) becomes one ImageError."""
    _refuse_irregular(path)
    try:
        with _open(path) as im:
            _check_size(im, label, resolution)
            yield im
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{label}: not enough memory to decode the image")
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{label}: cannot read image ({msg})")


def check_image(path, name: str | None = None, resolution: int | None = None):
    """Fast check without decoding the pixels: a readable header of an accepted format, a size
    within the limits, and (PNG) intact chunk checksums. Raises ImageError like load_image."""
    with _opened(path, name or str(path), resolution) as im:
        im.verify()


def load_image(path, resolution: int | None = None, channels: int = 3,
               name: str | None = None, quiet: bool = False, as_pil: bool = False):
    """Read an image (a path, a binary file object such as a zip member, or a PIL image) as
    [1, C, H, W] in [-1, 1], optionally centre-cropped and resized (with a notice unless
    `quiet`). With `as_pil=True` the result is an 8-bit PIL image instead (RGB, or L for
    `channels=1`), quantised as `save_image` does, so the two are inverse on 8-bit content.

    Decoding rules (docs/inputs.md): EXIF orientation applied; ICC profiles converted to sRGB;
    alpha composited onto white; 16-bit scaled by 65535, float images taken as [0, 1] (NaN
    refused); palette / gray / CMYK converted. Refused with an ImageError naming `name`
    (default: the path): non-regular files (FIFOs, devices), non-images and truncated files,
    formats other than PNG/JPEG/BMP/WebP/TIFF, images above MAX_PIXELS or below MIN_SIDE px,
    and (when resizing) aspect ratios above MAX_ASPECT.
    """
    if isinstance(path, Image.Image):  # already decoded: the same rules, no file checks
        label = name or "image"
        _check_size(path, label, resolution)
        planes = _decoded_planes(path, label, resolution, quiet)
    else:
        label = name or str(path)
        with _opened(path, label, resolution) as im:
            im.load()
            planes = _decoded_planes(im, label, resolution, quiet)
    if resolution is not None and planes[0].size != (resolution, resolution):
        planes = [p.resize((resolution, resolution), Image.LANCZOS) for p in planes]
    if channels == 1 and len(planes) == 3:  # ITU-R 601 luma, as PIL's convert("L")
        r, g, b = (np.asarray(p) for p in planes)
        a = (0.299 * r + 0.587 * g + 0.114 * b)[None]
    else:
        a = np.stack([np.asarray(p) for p in planes] * (3 if channels == 3 and len(planes) == 1
                                                        else 1))
    x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]
    x = x.clamp(0, 1) * 2 - 1
    return Image.fromarray(to_picture(x).squeeze(-1) if channels == 1 else to_picture(x)) if as_pil else x


def _decoded_planes(im, label: str, resolution, quiet: bool) -> list:
    """EXIF orientation, sRGB, centre square, then the [0, 1] planes (see load_image)."""
    im = ImageOps.exif_transpose(im)
    im = _to_srgb(im, label)
    if resolution is not None:
        im = _centre_square(im, resolution, label, quiet)
    return _to_unit(im, label)
