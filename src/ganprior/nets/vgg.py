"""VGG16 feature extractor (torchvision's layout: `features.N.weight`) and LPIPS on top of it.

Pretrained weights are optional files (see `ganprior.weights`); nothing here downloads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanpriorError

# Channels per conv; "M" = 2x2 max-pool. Indices in `features` follow torchvision's vgg16/vgg19.
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M"]
VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
             512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
RELU_INDEX = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """The conv part of a torchvision VGG (`features.N.*` keys); forward returns the
    activations named in `outputs` (keys of `relu_index`), in that order, and stops there."""

    def __init__(self, cfg: list, relu_index: dict[str, int], default_outputs: tuple):
        super().__init__()
        self.relu_index, self.default_outputs = relu_index, default_outputs
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
                c = v
        self.features = nn.Sequential(*layers)

    def forward(self, x, outputs=None) -> list[torch.Tensor]:
        """x: ImageNet-normalised input; the activations named in `outputs`, in that order."""
        outputs = outputs or self.default_outputs
        want = {self.relu_index[o]: o for o in outputs}
        last, found = max(want), {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in want:
                found[want[i]] = x
            if i == last:
                break
        return [found[o] for o in outputs]


class VGG16Features(VGGFeatures):
    """VGG16's convs; default output relu3_3 (mGANprior's perceptual loss)."""

    def __init__(self):
        super().__init__(VGG16_CFG, RELU_INDEX, ("relu3_3",))


def imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> ImageNet-normalised [0, 1] images."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).reshape(1, 3, 1, 1)
    return ((x + 1) / 2 - mean) / std


class LPIPS(nn.Module):
    """LPIPS (Zhang et al. 2018), VGG variant: unit-normalised features of relu1_2 ... relu5_3,
    squared differences weighted by learned non-negative 1x1 convs (`lin0..lin4`), averaged
    over space and summed. Input: [-1, 1] images, shifted/scaled as the official ScalingLayer."""
    LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
    CHANNELS = (64, 128, 256, 512, 512)  # of those layers: the input channels of lin0..lin4
    SHIFT = (-0.030, -0.088, -0.188)
    SCALE = (0.458, 0.448, 0.450)

    def __init__(self, vgg: VGG16Features, lin_state: dict):
        super().__init__()
        self.vgg = vgg
        self.lins = nn.ParameterList(
            [nn.Parameter(lin_state[f"lin{i}.model.1.weight"].clone(), requires_grad=False)
             for i in range(5)])

    def features(self, x):
        """Unit-normalised VGG features of [-1, 1] images (one tensor per layer)."""
        shift = torch.tensor(self.SHIFT, device=x.device).reshape(1, 3, 1, 1)
        scale = torch.tensor(self.SCALE, device=x.device).reshape(1, 3, 1, 1)
        return [f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)
                for f in self.vgg((x - shift) / scale, self.LAYERS)]

    def distance(self, fa, fb):
        """Per-image LPIPS [N] between two lists of `features`."""
        total = 0
        for x, y, w in zip(fa, fb, self.lins):
            total = total + F.conv2d((x - y).square(), w).mean(dim=[2, 3])
        return total.reshape(-1)

    def forward(self, a, b):
        return self.distance(self.features(a), self.features(b))


# --- loading the optional pretrained weights (see `ganprior.weights`) ------------------------
_loaded: dict = {}


def load_vgg16(device) -> VGG16Features | None:
    """ImageNet VGG16 features (frozen, eval), or None when the weights are not installed.
    Cached per device: the loss, LPIPS and the metrics share one copy."""
    from .. import weights
    path = weights.find("vgg16")
    if path is None:
        return None
    # keyed by the file too: a different (or a newly installed) file is loaded afresh
    key = ("vgg16", str(device), str(path))
    if key not in _loaded:
        state = weights.load_state("vgg16")
        if state is None:
            return None
        net = VGG16Features()
        net.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")})
        _loaded[key] = net.eval().requires_grad_(False).to(device)
    return _loaded[key]


def load_lpips(device) -> LPIPS | None:
    """LPIPS-VGG with the official linear weights (`lin0.model.1.weight` ... as the lpips
    package saves them), or None when either file is missing."""
    from .. import weights
    vgg_path, lin_path = weights.find("vgg16"), weights.find("lpips-vgg")
    if vgg_path is None or lin_path is None:
        return None
    key = ("lpips", str(device), str(vgg_path), str(lin_path))
    if key not in _loaded:
        vgg, lin = load_vgg16(device), weights.load_state("lpips-vgg")
        if vgg is None or lin is None:
            return None
        _check_lin_state(lin, lin_path)
        _loaded[key] = LPIPS(vgg, lin).eval().requires_grad_(False).to(device)
    return _loaded[key]


def _check_lin_state(state: dict, path) -> None:
    """The five 1x1 convs LPIPS-VGG v0.1 needs, of the right shapes; else one clear error
    (e.g. the AlexNet file `alex.pth` put in place of `vgg.pth`)."""
    for i, channels in enumerate(LPIPS.CHANNELS):
        t = state.get(f"lin{i}.model.1.weight")
        shape = None if t is None else tuple(t.shape)
        if shape != (1, channels, 1, 1):
            found = "missing" if t is None else f"of shape {list(shape)}"
            raise GanpriorError(f"{path}: not LPIPS-VGG linear layers (lin{i}.model.1.weight "
                                f"is {found}, expected [1, {channels}, 1, 1])")
