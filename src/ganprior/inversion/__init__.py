"""GAN inversion: one engine (`invert`), several methods (`make_method`)."""
from .engine import InversionResult, InversionSession, invert
from .losses import ReconstructionLoss
from .methods import METHODS, make_method

__all__ = ["invert", "InversionSession", "make_method", "METHODS", "InversionResult", "ReconstructionLoss"]
