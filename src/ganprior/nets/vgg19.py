"""VGG19 feature extractor (torchvision's layout: `features.N.weight`) for pix2pixHD's
perceptual loss: the activations relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1.

The ImageNet weights are an optional file (`ganprior weights`, entry "vgg19"); nothing here
downloads. `load_vgg19` returns None (and the reason) when they are not installed.
"""
from __future__ import annotations

from .vgg import VGG19_CFG, VGGFeatures

RELU_INDEX = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
PIX2PIXHD_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class VGG19Features(VGGFeatures):
    """VGG19's convs; default outputs relu1_1 ... relu5_1 (pix2pixHD's perceptual loss)."""

    def __init__(self):
        super().__init__(VGG19_CFG, RELU_INDEX, PIX2PIXHD_LAYERS)


_loaded: dict = {}


def load_vgg19(device) -> tuple[VGG19Features | None, str | None]:
    """(frozen ImageNet VGG19 features in eval mode, None), or (None, why not) when the weights
    file is not installed or not usable. Cached per device and file."""
    from .. import weights
    from ..errors import GanpriorError
    path = weights.find("vgg19")
    if path is None:
        return None, (f"VGG19 weights not installed ({weights.path_of('vgg19')}; "
                      f"`ganprior weights download vgg19`)")
    st = path.stat()  # a different, newly installed or replaced file is loaded afresh
    key = (str(device), str(path), st.st_mtime_ns, st.st_size)
    if key in _loaded:
        return _loaded[key], None
    try:
        state = weights.load_state("vgg19")
    except GanpriorError as e:  # a corrupt optional file: say so, train without it
        return None, str(e)
    if state is None:
        return None, f"VGG19 weights not readable at {path}"
    net = VGG19Features()
    try:
        net.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")})
    except RuntimeError as e:
        return None, f"{path}: not VGG19 weights ({str(e).splitlines()[0]})"
    _loaded[key] = net.eval().requires_grad_(False).to(device)
    return _loaded[key], None
