"""VGG19 feature extractor (torchvision's layout: `features.N.weight`) for pix2pixHD's
perceptual loss: the activations relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1.

The ImageNet weights are an optional file (`ganprior weights`, entry "vgg19"); nothing here
downloads. `load_vgg19` returns None (and the reason) when they are not installed.
"""
from __future__ import annotations

import torch
from torch import nn

# Channels per conv; "M" = 2x2 max-pool. Indices in `features` follow torchvision's vgg19.
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
        512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
RELU_INDEX = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
PIX2PIXHD_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class VGG19Features(nn.Module):
    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
                c = v
        self.features = nn.Sequential(*layers)

    def forward(self, x, outputs=PIX2PIXHD_LAYERS) -> list[torch.Tensor]:
        """x: ImageNet-normalised input; the activations named in `outputs`, in that order."""
        want = {RELU_INDEX[o]: o for o in outputs}
        last, found = max(want), {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in want:
                found[want[i]] = x
            if i == last:
                break
        return [found[o] for o in outputs]


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
