"""Adaptive discriminator augmentation (ADA; Karras et al. 2020), NVIDIA's "bgc" pipeline.

Three groups, each op applied per sample with probability p (the values of NVIDIA's defaults):
- blits: x-flip, 90-degree rotations, integer translation (up to 1/8 of the size);
- general geometry: isotropic scale (lognormal, std 0.2 in log2), arbitrary rotation (twice,
  before and after the anisotropic scale, each with probability 1 - sqrt(1 - p)), anisotropic
  scale (std 0.2), fractional translation (std 1/8 of the size);
- colour: brightness (std 0.2), contrast (std 0.5 in log2), luma flip, hue rotation (uniform
  angle) and saturation (std 1 in log2), all about the luma axis of the zero-centred image.
All geometric ops compose into one matrix per sample and the image is resampled once: reflect
padding, 2x upsampling with a symlet-6 low-pass filter, bilinear sampling, 2x downsampling
with the same filter flipped, corrected for the filter's delay. Colour ops compose into one 4x4 matrix. Everything is differentiable
(twice, for R1 through D(aug(x))). At p < ~0.8 no augmentation leaks into G.

p is tuned every `interval` minibatches: the overfitting heuristic r_t = E[sign(D(real))] is
compared to `target` (0.6) and p moves by batch * interval / (speed_kimg * 1000) towards it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..nets.ops import downsample2d, setup_filter, upsample2d

# Symlet-6 low-pass decomposition filter (Daubechies' least-asymmetric wavelet, 12 taps), the
# anti-aliasing filter of the geometric resampling (normalised to sum 1 by setup_filter).
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)


# --- 3x3 (2-D homogeneous) and 4x4 (RGB homogeneous) matrices, one per sample -----------------

def _eye(n, size, device):
    return torch.eye(size, device=device).expand(n, size, size).clone()


def _scale2d(sx, sy):
    m = _eye(len(sx), 3, sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _translate2d(tx, ty):
    m = _eye(len(tx), 3, tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _rotate2d(theta):
    m = _eye(len(theta), 3, theta.device)
    m[:, 0, 0], m[:, 0, 1] = theta.cos(), -theta.sin()
    m[:, 1, 0], m[:, 1, 1] = theta.sin(), theta.cos()
    return m


def _colour_rotation(theta, axis):
    """Rodrigues' rotation by `theta` about the unit RGB vector `axis` (4x4, homogeneous)."""
    n = len(theta)
    k = torch.zeros(3, 3, device=theta.device)
    k[0, 1], k[0, 2], k[1, 2] = -axis[2], axis[1], -axis[0]
    k = k - k.t()
    r = (torch.eye(3, device=theta.device) + theta.sin()[:, None, None] * k
         + (1 - theta.cos())[:, None, None] * (k @ k))
    m = _eye(n, 4, theta.device)
    m[:, :3, :3] = r
    return m


