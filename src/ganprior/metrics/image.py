"""Full-reference image metrics in torch, differentiable, batched.

Images are [N, C, H, W] tensors with values in [0, data_range] (ganprior's [-1, 1] images:
use `to_unit(x)` first). Per-image results are returned as [N] tensors.

- psnr: 10·log10(R² / MSE) over all pixels and channels.
- ssim: Wang et al. 2004 (Gaussian window σ = 1.5, 11 taps, K1 = 0.01, K2 = 0.03, population
  covariance), mean over channels and over the valid region; equal to scikit-image's
  `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  channel_axis=-1, data_range=R)`.
- ms_ssim: Wang et al. 2003, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2×2 average
  pooling between scales. Small images get fewer scales (the coarsest must hold the 11-tap
  window) with the used weights renormalised; one scale equals ssim.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_SIGMA, _TRUNCATE = 1.5, 3.5


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def _real(x: torch.Tensor) -> torch.Tensor:
    """float32 for anything but float64 (kept, for reference comparisons)."""
    return x if x.dtype == torch.float64 else x.float()


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    mse = (_real(a) - _real(b)).square().flatten(1).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-20))


def _gaussian_1d(device, dtype) -> torch.Tensor:
    radius = int(_TRUNCATE * _SIGMA + 0.5)  # as scipy.ndimage: 5 -> 11 taps
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (x / _SIGMA) ** 2)
    return g / g.sum()


def _blur_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    x = F.conv2d(x, g.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ssim_parts(a, b, data_range):
    """Per-image (ssim, contrast-structure) means over channels and the valid region."""
    g = _gaussian_1d(a.device, a.dtype)
    if min(a.shape[-2:]) < g.numel():
        raise ValueError(f"images of {tuple(a.shape[-2:])} px are smaller than the "
                         f"{g.numel()}-pixel SSIM window")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _blur_valid(a, g), _blur_valid(b, g)
    var_a = _blur_valid(a * a, g) - mu_a ** 2
    var_b = _blur_valid(b * b, g) - mu_b ** 2
    cov = _blur_valid(a * b, g) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    return _ssim_parts(_real(a), _real(b), data_range)[0]


def ms_ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0,
            max_scales: int = 5) -> torch.Tensor:
    a, b = _real(a), _real(b)
    window = 2 * int(_TRUNCATE * _SIGMA + 0.5) + 1
    scales = max(1, min(max_scales, 1 + int(math.log2(min(a.shape[-2:]) / window))))
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], device=a.device, dtype=a.dtype)
    weights = weights / weights.sum()
    values = []
    for i in range(scales):
        s, cs = _ssim_parts(a, b, data_range)
        values.append(s if i == scales - 1 else cs)
        if i < scales - 1:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    # clamping keeps a fractional power of a negative cs (rare: anti-correlated images) defined
    stacked = torch.stack(values, dim=1).clamp_min(1e-6)
    return (stacked ** weights).prod(dim=1)
