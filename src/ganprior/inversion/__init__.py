"""GAN inversion: one engine (`invert`), several methods (`make_method`)."""
from .engine import InversionResult, invert
from .losses import ReconstructionLoss
from .methods import METHODS, make_method

__all__ = ["invert", "make_method", "METHODS", "InversionResult", "ReconstructionLoss"]
