"""`ganprior metrics A B`: compare image files (or folders matched by file name)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..images import IMAGE_SUFFIXES, load_image
from .image import ms_ssim, psnr, ssim, to_unit


def _pairs(a: Path, b: Path):
    if a.is_dir() != b.is_dir():
        raise ValueError("compare a file with a file, or a folder with a folder")
    if not a.is_dir():
        return [(a, b)]
    names = sorted(p.name for p in a.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    pairs = [(a / n, b / n) for n in names if (b / n).exists()]
    if not pairs:
        raise ValueError(f"no images with the same names in {a} and {b}")
    return pairs


def compare_files(a, b, resolution=None, failures: list | None = None) -> list[dict]:
    """One row of metrics per pair of images. With a `failures` list, a pair that cannot be
    compared (unreadable, different sizes) is added to it as (name, why) and the others go
    on; without one, it is an error."""
    from ..errors import GanpriorError
    from ..nets.vgg import load_lpips
    lpips = load_lpips("cpu")
    rows = []
    for pa, pb in _pairs(Path(a), Path(b)):
        try:
            x, y = load_image(pa, resolution), load_image(pb, resolution)
            if x.shape != y.shape:
                raise ValueError(f"{pa.name}: sizes differ ({tuple(x.shape[-2:])} vs "
                                 f"{tuple(y.shape[-2:])}); pass --resolution")
        except (GanpriorError, ValueError, OSError) as e:
            if failures is None:
                raise
            failures.append((pa.name, str(e)))
            continue
        with torch.no_grad():
            row = {"name": pa.name, "psnr": psnr(to_unit(x), to_unit(y)).item(),
                   "ssim": ssim(to_unit(x), to_unit(y)).item(),
                   "ms_ssim": ms_ssim(to_unit(x), to_unit(y)).item()}
            if lpips is not None:
                row["lpips"] = lpips(x, y).item()
        rows.append(row)
    return rows
