"""Classical restoration baselines, run on the same observations as the GAN prior
(docs/degradations.md):

    restored = run_baseline("biharmonic", observed, Mask.center_square(24, 64), 64)

- "bicubic" (super-resolve): bicubic upsampling of the low-resolution observation, PIL's
  BICUBIC kernel (a = -0.5), the counterpart of Downsample(mode="bicubic");
- "biharmonic" (inpaint): scikit-image's inpaint_biharmonic on the missing pixels;
- "nlm" (denoise): scikit-image's non-local means, fast mode, 5 x 5 patches searched 6 px
  around, h = 0.8 sigma (scikit-image's advice for fast mode) with sigma estimated from the
  image;
- "tv" (denoise): scikit-image's Chambolle total-variation denoising, weight = 0.6 sigma
  (best on a 64 px face photo at sigma 0.05-0.2 among 0.3-0.8 sigma);
- "gray" (colorize): the gray observation itself.
The denoisers estimate sigma from the image (`estimate_sigma`; for salt-and-pepper its RMS
form): a real noisy photo comes without its noise level.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .degrade import Degradation, Downsample, GaussianNoise, Gray, Mask, SaltPepper

BASELINES = {"colorize": ("gray",), "super-resolve": ("bicubic",), "inpaint": ("biharmonic",),
             "denoise": ("nlm", "tv")}
NLM_PATCH, NLM_DISTANCE, NLM_H = 5, 6, 0.8  # patch size, search radius (px), h / sigma
TV_WEIGHT = 0.6                              # weight / sigma
MAD_TO_SIGMA = 0.6745                        # median |N(0, 1)|


def estimate_sigma(image: np.ndarray, impulses: bool = False) -> float:
    """Noise standard deviation of an [H, W, C] image, averaged over channels, from its
    finest-scale diagonal (orthonormal Haar) wavelet coefficients, which white noise fills with
    its own std while smooth content leaves them near 0: their median absolute value / 0.6745
    (Donoho's estimator, what scikit-image's estimate_sigma computes with a db2 wavelet, which
    would need PyWavelets). For impulse noise the median ignores the impulses (outliers to it),
    so `impulses=True` takes the coefficients' root mean square instead."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    x = image[:h, :w]
    diag = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    if impulses:
        return float(np.sqrt((diag ** 2).mean(axis=(0, 1))).mean())
    return float(np.median(np.abs(diag), axis=(0, 1)).mean() / MAD_TO_SIGMA)


def _noise_level(img: np.ndarray, degradation) -> float:
    """The sigma the denoisers are set from; 0 (a noise-free image) leaves the image as it is."""
    return estimate_sigma(img, impulses=isinstance(degradation, SaltPepper))


def _bicubic(observed, degradation, resolution):
    return F.interpolate(observed, size=(resolution, resolution), mode="bicubic",
                         align_corners=False, antialias=True)


def _per_image(fn):
    """Run fn(image [H, W, C] in [0, 1], i) -> [H, W, C] on each image of a batch."""
    def run(observed, degradation, resolution):
        x = ((observed.detach().cpu().double() + 1) / 2).permute(0, 2, 3, 1).numpy()
        out = np.stack([fn(img, i, degradation) for i, img in enumerate(x)])
        return torch.from_numpy(out).permute(0, 3, 1, 2) * 2 - 1
    return run


@_per_image
def _biharmonic(img, i, mask: Mask):
    from skimage.restoration import inpaint_biharmonic

    known = mask.known[i if mask.known.shape[0] > 1 else 0, 0].numpy()
    return inpaint_biharmonic(img, known == 0, channel_axis=-1)


@_per_image
def _nlm(img, i, degradation):
    from skimage.restoration import denoise_nl_means

    sigma = _noise_level(img, degradation)
    if sigma == 0:
        return img
    return denoise_nl_means(img, h=NLM_H * sigma, sigma=sigma, fast_mode=True,
                            patch_size=NLM_PATCH, patch_distance=NLM_DISTANCE, channel_axis=-1)


@_per_image
def _tv(img, i, degradation):
    from skimage.restoration import denoise_tv_chambolle

    sigma = _noise_level(img, degradation)
    if sigma == 0:
        return img
    return denoise_tv_chambolle(img, weight=TV_WEIGHT * sigma, channel_axis=-1)


def _gray(observed, degradation, resolution):
    return observed.clone()


# name -> (run, the degradations it fits)
_RUN = {"bicubic": (_bicubic, (Downsample,)), "biharmonic": (_biharmonic, (Mask,)),
        "nlm": (_nlm, (GaussianNoise, SaltPepper)), "tv": (_tv, (GaussianNoise, SaltPepper)),
        "gray": (_gray, (Gray,))}


def run_baseline(name: str, observed: torch.Tensor, degradation: Degradation,
                 resolution: int) -> torch.Tensor:
    """Restore observations [N, C, h, w] in [-1, 1] (made by `degradation` from images of
    `resolution` px) with a classical method -> [N, C, resolution, resolution] in [-1, 1]."""
    if name not in _RUN:
        raise ValueError(f"unknown baseline {name!r} (choose from {', '.join(_RUN)})")
    run, fits = _RUN[name]
    if not isinstance(degradation, fits):
        task = next((t for t, names in BASELINES.items() if name in names), "?")
        raise ValueError(f"baseline {name} is for {task}, not for {degradation.name} "
                         f"(its baselines: {', '.join(BASELINES.get(degradation.task, ()))})")
    if not isinstance(observed, torch.Tensor) or observed.dim() != 4:
        raise ValueError("the observation must be [N, C, H, W]")
    size = degradation.observed_size(resolution)
    if tuple(observed.shape[-2:]) != (size, size):
        raise ValueError(f"the observation is {observed.shape[-1]}x{observed.shape[-2]}, "
                         f"{degradation.name} of {resolution} px images gives {size}x{size}")
    if not bool(torch.isfinite(observed).all()):
        raise ValueError("the observation contains NaN or infinite values")
    if isinstance(degradation, Mask) and degradation.known.shape[0] not in (1, observed.shape[0]):
        raise ValueError(f"the mask has {degradation.known.shape[0]} rows for "
                         f"{observed.shape[0]} images")
    out = run(observed, degradation, resolution)
    return out.to(device=observed.device, dtype=observed.dtype).clamp(-1, 1)
