"""Style mixing: take some W+ layers from one latent and the rest from another.

Rows keep their latent and take the W+ layers `layers` from the columns (NVIDIA's figure).
Rows and columns are `Latents` (ganprior.latent_files): seeds (`seed_latents`), latent files
(`read_latents`) or photos inverted into W+ (`inverted_latents`). A mixed image is drawn the
way its row latent is drawn (its generator, and for PadInv its padding maps and constant, which
hold the row photo's spatial detail); only the W+ codes change.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..generate import seeds_to_ws
from ..images import grid, to_uint8
from ..latent_files import Latents
from ..nets.base import GeneratorBase

MIX_METHODS = ("w+", "padinv")  # inversions whose result is a full W+ code


def mix_ws(ws_base: torch.Tensor, ws_source: torch.Tensor, layers) -> torch.Tensor:
    """Copy of ws_base whose `layers` (indices into num_ws) come from ws_source."""
    num_ws = ws_base.shape[1]
    bad = [i for i in layers if not 0 <= i < num_ws]
    if bad:
        raise ValueError(f"style layers {bad} out of range 0..{num_ws - 1}")
    out = ws_base.clone()
    out[:, list(layers)] = ws_source[:, list(layers)]
    return out


def check_mixable(G: GeneratorBase, layers=None):
    """One-line errors, before any work: G has per-layer styles, `layers` fit its W+."""
    if G.num_ws < 2 or "w" not in G.latent_spaces:
        raise ValueError(f"style mixing needs a model with per-layer styles (W+); "
                         f"{G.arch} has a single latent")
    if layers is not None:
        mix_ws(torch.zeros(1, G.num_ws, 1), torch.zeros(1, G.num_ws, 1), layers)


def seed_latents(G: GeneratorBase, seeds, truncation_psi=1.0, truncation_cutoff=None,
                 class_idx=None) -> Latents:
    """The W+ codes of `seeds` (NVIDIA's seed -> z convention), labelled "seed N"."""
    _, ws = seeds_to_ws(G, list(seeds), truncation_psi, truncation_cutoff, class_idx)

    @torch.no_grad()
    def draw(i, w, noise_mode):
        return G.synthesize(w, noise_mode=noise_mode)
    return Latents(None, "seeds", [f"seed {s}" for s in seeds], ws, G, draw)


def inverted_latents(G: GeneratorBase, targets: torch.Tensor, labels: list[str],
                     method: str = "w+", steps: int = 300, lr: float = 0.03, loss="auto",
                     seed: int = 0, progress: bool = False):
    """Invert photos [N, C, H, W] into W+ (`method` w+ or padinv; photo i starts from seed
    `seed + i`) -> (Latents drawn by the method, InversionResult)."""
    from ..inversion import invert, make_method
    if method not in MIX_METHODS:
        raise ValueError(f"mixing real photos needs a W+ inversion: --method "
                         f"{' or '.join(MIX_METHODS)}, not {method!r}")
    check_mixable(G)
    m = make_method(method)
    result = invert(G, targets, m, steps=steps, lr=lr, loss=loss, seed=seed, progress=progress)
    like = next(G.parameters())
    params = {k: v.to(like.device) for k, v in result.params.items()}

    @torch.no_grad()
    def draw(i, w, noise_mode):
        n = w.shape[0]
        p = {k: v[i:i + 1].expand(n, *v.shape[1:]) for k, v in params.items()}
        p["w"] = w
        return m.render(G, p)
    return Latents(None, f"inverted ({method})", list(labels), params["w"].detach(), G,
                   draw), result


@dataclass
class Mix:
    """Sources and mixes as 8-bit images ([n, H, W, C]); mixed[i, j] = row i with the
    `layers` of column j, whose W+ codes are ws[i, j]."""
    rows: np.ndarray
    cols: np.ndarray
    mixed: np.ndarray          # [R, C, H, W, channels]
    ws: torch.Tensor           # [R, C, num_ws, w_dim]
    layers: list[int]
    row_ws: torch.Tensor       # [R, num_ws, w_dim]
    col_ws: torch.Tensor       # [C, num_ws, w_dim]


@torch.no_grad()
def mix_latents(rows: Latents, cols: Latents, layers, noise_mode: str = "const") -> Mix:
    """Every row latent with the `layers` of every column latent (see the module doc)."""
    check_mixable(rows.G, layers)
    w_row, w_col = rows.w_plus(), cols.w_plus()
    if w_row.shape[1:] != w_col.shape[1:]:
        raise ValueError(f"row and column latents differ in shape: {list(w_row.shape[1:])} "
                         f"vs {list(w_col.shape[1:])}")
    w_col = w_col.to(w_row.device)
    row_imgs = np.concatenate([to_uint8(rows.render(i, noise_mode=noise_mode))
                               for i in range(len(rows))])
    col_imgs = np.concatenate([to_uint8(cols.render(j, noise_mode=noise_mode))
                               for j in range(len(cols))])
    mixed, all_ws = [], []
    for i in range(len(rows)):
        ws = mix_ws(w_row[i:i + 1].expand(len(cols), -1, -1), w_col, layers)
        mixed.append(to_uint8(rows.render(i, ws, noise_mode=noise_mode)))
        all_ws.append(ws.cpu())
    return Mix(row_imgs, col_imgs, np.stack(mixed), torch.stack(all_ws), list(layers),
               w_row.cpu(), w_col.cpu())


def mix_cells(mix: Mix) -> np.ndarray:
    """The figure's cells: a blank corner, the column sources along the top, then per row its
    source and its mixes -> [(R + 1) * (C + 1), H, W, channels]."""
    blank = np.full_like(mix.cols[0], 255)
    cells = [blank, *mix.cols]
    for i in range(len(mix.rows)):
        cells += [mix.rows[i], *mix.mixed[i]]
    return np.stack(cells)


@torch.no_grad()
def style_mixing_grid(G: GeneratorBase, row_seeds, col_seeds, layers, truncation_psi=1.0,
                      truncation_cutoff=None, class_idx=None, noise_mode="const"):
    """NVIDIA's style-mixing figure: row images take `layers` from the column images.

    Returns (grid uint8 [H, W, C], {(row_seed, col_seed): uint8 image}); the grid's first row
    shows the column sources, its first column the row sources, its corner is blank.
    """
    check_mixable(G)
    rows = seed_latents(G, row_seeds, truncation_psi, truncation_cutoff, class_idx)
    cols = seed_latents(G, col_seeds, truncation_psi, truncation_cutoff, class_idx)
    mix = mix_latents(rows, cols, layers, noise_mode)
    mixed = {(rs, cs): mix.mixed[i, j] for i, rs in enumerate(row_seeds)
             for j, cs in enumerate(col_seeds)}
    return grid(mix_cells(mix), cols=len(col_seeds) + 1), mixed
