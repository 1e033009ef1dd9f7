"""Reconstruction losses, as a '+'-joined spec of weighted terms: "mse", "mse+ms-ssim:0.1",
"l1+vgg:0.001", or "auto".

Terms (per image, images in [-1, 1]):
- mse, l1: pixel losses.
- vgg: mGANprior's perceptual term: L1 between VGG16 relu3_3 features of ImageNet-normalised
  inputs resized (nearest) to 256 px (default weight 0.001). Needs the optional `vgg16` weights.
- lpips: LPIPS-VGG distance. Needs the `vgg16` and `lpips-vgg` weights.
- ms-ssim: 1 - MS-SSIM (default weight 0.1); works everywhere, no weights, but needs
  observations of at least 11 px (its Gaussian window).
"auto" = "mse+vgg" when VGG16 weights are installed, else "mse+ms-ssim", and plain "mse" on
observations smaller than MS-SSIM's window (an x8 super-resolution of a 64 px model observes
8 px). `describe()` says which loss ran and why; every run records it, and the fallback is also
issued as a Python warning.

`bind(targets)` fixes the targets of an optimisation: their VGG/LPIPS features are computed
once instead of at every step.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from .. import weights
from ..errors import GanpriorError
from ..metrics import ms_ssim, to_unit
from ..nets.vgg import LPIPS, imagenet_normalise, load_lpips, load_vgg16

DEFAULT_WEIGHTS = {"mse": 1.0, "l1": 1.0, "vgg": 0.001, "lpips": 1.0, "ms-ssim": 0.1}
MS_SSIM_MIN_SIZE = 11  # the Gaussian window of SSIM (11 taps)
VGG_SIZE = (256, 256)  # nearest, as mGANprior's official loss resizes


def _try_load_vgg16(device):
    """(network or None, why not): a corrupt optional file is a fallback, not a crash."""
    try:
        net = load_vgg16(device)
    except (GanpriorError, OSError, RuntimeError, ValueError) as e:
        return None, f"VGG16 weights in {weights.find('vgg16')} are unreadable ({e})"
    if net is None:
        return None, (f"VGG16 weights not found in {weights.cache_dir()} nor torchvision's "
                      "cache (run `ganprior weights download vgg16`)")
    return net, ""


def parse_spec(spec: str) -> list[tuple[str, float]]:
    """'mse+vgg:0.001' -> [("mse", 1.0), ("vgg", 0.001)]; weights finite and >= 0."""
    terms = []
    for part in spec.split("+"):
        name, _, w = part.partition(":")
        if name not in DEFAULT_WEIGHTS:
            raise ValueError(f"unknown loss term {name!r}; use {', '.join(DEFAULT_WEIGHTS)}")
        try:
            weight = float(w) if w else DEFAULT_WEIGHTS[name]
        except ValueError:
            raise ValueError(f"loss weight {w!r} of {name!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"loss weight of {name!r} must be a finite number >= 0, not {w}")
        terms.append((name, weight))
    return terms


class ReconstructionLoss:
    def __init__(self, spec: str = "auto", device="cpu"):
        self.device, self.note, self.auto = torch.device(device), "", spec == "auto"
        if self.auto:
            vgg, why_not = _try_load_vgg16(self.device)
            spec = "mse+vgg" if vgg is not None else "mse+ms-ssim"
            if vgg is None:
                self._fallback(f"{why_not}: perceptual term replaced by MS-SSIM")
        self.terms = parse_spec(spec)
        for name, _ in self.terms:
            if name == "vgg" and load_vgg16(self.device) is None:
                raise ValueError(f"loss 'vgg' needs VGG16 weights in {weights.cache_dir()} "
                                 "(`ganprior weights download vgg16`)")
            if name == "lpips" and load_lpips(self.device) is None:
                raise ValueError(f"loss 'lpips' needs vgg16 and lpips-vgg weights in "
                                 f"{weights.cache_dir()}")

    def _fallback(self, note: str):
        self.note = f"{self.note}; {note}" if self.note else note
        warnings.warn(f"--loss auto: {note}", stacklevel=3)

    @property
    def name(self) -> str:
        return "+".join(f"{n}:{w:g}" for n, w in self.terms)

    def describe(self) -> dict:
        return {"loss": self.name, "note": self.note} if self.note else {"loss": self.name}

    def fit_to(self, size: int) -> "ReconstructionLoss":
        """Make the terms work on observations of `size` px: under auto, MS-SSIM is dropped
        below its window (with a note); asked for explicitly, it is an error."""
        if size >= MS_SSIM_MIN_SIZE or not any(n == "ms-ssim" for n, _ in self.terms):
            return self
        if not self.auto:
            raise ValueError(f"loss term 'ms-ssim' needs observations of at least "
                             f"{MS_SSIM_MIN_SIZE} px, these are {size} px; use mse or l1")
        self.terms = [(n, w) for n, w in self.terms if n != "ms-ssim"]
        self._fallback(f"observations of {size} px are smaller than MS-SSIM's "
                       f"{MS_SSIM_MIN_SIZE} px window: MSE alone")
        return self

    def bind(self, target: torch.Tensor) -> "BoundLoss":
        return BoundLoss(self.fit_to(min(target.shape[-2:])), target)

    def __call__(self, img: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image loss [N]."""
        return BoundLoss(self, target)(img)


class BoundLoss:
    """A ReconstructionLoss with its targets fixed: target-side features computed once."""

    def __init__(self, loss: ReconstructionLoss, target: torch.Tensor):
        self.loss, self.target = loss, target.detach()
        self.cache: dict[str, list[torch.Tensor]] = {}
        with torch.no_grad():
            for name, _ in loss.terms:
                if name == "vgg":
                    self.cache[name] = self._vgg(self.target)
                elif name == "lpips":
                    net: LPIPS = load_lpips(loss.device)
                    self.cache[name] = net.features(self.target)

    def _vgg(self, x):
        x = imagenet_normalise(F.interpolate(x, VGG_SIZE, mode="nearest"))
        return load_vgg16(self.loss.device)(x)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        target, total = self.target, 0
        for name, w in self.loss.terms:
            if name == "mse":
                term = (img - target).square().flatten(1).mean(1)
            elif name == "l1":
                term = (img - target).abs().flatten(1).mean(1)
            elif name == "ms-ssim":
                term = 1 - ms_ssim(to_unit(img), to_unit(target))
            elif name == "vgg":
                term = (self._vgg(img)[0] - self.cache[name][0]).abs().flatten(1).mean(1)
            else:
                net = load_lpips(self.loss.device)
                term = net.distance(net.features(img), self.cache[name])
            total = total + w * term
        return total
