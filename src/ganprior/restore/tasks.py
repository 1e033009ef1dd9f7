"""The four restoration tasks of the mGANprior paper as inversions through a degradation.

A task says how its inputs become observations, which degradation the loss sees, its
classical baselines and its default mGANprior settings; `inversion.files.invert_files` runs
it over files (the one folder runner: progress, resume, JSON) with any inversion method,
optional generator tuning, or a classical baseline instead of the generator.

Inputs are what a user has: a gray or colour photo (colorize), the low-resolution image
(super-resolve), the photo plus a mask (inpaint), the noisy photo (denoise). With
`simulate=True` the inputs are clean images at the model's resolution instead: they are
degraded here (image i with seed + i) and the result is measured against the clean image,
which is how the benchmark and the demo score every method.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .baselines import BASELINES, run_baseline
from .degrade import Downsample, GaussianNoise, Gray, Mask, SaltPepper

# mGANprior settings per task (docs/restoration.md): the paper's code counts (colorization
# 20, super-resolution 30, inpainting 30) and its composition layers mapped to a 64 px model
# (coarse features for colour and holes, finer ones for detail); steps cut from the paper's
# 1500-3000 to what a CPU does in well under a minute per 64 px image.
TASK_DEFAULTS = {
    "colorize": {"codes": 20, "layer_fraction": 8, "steps": 300},
    "super-resolve": {"codes": 30, "layer_fraction": 4, "steps": 300},
    "inpaint": {"codes": 30, "layer_fraction": 8, "steps": 300},
    "denoise": {"codes": 20, "layer_fraction": 8, "steps": 300},
}
TASKS = tuple(TASK_DEFAULTS)


def default_layer(task: str, resolution: int) -> str:
    """The task's composition layer for a model of `resolution` px (e.g. b8 at 64 px)."""
    return f"b{max(4, resolution // TASK_DEFAULTS[task]['layer_fraction'])}"


@dataclass
class Task:
    """One restoration task; `degradation(resolution, seeds)` builds its per-chunk object."""
    name: str
    options: dict = field(default_factory=dict)
    baseline: str | None = None   # a classical method instead of the generator
    simulate: bool = False        # inputs are clean: degrade them, score against them
    keep_observed: bool = True    # bring_back: keep observed luminance / known pixels

    def __post_init__(self):
        if self.name not in TASKS:
            raise ValueError(f"unknown task {self.name!r}; choose from {', '.join(TASKS)}")
        if self.baseline is not None and self.baseline not in BASELINES[self.name]:
            raise ValueError(f"--method {self.baseline} is not a {self.name} baseline; use "
                             f"{' or '.join(BASELINES[self.name])} (or a GAN-prior method)")

    def degradation(self, resolution: int, seeds: list[int]):
        o, name = self.options, self.name
        if name == "colorize":
            d = Gray()
        elif name == "super-resolve":
            d = Downsample(o.get("factor", 8), mode=o.get("mode", "area"))
            d.observed_size(resolution)  # refuses a factor that does not divide it
        elif name == "inpaint":
            if o.get("mask") is not None:
                d = Mask.from_file(o["mask"], resolution)
            elif o.get("center_crop") is not None:
                d = Mask.center_square(o["center_crop"], resolution)
            else:
                d = Mask.random(o.get("random", 0.8), resolution, seeds)
        elif o.get("noise") in (None, "gaussian"):
            d = GaussianNoise(o.get("sigma", 0.1), seeds)
        else:
            d = SaltPepper(o.get("sigma", 0.1), seeds)
        d.keep_observed = self.keep_observed
        return d

    def input_size(self, resolution: int) -> int:
        """The size inputs are loaded at (a notice is printed when a file differs)."""
        if self.name == "super-resolve" and not self.simulate:
            return self.degradation(resolution, [0]).observed_size(resolution)
        return resolution

    def observe(self, loaded: torch.Tensor, degradation) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(observation, clean reference or None) for loaded inputs."""
        if self.simulate:
            return degradation.corrupt(loaded), loaded
        if self.name in ("colorize", "inpaint"):  # a colour photo is made gray / masked here
            return degradation(loaded), None
        return loaded, None

    def run_baseline(self, observed: torch.Tensor, degradation, resolution: int) -> torch.Tensor:
        return run_baseline(self.baseline, observed, degradation, resolution)

    def settings(self) -> dict:
        """What changes the result (recorded in every JSON and compared on a rerun)."""
        opts = {k: (str(v) if k == "mask" and v is not None else v)
                for k, v in self.options.items()}
        return {"task": self.name, "task_options": opts, "baseline": self.baseline,
                "simulate": self.simulate, "keep_observed": self.keep_observed}