class AugmentPipe:
    def __init__(self, p: float = 0.0, target: float = 0.6, interval: int = 4,
                 speed_kimg: float = 500):
        self.p, self.target, self.interval, self.speed_kimg = p, target, interval, speed_kimg
        self._signs, self._count, self._calls = 0.0, 0, 0
        self._filter = setup_filter(SYM6)

    def _where(self, n, device, value, neutral, prob=None):
        """Per sample: `value` with probability `prob` (default p), else `neutral`."""
        on = torch.rand(n, device=device) < (self.p if prob is None else prob)
        on = on.reshape(n, *[1] * (value.ndim - 1))
        return torch.where(on, value, torch.full_like(value, neutral))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.p <= 0:
            return x
        return self.colour(self.geometry(x))

    # --- geometry -------------------------------------------------------------------------
    def geometry_matrix(self, n: int, h: int, w: int, device) -> torch.Tensor:
        """[n, 3, 3] inverse transforms: output pixel (centred coords) -> input pixel."""
        def rand(*shape):
            return torch.rand(*shape, device=device)

        def randn(*shape):
            return torch.randn(*shape, device=device)

        m = _eye(n, 3, device)
        flip = self._where(n, device, torch.floor(rand(n) * 2), 0)
        m = m @ _scale2d(1 - 2 * flip, torch.ones(n, device=device))
        quarter = self._where(n, device, torch.floor(rand(n) * 4), 0)
        m = m @ _rotate2d(-quarter * math.pi / 2)
        t = self._where(n, device, (rand(n, 2) * 2 - 1) * 0.125, 0)
        m = m @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h))
        s = self._where(n, device, torch.exp2(randn(n) * 0.2), 1)
        m = m @ _scale2d(1 / s, 1 / s)
        p_rot = 1 - math.sqrt(max(1 - self.p, 0))
        theta = self._where(n, device, (rand(n) * 2 - 1) * math.pi, 0, p_rot)
        m = m @ _rotate2d(-theta)
        s = self._where(n, device, torch.exp2(randn(n) * 0.2), 1)
        m = m @ _scale2d(1 / s, s)
        theta = self._where(n, device, (rand(n) * 2 - 1) * math.pi, 0, p_rot)
        m = m @ _rotate2d(-theta)
        t = self._where(n, device, randn(n, 2) * 0.125, 0)
        return m @ _translate2d(-t[:, 0] * w, -t[:, 1] * h)

    def geometry(self, x: torch.Tensor, matrix: torch.Tensor | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        m = self.geometry_matrix(n, h, w, x.device) if matrix is None else matrix
        if torch.equal(m, _eye(n, 3, x.device)):
            return x
        return resample(x, m, self._filter.to(x.device))

    # --- colour ---------------------------------------------------------------------------
    def colour_matrix(self, n: int, device) -> torch.Tensor:
        """[n, 4, 4]: brightness, contrast, luma flip, hue, saturation (applied in that order)."""
        v = torch.tensor([1.0, 1.0, 1.0], device=device) / math.sqrt(3)  # the luma axis
        vv = torch.zeros(4, 4, device=device)
        vv[:3, :3] = torch.outer(v, v)
        eye = _eye(n, 4, device)
        m = eye.clone()
        b = self._where(n, device, torch.randn(n, device=device) * 0.2, 0)
        shift = eye.clone()
        shift[:, :3, 3] = b[:, None]
        m = shift @ m
        c = self._where(n, device, torch.exp2(torch.randn(n, device=device) * 0.5), 1)
        m = _scale_rgb(c) @ m
        flip = self._where(n, device, torch.floor(torch.rand(n, device=device) * 2), 0)
        m = (eye - 2 * vv * flip[:, None, None]) @ m
        theta = self._where(n, device, (torch.rand(n, device=device) * 2 - 1) * math.pi, 0)
        m = _colour_rotation(theta, v) @ m
        s = self._where(n, device, torch.exp2(torch.randn(n, device=device)), 1)
        m = (vv + (eye - vv) * s[:, None, None]) @ m
        return m

    def colour(self, x: torch.Tensor, matrix: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        if c != 3:  # defined on RGB (NVIDIA's pipe would still change a grey image's brightness)
            return x
        m = self.colour_matrix(n, x.device) if matrix is None else matrix
        flat = x.reshape(n, 3, h * w)
        return (m[:, :3, :3] @ flat + m[:, :3, 3:]).reshape(n, 3, h, w)

    # --- adapting p -----------------------------------------------------------------------
    def accumulate(self, real_logits: torch.Tensor):
        self._signs += real_logits.detach().sign().sum().item()
        self._count += real_logits.numel()

    def adjust(self, batch: int, reduce=None):
        """Call once per minibatch; every `interval` calls p moves towards the target. `reduce`
        sums [signs, count] over processes so that every process keeps the same p. As in
        NVIDIA's loop, p is bounded below by 0 only (p > 1 applies every op to every image)."""
        if self._count == 0:
            return
        self._calls += 1
        if self._calls % self.interval:
            return
        signs, count = (self._signs, self._count) if reduce is None else reduce([self._signs, self._count])
        r_t = signs / count
        step = math.copysign(batch * self.interval / (self.speed_kimg * 1000), r_t - self.target)
        self.p = max(self.p + step, 0.0)
        self._signs, self._count = 0.0, 0
        self.last_rt = r_t

    def state(self) -> list:
        """What a resumed run needs to continue the adjustment exactly."""
        return [self.p, self._signs, self._count, self._calls]

    def load_state(self, st: list):
        self.p, self._signs, self._count, self._calls = float(st[0]), float(st[1]), int(st[2]), int(st[3])


def _scale_rgb(c):
    m = _eye(len(c), 4, c.device)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = c
    return m


def resample(x: torch.Tensor, inverse: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Warp images by per-sample inverse transforms ([n, 3, 3], pixel coordinates centred on the
    image). Alias-reduced: reflect-pad, upsample 2x with `f`, sample bilinearly, downsample 2x."""
    n, c, h, w = x.shape
    border = f.shape[-1] // 4  # 1x pixels the filters read beyond an edge
    cx, cy = (w - 1) / 2, (h - 1) / 2
    corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]],
                           device=x.device).t()
    reach = (inverse @ corners)[:, :2].abs().amax(dim=(0, 2))  # furthest source x, y
    pad_x = min(max(math.ceil(reach[0].item() - cx) + 2 * border, 0), w - 1)
    pad_y = min(max(math.ceil(reach[1].item() - cy) + 2 * border, 0), h - 1)
    x = F.pad(x, [pad_x, pad_x, pad_y, pad_y], mode="reflect")
    x = upsample2d(x, f)
    hu, wu = x.shape[2:]
    # The filter is not symmetric: its delay shifts the upsampled content by `delay` 1x pixels
    # (from its centroid; 0.2 for symlet-6) and the flipped downsampling shifts back by as much.
    # Sampling positions and source coordinates are corrected for it, so any transform (not only
    # the identity) lands on the right pixels. NVIDIA corrects by a fixed half upsampled pixel.
    delay_x, delay_y = _delay(f.sum(0)), _delay(f.sum(1))
    # 2x output samples over the image plus `border`, in centred 1x pixel coordinates
    ho, wo = 2 * (h + 2 * border), 2 * (w + 2 * border)
    ys = (torch.arange(ho, device=x.device) - (ho - 1) / 2) / 2 + delay_y
    xs = (torch.arange(wo, device=x.device) - (wo - 1) / 2) / 2 + delay_x
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx.flatten(), gy.flatten(), torch.ones_like(gx.flatten())])
    src = inverse @ pts  # [n, 3, P]
    # centred 1x coordinate s sits at upsampled index 2 (s - delay) + (size - 1) / 2, i.e. at
    # the normalised coordinate 4 (s - delay) / size of grid_sample (align_corners=False)
    grid = torch.stack([4 * (src[:, 0] - delay_x) / wu, 4 * (src[:, 1] - delay_y) / hu],
                       dim=-1).reshape(n, ho, wo, 2)
    x = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros",
                      align_corners=False)
    x = downsample2d(x, f.flip(list(range(f.ndim))))
    return x[:, :, border:border + h, border:border + w]


def _delay(taps: torch.Tensor) -> float:
    """How far (in 1x pixels) 2x upsampling with these taps moves the content: half the distance
    from the middle tap to the taps' centroid (0 for a symmetric filter)."""
    centroid = (torch.arange(len(taps), device=taps.device) * taps).sum() / taps.sum()
    return ((len(taps) - 1) / 2 - centroid.item()) / 2
