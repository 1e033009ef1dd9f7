"""Image-quality metrics: functions on tensors, and `ganprior metrics A B` on files."""
from .image import ms_ssim, psnr, ssim, to_unit

__all__ = ["psnr", "ssim", "ms_ssim", "to_unit"]
