"""Sampling images from seeds, exactly reproducible (NVIDIA's seed -> z convention)."""
from __future__ import annotations

import re

import numpy as np
import torch
from tqdm import tqdm

from .images import to_uint8
from .nets.base import GeneratorBase


def parse_range(text: str, name: str = "seeds") -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""
    out = []
    for part in str(text).replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"bad {name} {text!r}: use a list like 0-3,7")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"bad {name} range {part!r}: end before start")
        out.extend(range(lo, hi + 1))
    return out


@torch.no_grad()
def seeds_to_ws(G: GeneratorBase, seeds, truncation_psi=1.0, truncation_cutoff=None,
                class_idx=None):
    z = torch.cat([G.z_from_seed(s) for s in seeds])
    c = G.class_vector(len(seeds), class_idx)
    return z, G.z_to_w(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


@torch.no_grad()
def generate(G: GeneratorBase, seeds, truncation_psi=1.0, truncation_cutoff=None, class_idx=None,
             noise_mode="const", batch=16, progress=False):
    """-> (uint8 images [N, H, W, C], z [N, z_dim], ws [N, num_ws, w_dim])."""
    images, zs, wss = [], [], []
    chunks = [seeds[i:i + batch] for i in range(0, len(seeds), batch)]
    for chunk in tqdm(chunks, desc="generate", unit="batch", disable=not progress):
        z, ws = seeds_to_ws(G, chunk, truncation_psi, truncation_cutoff, class_idx)
        images.append(to_uint8(G.synthesize(ws, noise_mode=noise_mode)))
        zs.append(z.cpu())
        wss.append(ws.cpu())
    return np.concatenate(images), torch.cat(zs), torch.cat(wss)
