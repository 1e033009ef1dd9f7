"""Image conversion and files: tensors in [-1, 1] <-> uint8 pictures, PNG writing, grids."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import ImageError
from .files import atomic_write

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
MAX_PIXELS = 64_000_000  # refuse decompression bombs well before they exhaust memory


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> [N, H, W, C] uint8, quantised exactly like NVIDIA's generate.py
    (x * 127.5 + 128, clamped, truncated), so the same seed gives the same PNG."""
    x = (img.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def save_image(arr: np.ndarray, path) -> Path:
    """Write an [H, W, C] uint8 array as PNG, atomically (temp file + rename)."""
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


def load_image(path, resolution: int | None = None, channels: int = 3,
               name: str | None = None) -> torch.Tensor:
    """Read an image (a path, or a binary file object such as a zip member) as [1, C, H, W]
    in [-1, 1], optionally centre-cropped and resized.

    Gray, RGBA, palette and 16-bit images are converted; unreadable files and images above
    MAX_PIXELS are refused with an ImageError naming `name` (default: the path).
    """
    if isinstance(path, (str, Path)):
        path = Path(path)
    label = name or str(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageError(f"{label}: {im.width}x{im.height} is larger than the "
                                 f"{MAX_PIXELS // 1_000_000} MP limit")
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64)
                im = Image.fromarray((a / max(a.max(), 1) * 255).astype(np.uint8))
            im = im.convert("RGB" if channels == 3 else "L")
    except ImageError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{label}: cannot read image ({e})")
    if resolution is not None:
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side))
        im = im.resize((resolution, resolution), Image.LANCZOS)
    a = np.asarray(im, dtype=np.float32).reshape(im.height, im.width, -1)
    return torch.from_numpy(a).permute(2, 0, 1)[None] / 127.5 - 1
