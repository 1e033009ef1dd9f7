"""Adaptive discriminator augmentation (ADA; Karras et al. 2020), the "bgc" subset without
resampling: blits (x-flip, 90-degree rotations, integer translation) and colour transforms
(brightness, contrast, luma flip, saturation). Every op is applied per sample with probability
p, is differentiable, and leaks no augmentation to G at p < ~0.8 (as in the paper).

p is tuned every `interval` minibatches: the overfitting heuristic r_t = E[sign(D(real))] is
compared to `target` (0.6) and p moves by batch * interval / (speed_kimg * 1000) towards it.
"""
from __future__ import annotations

import math

import torch


class AugmentPipe:
    def __init__(self, p: float = 0.0, target: float = 0.6, interval: int = 4,
                 speed_kimg: float = 500):
        self.p, self.target, self.interval, self.speed_kimg = p, target, interval, speed_kimg
        self._signs, self._count = 0.0, 0

    def _mask(self, n, device):
        return (torch.rand(n, device=device) < self.p).float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.p <= 0:
            return x
        n, dev = x.shape[0], x.device
        # blits
        flip = self._mask(n, dev).reshape(n, 1, 1, 1)
        x = flip * x.flip(3) + (1 - flip) * x
        k = (torch.randint(0, 4, (n,), device=dev) * self._mask(n, dev).long()).tolist()
        x = torch.stack([torch.rot90(x[i], k[i], dims=(1, 2)) for i in range(n)])
        on = self._mask(n, dev).bool().tolist()
        h, w = x.shape[2:]
        shifts = torch.round((torch.rand(n, 2) * 2 - 1) * 0.125 * torch.tensor([h, w])).long().tolist()
        x = torch.stack([_translate_reflect(x[i], *shifts[i]) if on[i] else x[i] for i in range(n)])
        # colour (on a zero-centred image, as NVIDIA's pipe)
        b = torch.randn(n, 1, 1, 1, device=dev) * 0.2 * self._mask(n, dev).reshape(n, 1, 1, 1)
        x = x + b
        c = torch.exp2(torch.randn(n, 1, 1, 1, device=dev) * 0.5 * self._mask(n, dev).reshape(n, 1, 1, 1))
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        x = (x - mean) * c + mean
        luma = x.mean(dim=1, keepdim=True)
        flip = self._mask(n, dev).reshape(n, 1, 1, 1)
        x = x - 2 * flip * luma  # luma flip: invert brightness, keep chroma
        s = torch.exp2(torch.randn(n, 1, 1, 1, device=dev) * self._mask(n, dev).reshape(n, 1, 1, 1))
        luma = x.mean(dim=1, keepdim=True)
        return (x - luma) * s + luma

    def accumulate(self, real_logits: torch.Tensor):
        self._signs += real_logits.detach().sign().sum().item()
        self._count += real_logits.numel()

    def adjust(self, batch: int):
        """Call once per minibatch; every `interval` calls p moves towards the target."""
        if self._count == 0:
            return
        self._calls = getattr(self, "_calls", 0) + 1
        if self._calls % self.interval:
            return
        r_t = self._signs / self._count
        step = math.copysign(batch * self.interval / (self.speed_kimg * 1000), r_t - self.target)
        self.p = min(max(self.p + step, 0.0), 1.0)
        self._signs, self._count = 0.0, 0
        self.last_rt = r_t


def _translate_reflect(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Integer translation with reflection at the borders (no resampling)."""
    if dy == 0 and dx == 0:
        return img
    h, w = img.shape[1:]
    pad = torch.nn.functional.pad(img[None], [abs(dx), abs(dx), abs(dy), abs(dy)], mode="reflect")[0]
    return pad[:, abs(dy) - dy: abs(dy) - dy + h, abs(dx) - dx: abs(dx) - dx + w]
