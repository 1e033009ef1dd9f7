"""Style mixing: take some W+ layers from one latent and the rest from another."""
from __future__ import annotations

import numpy as np
import torch

from ..generate import seeds_to_ws
from ..images import grid, to_uint8
from ..nets.base import GeneratorBase


def mix_ws(ws_base: torch.Tensor, ws_source: torch.Tensor, layers) -> torch.Tensor:
    """Copy of ws_base whose `layers` (indices into num_ws) come from ws_source."""
    num_ws = ws_base.shape[1]
    bad = [i for i in layers if not 0 <= i < num_ws]
    if bad:
        raise ValueError(f"style layers {bad} out of range 0..{num_ws - 1}")
    out = ws_base.clone()
    out[:, list(layers)] = ws_source[:, list(layers)]
    return out


@torch.no_grad()
def style_mixing_grid(G: GeneratorBase, row_seeds, col_seeds, layers, truncation_psi=1.0,
                      truncation_cutoff=None, class_idx=None, noise_mode="const"):
    """NVIDIA's style-mixing figure: row images take `layers` from the column images.

    Returns (grid uint8 [H, W, C], {(row_seed, col_seed): uint8 image}); the grid's first row
    shows the column sources, its first column the row sources, its corner is blank.
    """
    if G.num_ws < 2:
        raise ValueError(f"style mixing needs a model with per-layer styles (W+); "
                         f"{G.arch} has a single latent")
    seeds = list(row_seeds) + list(col_seeds)
    _, ws = seeds_to_ws(G, seeds, truncation_psi, truncation_cutoff, class_idx)
    w_row, w_col = ws[:len(row_seeds)], ws[len(row_seeds):]
    sources = to_uint8(G.synthesize(ws, noise_mode=noise_mode))
    mixed = {}
    for i, rs in enumerate(row_seeds):
        base = w_row[i:i + 1].expand(len(col_seeds), -1, -1)
        imgs = to_uint8(G.synthesize(mix_ws(base, w_col, layers), noise_mode=noise_mode))
        for j, cs in enumerate(col_seeds):
            mixed[(rs, cs)] = imgs[j]
    blank = np.full_like(sources[0], 255)
    cells = [blank] + [sources[len(row_seeds) + j] for j in range(len(col_seeds))]
    for i, rs in enumerate(row_seeds):
        cells += [sources[i]] + [mixed[(rs, cs)] for cs in col_seeds]
    return grid(np.stack(cells), cols=len(col_seeds) + 1), mixed
