"""Reconstruction losses, as a '+'-joined spec of weighted terms: "mse", "mse+ms-ssim:0.1",
"l1+vgg:0.001", or "auto".

Terms (per image, images in [-1, 1]):
- mse, l1: pixel losses.
- vgg: mGANprior's perceptual term: L1 between VGG16 relu3_3 features of ImageNet-normalised
  inputs resized (nearest) to 256 px (default weight 0.001). Needs the optional `vgg16` weights.
- lpips: LPIPS-VGG distance. Needs the `vgg16` and `lpips-vgg` weights.
- ms-ssim: 1 - MS-SSIM (default weight 0.1); works everywhere, no weights.
"auto" = "mse+vgg" when VGG16 weights are installed, else "mse+ms-ssim"; `describe()` says
which loss ran and why, and every run records it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import weights
from ..metrics import ms_ssim, to_unit
from ..nets.vgg import LPIPS, VGG16Features, imagenet_normalise

DEFAULT_WEIGHTS = {"mse": 1.0, "l1": 1.0, "vgg": 0.001, "lpips": 1.0, "ms-ssim": 0.1}
_cache: dict = {}


def load_vgg16(device) -> VGG16Features | None:
    key = ("vgg16", str(device))
    if key not in _cache:
        state = weights.load_state("vgg16")
        if state is None:
            return None
        net = VGG16Features()
        net.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")})
        _cache[key] = net.eval().requires_grad_(False).to(device)
    return _cache[key]


def load_lpips(device) -> LPIPS | None:
    key = ("lpips", str(device))
    if key not in _cache:
        vgg, lin = load_vgg16(device), weights.load_state("lpips-vgg")
        if vgg is None or lin is None:
            return None
        _cache[key] = LPIPS(vgg, lin).eval().requires_grad_(False).to(device)
    return _cache[key]


class ReconstructionLoss:
    def __init__(self, spec: str = "auto", device="cpu"):
        self.device, self.note = torch.device(device), ""
        if spec == "auto":
            if load_vgg16(self.device) is not None:
                spec = "mse+vgg"
            else:
                spec = "mse+ms-ssim"
                self.note = (f"VGG16 weights not found in {weights.cache_dir()}: perceptual term "
                             "replaced by MS-SSIM (run `ganprior weights download vgg16`)")
        self.terms = []
        for part in spec.split("+"):
            name, _, w = part.partition(":")
            if name not in DEFAULT_WEIGHTS:
                raise ValueError(f"unknown loss term {name!r}; use {', '.join(DEFAULT_WEIGHTS)}")
            self.terms.append((name, float(w) if w else DEFAULT_WEIGHTS[name]))
        for name, _ in self.terms:
            if name == "vgg" and load_vgg16(self.device) is None:
                raise ValueError(f"loss 'vgg' needs VGG16 weights in {weights.cache_dir()} "
                                 "(`ganprior weights download vgg16`)")
            if name == "lpips" and load_lpips(self.device) is None:
                raise ValueError(f"loss 'lpips' needs vgg16 and lpips-vgg weights in "
                                 f"{weights.cache_dir()}")
        self.name = "+".join(f"{n}:{w:g}" for n, w in self.terms)

    def describe(self) -> dict:
        return {"loss": self.name, "note": self.note} if self.note else {"loss": self.name}

    def __call__(self, img: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image loss [N]."""
        total = 0
        for name, w in self.terms:
            if name == "mse":
                term = (img - target).square().flatten(1).mean(1)
            elif name == "l1":
                term = (img - target).abs().flatten(1).mean(1)
            elif name == "ms-ssim":
                term = 1 - ms_ssim(to_unit(img), to_unit(target))
            elif name == "vgg":
                vgg = load_vgg16(self.device)
                size = (256, 256)  # nearest, as mGANprior's official loss resizes
                fa = vgg(imagenet_normalise(F.interpolate(img, size, mode="nearest")))[0]
                fb = vgg(imagenet_normalise(F.interpolate(target, size, mode="nearest")))[0]
                term = (fa - fb).abs().flatten(1).mean(1)
            else:
                term = load_lpips(self.device)(img, target)
            total = total + w * term
        return total
