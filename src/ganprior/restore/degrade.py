"""Differentiable degradations: the forward models of the restoration tasks (docs/degradations.md).

A restoration is an inversion through a degradation D: minimise loss(D(G(theta)), y) for an
observation y. Each degradation here is a small object with
- `__call__(image)`: D itself, differentiable, [N, C, H, W] in [-1, 1] -> the observation;
- `corrupt(clean)`: the observation a user would have (adds the noise for the noise models;
  the same as `__call__` for the deterministic ones);
- `observed_size(resolution)`: the spatial size of the observations of a model's images;
- `bring_back(recon, observed)`: the final output at the model's resolution (colorization keeps
  the observed luminance, inpainting pastes the known pixels; the others return the
  reconstruction), unless `keep_observed` is False;
- `settings()`: a JSON-ready description (name + parameters) for the result records;
- `subset(rows)`: the same degradation for some of its images (per-image masks and seeds).

Images are in [-1, 1]. Noise levels are in units of the [0, 1] intensity range (sigma=0.1 is
25.5 grey levels of 255), so the standard deviation added in [-1, 1] units is 2 * sigma.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, the Y of YCbCr
DOWNSAMPLE_MODES = ("area", "bicubic")
TASKS = ("colorize", "super-resolve", "inpaint", "denoise")


def _check_image(x: torch.Tensor, what: str = "image") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"the {what} must be [N, C, H, W], got {shape}")


def _check_seeds(seeds) -> list[int] | None:
    if seeds is None:
        return None
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                            for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    return seeds


def _image_seeds(seeds: list[int] | None, n: int, name: str) -> list[int]:
    """Seed of each of n images: seeds[i], or i when no seeds were given."""
    if seeds is None:
        return list(range(n))
    if len(seeds) != n:
        raise ValueError(f"{name} has {len(seeds)} seeds for {n} images")
    return seeds


def _fraction(value, what: str, low_open: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (0 < value < 1 if low_open else 0 <= value < 1):
        raise ValueError(f"{what} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"the resolution must be a positive integer, got {resolution!r}")
    return resolution


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Y (BT.601) of [N, 3, H, W] RGB -> [N, 1, H, W]; a 1-channel image is its own Y."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"luminance needs 1 or 3 channels, got {x.shape[1]}")
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


class Degradation:
    """Base class: a deterministic degradation whose result is the reconstruction itself."""

    name = "identity"
    task = ""

    def __init__(self, keep_observed: bool = True):
        self.keep_observed = bool(keep_observed)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _check_image(image)
        return image

    def corrupt(self, clean: torch.Tensor) -> torch.Tensor:
        return self(clean)

    def observed_size(self, resolution: int) -> int:
        return _resolution(resolution)

    def bring_back(self, recon: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        _check_image(recon, "reconstruction")
        _check_image(observed, "observation")
        return recon

    def subset(self, rows: Sequence[int]) -> "Degradation":
        return self

    def settings(self) -> dict:
        return {"name": self.name, "keep_observed": self.keep_observed}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if k != "name")
        return f"{type(self).__name__}({args})"


class Gray(Degradation):
    """Colorization: RGB -> its luminance 0.299 R + 0.587 G + 0.114 B, replicated to three
    channels (so the perceptual losses, which expect RGB, still apply). A 1-channel image is
    already gray and passes through unchanged."""

    name, task = "gray", "colorize"

    def __call__(self, image):
        _check_image(image)
        if image.shape[1] == 1:
            return image
        if image.shape[1] != 3:
            raise ValueError(f"gray needs 1- or 3-channel images, got {image.shape[1]} channels")
        return luminance(image).expand(-1, 3, -1, -1)

    def bring_back(self, recon, observed):
        """The observed luminance with the reconstruction's chroma (Cb, Cr of BT.601 YCbCr).

        Changing Y at fixed Cb, Cr adds the same amount to R, G and B, so the output is
        Y_obs + t * (recon - Y_recon); t = 1 unless that leaves [-1, 1], where the chroma is
        shrunk (t < 1) just enough to fit, which keeps Y exact. A 1-channel model has no
        chroma: the output is the observation."""
        super().bring_back(recon, observed)
        if recon.shape[-2:] != observed.shape[-2:]:
            raise ValueError(f"the reconstruction is {tuple(recon.shape[-2:])} px, the "
                             f"observation {tuple(observed.shape[-2:])} px")
        if not self.keep_observed:
            return recon
        y = luminance(observed).to(recon)
        if recon.shape[1] == 1:
            return y.expand_as(recon).clone()
        chroma = recon - luminance(recon)
        # largest t in [0, 1] with -1 <= y + t * chroma <= 1 in every channel
        room = torch.where(chroma > 0, 1 - y, -1 - y)
        t = torch.where(chroma != 0, room / torch.where(chroma != 0, chroma, 1), 1.0)
        t = t.amin(1, keepdim=True).clamp(0, 1)
        return (y + t * chroma).clamp(-1, 1)


class Downsample(Degradation):
    """Super-resolution: downsample by an integer factor (the observation is the low-resolution
    image). mode "area" averages factor x factor blocks; "bicubic" is antialiased bicubic
    (PIL's BICUBIC resize, a = -0.5, its kernel widened by the factor). The result is the
    reconstruction itself: the observation is not at the model's resolution, so nothing of it
    can be pasted back."""

    name, task = "downsample", "super-resolve"

    def __init__(self, factor: int, mode: str = "area", keep_observed: bool = True):
        super().__init__(keep_observed)
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"the downsampling factor must be an integer >= 1, got {factor!r}")
        if mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"unknown downsampling mode {mode!r} (choose from "
                             f"{', '.join(DOWNSAMPLE_MODES)})")
        self.factor, self.mode = factor, mode

    def _check_divides(self, h: int, w: int) -> None:
        if h % self.factor or w % self.factor:
            size = f"{h}" if h == w else f"{h}x{w}"
            raise ValueError(f"factor {self.factor} does not divide the resolution {size}")

    def __call__(self, image):
        _check_image(image)
        h, w = image.shape[-2:]
        self._check_divides(h, w)
        if self.factor == 1:
            return image
        if self.mode == "area":
            return F.avg_pool2d(image, self.factor)
        return F.interpolate(image, size=(h // self.factor, w // self.factor), mode="bicubic",
                             align_corners=False, antialias=True)

    def observed_size(self, resolution):
        self._check_divides(_resolution(resolution), resolution)
        return resolution // self.factor

    def settings(self):
        return {"name": self.name, "factor": self.factor, "mode": self.mode,
                "keep_observed": self.keep_observed}


class Mask(Degradation):
    """Inpainting: multiply by a known-pixel mask `known` [1 or N, 1, H, W] of 0/1 (1 = known).
    One row applies to every image; N rows give image i its own mask. bring_back pastes the
    observed known pixels over the reconstruction."""

    name, task = "mask", "inpaint"

    def __init__(self, known: torch.Tensor, keep_observed: bool = True, source: dict | None = None):
        super().__init__(keep_observed)
        if not isinstance(known, torch.Tensor) or known.dim() != 4 or known.shape[1] != 1:
            shape = tuple(known.shape) if isinstance(known, torch.Tensor) else type(known).__name__
            raise ValueError(f"a mask must be [N or 1, 1, H, W], got {shape}")
        known = known.detach().to("cpu", torch.float32)
        if not bool(((known == 0) | (known == 1)).all()):
            raise ValueError("a mask must hold only 0 (missing) and 1 (known)")
        counts = known.flatten(1).sum(1)
        if bool((counts == 0).any()):
            raise ValueError("the mask has no known pixel: nothing to inpaint from")
        if bool((counts == known[0].numel()).any()):
            raise ValueError("the mask has no missing pixel: nothing to inpaint")
        self.known = known
        self.source = dict(source or {"kind": "array"})

    @classmethod
    def center_square(cls, size: int, resolution: int, **kw) -> "Mask":
        """A size x size hole in the middle (top-left corner at (resolution - size) // 2)."""
        resolution = _resolution(resolution)
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size < resolution:
            raise ValueError(f"the centre square must be 1 to {resolution - 1} px at resolution "
                             f"{resolution}, got {size!r}")
        known = torch.ones(1, 1, resolution, resolution)
        top = (resolution - size) // 2
        known[..., top:top + size, top:top + size] = 0
        return cls(known, source={"kind": "center", "size": size}, **kw)

    @classmethod
    def random(cls, fraction_missing: float, resolution: int, seeds: Sequence[int], **kw) -> "Mask":
        """One mask per seed: each pixel is missing with probability fraction_missing, drawn
        from torch.Generator().manual_seed(seeds[i]) alone (so image i's mask does not depend on
        the batch it is in)."""
        p = _fraction(fraction_missing, "the missing fraction")
        resolution = _resolution(resolution)
        seeds = _check_seeds(seeds)
        if seeds is None:
            raise ValueError("a random mask needs seeds (one per image)")
        rows = [torch.rand(1, resolution, resolution, generator=torch.Generator().manual_seed(s))
                >= p for s in seeds]
        return cls(torch.stack(rows).float(),
                   source={"kind": "random", "fraction_missing": p, "seeds": seeds}, **kw)

    @classmethod
    def from_file(cls, path, resolution: int, **kw) -> "Mask":
        """A mask image, white = known, black = missing (any mode or bit depth; gray levels are
        thresholded at half intensity). It must be resolution x resolution: a mask is never
        resized, since that would move the hole's edge."""
        from ..images import load_image  # images is a leaf module; lazy keeps import time low

        resolution = _resolution(resolution)
        m = load_image(path, channels=1)
        h, w = m.shape[-2:]
        if (h, w) != (resolution, resolution):
            label = Path(path).name if isinstance(path, (str, Path)) else "file"
            raise ValueError(f"mask {label} is {w}x{h}, the model's images are "
                             f"{resolution}x{resolution}")
        return cls((m > 0).float(), source={"kind": "file", "path": str(path)}, **kw)

    def _known_for(self, image: torch.Tensor) -> torch.Tensor:
        _check_image(image)
        n, h, w = image.shape[0], *image.shape[-2:]
        if tuple(self.known.shape[-2:]) != (h, w):
            raise ValueError(f"the mask is {self.known.shape[-1]}x{self.known.shape[-2]}, the "
                             f"images are {w}x{h}")
        if self.known.shape[0] not in (1, n):
            raise ValueError(f"the mask has {self.known.shape[0]} rows for {n} images")
        return self.known.to(device=image.device, dtype=image.dtype)

    def __call__(self, image):
        return image * self._known_for(image)

    def observed_size(self, resolution):
        resolution = _resolution(resolution)
        if tuple(self.known.shape[-2:]) != (resolution, resolution):
            raise ValueError(f"the mask is {self.known.shape[-1]}x{self.known.shape[-2]}, the "
                             f"model's images are {resolution}x{resolution}")
        return resolution

    def bring_back(self, recon, observed):
        super().bring_back(recon, observed)
        if not self.keep_observed:
            return recon
        if observed.shape != recon.shape:
            raise ValueError(f"the observation is {tuple(observed.shape)}, the reconstruction "
                             f"{tuple(recon.shape)}")
        known = self._known_for(recon)
        return known * observed.to(recon) + (1 - known) * recon

    def subset(self, rows):
        if self.known.shape[0] == 1:
            return self
        rows = list(rows)
        source = dict(self.source)
        if "seeds" in source:
            source["seeds"] = [source["seeds"][r] for r in rows]
        return Mask(self.known[rows], self.keep_observed, source)

    def missing_fraction(self) -> list[float]:
        """Fraction of missing pixels of each mask row."""
        return (1 - self.known.flatten(1).mean(1)).tolist()

    def settings(self):
        return {"name": self.name, **self.source,
                "missing": [round(f, 6) for f in self.missing_fraction()],
                "keep_observed": self.keep_observed}


class _Noise(Degradation):
    """Additive noise: `corrupt` makes the noisy observation (image i from seeds[i], or from i
    when no seeds are given), clamped to [-1, 1]. `__call__` is the identity: the generator
    cannot make the noise, so its clean image is compared with the noisy one directly. The
    result is the reconstruction: the observation is noisy, pasting any of it back would bring
    the noise back."""

    task = "denoise"

    def __init__(self, seeds: Sequence[int] | None = None, keep_observed: bool = True):
        super().__init__(keep_observed)
        self.seeds = _check_seeds(seeds)

    def corrupt(self, clean):
        _check_image(clean, "clean image")
        seeds = _image_seeds(self.seeds, clean.shape[0], self.name)
        rows = [self._noisy(clean[i], torch.Generator().manual_seed(s))
                for i, s in enumerate(seeds)]
        return torch.stack(rows).clamp(-1, 1)

    def _noisy(self, image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def subset(self, rows):
        if self.seeds is None:
            return self
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__, seeds=[self.seeds[r] for r in rows])
        return copy


class GaussianNoise(_Noise):
    """Additive white Gaussian noise of standard deviation `sigma` in [0, 1] intensity units
    (2 * sigma in the [-1, 1] units of the images), independent per pixel and channel."""

    name = "gaussian-noise"

    def __init__(self, sigma: float, seeds: Sequence[int] | None = None,
                 keep_observed: bool = True):
        super().__init__(seeds, keep_observed)
        ok = isinstance(sigma, (int, float)) and not isinstance(sigma, bool)
        if not ok or not math.isfinite(sigma) or not 0 < sigma <= 1:
            raise ValueError(f"sigma must be a number in (0, 1] (units of the 0..1 intensity "
                             f"range), got {sigma!r}")
        self.sigma = float(sigma)

    def _noisy(self, image, g):
        noise = torch.randn(image.shape, generator=g)
        return image + (2 * self.sigma * noise).to(image)

    def settings(self):
        return {"name": self.name, "sigma": self.sigma, "sigma_units": "0..1 intensity",
                "seeds": self.seeds, "keep_observed": self.keep_observed}


class SaltPepper(_Noise):
    """Impulse noise: a fraction `amount` of the pixels (all channels of a pixel together) is
    replaced, each by white (+1) or black (-1) with equal probability. `known_mask` gives the
    uncorrupted pixels as a Mask, to treat the denoising as inpainting when the corruption is
    known."""

    name = "salt-pepper"

    def __init__(self, amount: float, seeds: Sequence[int] | None = None,
                 keep_observed: bool = True):
        super().__init__(seeds, keep_observed)
        self.amount = _fraction(amount, "the salt-and-pepper amount")

    def _draw(self, h: int, w: int, g: torch.Generator):
        """(corrupted [1, h, w] bool, salt [1, h, w] bool): the same draw for noise and mask."""
        hit = torch.rand(1, h, w, generator=g) < self.amount
        salt = torch.rand(1, h, w, generator=g) < 0.5
        return hit, salt

    def _noisy(self, image, g):
        hit, salt = self._draw(*image.shape[-2:], g)
        value = torch.where(salt, 1.0, -1.0).to(image)
        return torch.where(hit.to(image.device), value, image)

    def known_mask(self, n: int, resolution: int) -> Mask:
        """The pixels `corrupt` leaves alone for n images of the given resolution."""
        seeds = _image_seeds(self.seeds, n, self.name)
        r = _resolution(resolution)
        rows = [~self._draw(r, r, torch.Generator().manual_seed(s))[0] for s in seeds]
        return Mask(torch.stack(rows).float(), self.keep_observed,
                    source={"kind": "salt-pepper", "amount": self.amount, "seeds": seeds})

    def settings(self):
        return {"name": self.name, "amount": self.amount, "seeds": self.seeds,
                "keep_observed": self.keep_observed}


def make_degradation(task: str, resolution: int | None = None, **options) -> Degradation:
    """The degradation of a task from its options:
    colorize: none; super-resolve: factor, mode="area"; inpaint (exactly one of): mask=PATH,
    center=SIZE, random=FRACTION (with seeds); denoise: noise="gaussian" (sigma=0.1) or
    "sp" (amount=0.1), seeds. `keep_observed` applies to all; inpaint needs the resolution."""
    keep = options.pop("keep_observed", True)

    def take(*allowed):
        extra = sorted(set(options) - set(allowed))
        if extra:
            raise ValueError(f"{task} does not take {', '.join(extra)} (it takes "
                             f"{', '.join(allowed) or 'no options'})")
        return options

    if task == "colorize":
        take()
        return Gray(keep)
    if task == "super-resolve":
        o = take("factor", "mode")
        if "factor" not in o:
            raise ValueError("super-resolve needs a factor")
        return Downsample(o["factor"], o.get("mode", "area"), keep)
    if task == "inpaint":
        o = {k: v for k, v in take("mask", "center", "random", "seeds").items() if v is not None}
        given = [k for k in ("mask", "center", "random") if k in o]
        if len(given) != 1:
            raise ValueError("inpaint needs exactly one of a mask file, a centre square size or "
                             "a random missing fraction")
        if resolution is None:
            raise ValueError("inpaint needs the model's resolution")
        if given[0] == "mask":
            return Mask.from_file(o["mask"], resolution, keep_observed=keep)
        if given[0] == "center":
            return Mask.center_square(o["center"], resolution, keep_observed=keep)
        return Mask.random(o["random"], resolution, o.get("seeds", [0]), keep_observed=keep)
    if task == "denoise":
        o = take("noise", "sigma", "amount", "seeds")
        noise = o.get("noise", "gaussian")
        if noise == "gaussian":
            if "amount" in o:
                raise ValueError("gaussian noise takes sigma, not amount")
            return GaussianNoise(o.get("sigma", 0.1), o.get("seeds"), keep)
        if noise == "sp":
            if "sigma" in o:
                raise ValueError("salt-and-pepper noise takes amount, not sigma")
            return SaltPepper(o.get("amount", 0.1), o.get("seeds"), keep)
        raise ValueError(f"unknown noise {noise!r} (choose from gaussian, sp)")
    raise ValueError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")
