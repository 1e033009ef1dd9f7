"""Image restoration with a GAN prior: the degradations each task inverts through
(colorize, super-resolve, inpaint, denoise) and the classical baselines they are compared with.
See docs/degradations.md."""
from .baselines import BASELINES, run_baseline
from .degrade import (TASKS, Degradation, Downsample, GaussianNoise, Gray, Mask, SaltPepper,
                      luminance, make_degradation)

__all__ = ["BASELINES", "TASKS", "Degradation", "Downsample", "GaussianNoise", "Gray", "Mask",
           "SaltPepper", "luminance", "make_degradation", "run_baseline"]
