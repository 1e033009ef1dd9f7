"""Face attributes measured from pixels alone, and the InterFaceGAN directions made from them.

The embedded face models come with no attribute labels, so each attribute here is a plain
function of an image batch [N, 3, H, W] in [-1, 1] -> scores [N], in units of the [0, 1] pixel
range (luma Y = 0.299 R + 0.587 G + 0.114 B, the gray of the colorization task):

    brightness   mean luma of the image
    warmth       mean (R - B): colour temperature, positive = warmer (redder), negative = cooler
    asymmetry    mean luma of the left half minus the right half: a signed proxy for head turn
                 and side lighting
    contrast     mean luma of the centre (the middle half in each axis, where the face is)
                 minus that of the border around it: face vs background

`attribute_directions` samples seeds, scores their images and trains one InterFaceGAN
boundary per attribute (what `ganprior directions attributes` runs to make the shipped files).
"""
from __future__ import annotations

import torch

from ..generate import seeds_to_ws
from ..nets.base import GeneratorBase
from .directions import Direction, boundary_direction, latents_in_space, train_boundary

LUMA = (0.299, 0.587, 0.114)


def _unit_range(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"attributes need RGB images [N, 3, H, W], got {list(images.shape)}")
    return (images.float().clamp(-1, 1) + 1) / 2


def luma(images: torch.Tensor) -> torch.Tensor:
    """[N, H, W] luma in [0, 1] of images in [-1, 1]."""
    x = _unit_range(images)
    return LUMA[0] * x[:, 0] + LUMA[1] * x[:, 1] + LUMA[2] * x[:, 2]


def brightness(images: torch.Tensor) -> torch.Tensor:
    """Mean luma."""
    return luma(images).mean(dim=(1, 2))


def warmth(images: torch.Tensor) -> torch.Tensor:
    """Mean red minus mean blue (colour temperature)."""
    x = _unit_range(images)
    return (x[:, 0] - x[:, 2]).mean(dim=(1, 2))


def asymmetry(images: torch.Tensor) -> torch.Tensor:
    """Mean luma of the left half minus the right half (an odd width leaves out the middle
    column); signed, 0 for a mirror-symmetric image."""
    y = luma(images)
    half = y.shape[2] // 2
    return y[:, :, :half].mean(dim=(1, 2)) - y[:, :, -half:].mean(dim=(1, 2))


def contrast(images: torch.Tensor) -> torch.Tensor:
    """Mean luma of the centre box (rows and columns H/4 .. 3H/4) minus the mean luma of the
    pixels outside it."""
    y = luma(images)
    h, w = y.shape[1:]
    inside = torch.zeros(h, w, dtype=torch.bool, device=y.device)
    inside[h // 4: h - h // 4, w // 4: w - w // 4] = True
    return y[:, inside].mean(dim=1) - y[:, ~inside].mean(dim=1)


ATTRIBUTES = {"brightness": brightness, "warmth": warmth, "asymmetry": asymmetry,
              "contrast": contrast}


def score_all(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """{attribute: scores [N]} for every attribute."""
    return {name: fn(images) for name, fn in ATTRIBUTES.items()}


@torch.no_grad()
def sample_scores(G: GeneratorBase, seeds, batch: int = 64, progress: bool = False):
    """(z [N, z_dim], ws [N, num_ws, w_dim], {attribute: scores [N]}) for G's images of
    `seeds` (psi 1, constant noise), on the CPU."""
    from ..progress import progress_bar
    zs, wss, scores = [], [], {k: [] for k in ATTRIBUTES}
    chunks = [seeds[i:i + batch] for i in range(0, len(seeds), batch)]
    for chunk in progress_bar(chunks, desc="sample", unit="batch", enabled=progress):
        z, ws = seeds_to_ws(G, chunk)
        for k, v in score_all(G.synthesize(ws, noise_mode="const")).items():
            scores[k].append(v.cpu())
        zs.append(z.cpu())
        wss.append(ws.cpu())
    return torch.cat(zs), torch.cat(wss), {k: torch.cat(v) for k, v in scores.items()}


def attribute_directions(G: GeneratorBase, seeds, space: str, method: str = "svm",
                         ratio: float = 0.02, batch: int = 64,
                         progress: bool = False) -> dict[str, Direction]:
    """One InterFaceGAN direction per attribute, trained on G's images of `seeds` in `space`;
    each Direction's meta holds the attribute, method, ratio, sample count and held-out
    accuracy, and the attribute's mean and std over the samples."""
    z, ws, scores = sample_scores(G, seeds, batch, progress)
    X = latents_in_space(z, ws, space).double().numpy()
    out = {}
    for name, s in scores.items():
        normal, accuracy = train_boundary(X, s.double().numpy(), method=method, ratio=ratio)
        meta = dict(method=f"interfacegan-{method}", attribute=name, accuracy=accuracy,
                    ratio=ratio, n=len(seeds), seeds=f"{seeds[0]}-{seeds[-1]}",
                    score_mean=float(s.mean()), score_std=float(s.std()))
        out[name] = boundary_direction(G, normal, space, meta)
    return out
