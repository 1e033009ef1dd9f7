"""Sampling images from seeds, exactly reproducible (NVIDIA's seed -> z convention)."""
from __future__ import annotations

import re

import numpy as np
import torch

from .images import to_uint8
from .nets.base import GeneratorBase
from .progress import progress_bar


def range_parts(text: str, name: str = "seeds", max_value: int | None = None) -> list[tuple[int, int]]:
    """'0-3,7,10-11' -> [(0, 3), (7, 7), (10, 11)], checked but not expanded."""
    parts = []
    for part in str(text).replace(" ", "").split(","):
        m = re.fullmatch(r"(\d{1,20})(?:-(\d{1,20}))?", part)
        if not m:
            raise ValueError(f"bad {name} {text!r}: use a list like 0-3,7")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"bad {name} range {part!r}: end before start")
        if max_value is not None and hi > max_value:
            raise ValueError(f"bad {name} {part!r}: values must be at most {max_value}")
        parts.append((lo, hi))
    return parts


def parse_range(text: str, name: str = "seeds", max_value: int | None = None) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""
    return [v for lo, hi in range_parts(text, name, max_value) for v in range(lo, hi + 1)]


@torch.no_grad()
def seeds_to_ws(G: GeneratorBase, seeds, truncation_psi=1.0, truncation_cutoff=None,
                class_idx=None):
    z = torch.cat([G.z_from_seed(s) for s in seeds])
    c = G.class_vector(len(seeds), class_idx)
    return z, G.z_to_w(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


def generate_batches(G: GeneratorBase, seeds, truncation_psi=1.0, truncation_cutoff=None,
                     class_idx=None, noise_mode="const", batch=16, progress=False):
    """Yields (seeds, uint8 images [n, H, W, C], z [n, z_dim], ws [n, num_ws, w_dim]) one batch
    at a time, so a caller can write images as they come instead of holding them all."""
    chunks = [seeds[i:i + batch] for i in range(0, len(seeds), batch)]
    for chunk in progress_bar(chunks, desc="generate", unit="batch", enabled=progress):
        with torch.no_grad():
            z, ws = seeds_to_ws(G, chunk, truncation_psi, truncation_cutoff, class_idx)
            images = to_uint8(G.synthesize(ws, noise_mode=noise_mode))
        yield chunk, images, z.cpu(), ws.cpu()


def generate(G: GeneratorBase, seeds, truncation_psi=1.0, truncation_cutoff=None, class_idx=None,
             noise_mode="const", batch=16, progress=False):
    """-> (uint8 images [N, H, W, C], z [N, z_dim], ws [N, num_ws, w_dim]), all in memory."""
    parts = list(generate_batches(G, seeds, truncation_psi, truncation_cutoff, class_idx,
                                  noise_mode, batch, progress))
    return (np.concatenate([p[1] for p in parts]), torch.cat([p[2] for p in parts]),
            torch.cat([p[3] for p in parts]))
