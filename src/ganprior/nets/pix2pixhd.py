"""pix2pixHD (Wang et al. 2018): label map -> image with a coarse-to-fine generator,
multi-scale PatchGAN discriminators and an instance-wise feature encoder.

    input  = make_input(label, inst, feat, label_nc=...)   one-hot labels | boundary | features
    G      = GlobalGenerator(input_nc)                      or LocalEnhancer(input_nc)
    image  = G(input)                                       [N, 3, H, W] in [-1, 1]
    D      = MultiscaleDiscriminator(input_nc_D)            D(cat(one-hot|boundary, image))
                                                            -> per scale, every layer's output
    E      = FeatureEncoder()                               E(image, inst): features averaged
                                                            within each instance

These are not latent generators (no z, no W): they do not implement `nets.base.GeneratorBase`
and nothing built on that interface (inversion, editing) uses them. H and W must be multiples
of `G.size_multiple` (2^n_downsampling, times 2^n_local_enhancers for the enhancer).
The classes' defaults are the paper's sizes; docs/pix2pixhd.md lists them and the CPU sizes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register

MAX_DOWNSAMPLING = 8    # 256x smaller than the input: nothing left to see at any real size
MAX_BLOCKS = 64
MAX_ENHANCERS = 4
MAX_SCALES = 8


def _check_counts(**counts):
    """Refuse counts out of range before building anything (configs come from files)."""
    limits = {"n_downsampling": (0, MAX_DOWNSAMPLING), "n_blocks": (0, MAX_BLOCKS),
              "n_blocks_global": (0, MAX_BLOCKS), "n_blocks_local": (0, MAX_BLOCKS),
              "n_downsample_global": (0, MAX_DOWNSAMPLING),
              "n_local_enhancers": (1, MAX_ENHANCERS), "num_D": (1, MAX_SCALES),
              "n_layers": (1, MAX_DOWNSAMPLING)}
    for name, value in counts.items():
        lo, hi = limits.get(name, (1, 1 << 16))  # channel counts
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"pix2pixHD: {name} = {value!r} must be an integer in {lo}..{hi}")


def _init_weights(net: nn.Module) -> nn.Module:
    """N(0, 0.02) conv weights, as the official code initialises them."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
    return net


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """The input pyramid's step: 3x3 average, stride 2, padding 1, padded pixels not counted."""
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


def _c7s1(cin: int, cout: int) -> list[nn.Module]:
    """7x7 conv, stride 1, reflection padding, instance norm, ReLU."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(cin, cout, 7), nn.InstanceNorm2d(cout), nn.ReLU(True)]


def _down(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.InstanceNorm2d(cout), nn.ReLU(True)]


def _up(cin: int, cout: int) -> list[nn.Module]:
    # Transposed conv as the official code (not resize + conv): exact 2x with output_padding 1.
    return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(cout), nn.ReLU(True)]


def _output(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(cin, cout, 7), nn.Tanh())


class ResidualBlock(nn.Module):
    """x + (pad, conv3, norm, ReLU, pad, conv3, norm)(x), reflection padding."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x):
        return x + self.body(x)


def _check_size(x: torch.Tensor, channels: int, multiple: int, what: str):
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{what} takes [N, {channels}, H, W], not {list(x.shape)}")
    h, w = x.shape[2:]
    if h % multiple or w % multiple:
        raise ValueError(f"{what}: H and W must be multiples of {multiple}, not {h}x{w}")


@register("G", "pix2pixhd-global")
class GlobalGenerator(nn.Module):
    """G1: c7s1-ngf, n_downsampling stride-2 convs (channels doubling), n_blocks residual
    blocks, as many transposed convs back, c7s1-output_nc with tanh. `features(x)` is
    everything before the output layer (what a local enhancer adds to its own features)."""

    def __init__(self, input_nc: int = 36, output_nc: int = 3, ngf: int = 64,
                 n_downsampling: int = 4, n_blocks: int = 9):
        super().__init__()
        _check_counts(input_nc=input_nc, output_nc=output_nc, ngf=ngf,
                      n_downsampling=n_downsampling, n_blocks=n_blocks)
        self.input_nc, self.output_nc = input_nc, output_nc
        self.size_multiple = 2 ** n_downsampling
        self.feature_nc = ngf
        layers = _c7s1(input_nc, ngf)
        for i in range(n_downsampling):
            layers += _down(ngf * 2 ** i, ngf * 2 ** (i + 1))
        layers += [ResidualBlock(ngf * 2 ** n_downsampling) for _ in range(n_blocks)]
        for i in range(n_downsampling, 0, -1):
            layers += _up(ngf * 2 ** i, ngf * 2 ** (i - 1))
        self.body = nn.Sequential(*layers)
        self.head = _output(ngf, output_nc)
        _init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, ngf, H, W]: the activations the output layer turns into the image."""
        _check_size(x, self.input_nc, self.size_multiple, "GlobalGenerator")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _Enhancer(nn.Module):
    """One G2 stage: c7s1-c, down to 2c, residual blocks at 2c (after the coarser stage's
    features are added), up to c."""

    def __init__(self, input_nc: int, channels: int, n_blocks: int):
        super().__init__()
        self.front = nn.Sequential(*_c7s1(input_nc, channels), *_down(channels, 2 * channels))
        self.back = nn.Sequential(*[ResidualBlock(2 * channels) for _ in range(n_blocks)],
                                  *_up(2 * channels, channels))

    def forward(self, x, coarser):
        return self.back(self.front(x) + coarser)


@register("G", "pix2pixhd-local")
class LocalEnhancer(nn.Module):
    """G = G2 stages on top of G1: the global generator (ngf * 2^n_local_enhancers filters)
    runs on the input downsampled n_local_enhancers times; each enhancer stage, from coarse to
    fine, adds the previous stage's features to its own downsampled features of the input at
    its scale. `global_net` is a GlobalGenerator whose output layer is not used (so weights of
    a trained G1 load into it with `load_global`)."""

    def __init__(self, input_nc: int = 36, output_nc: int = 3, ngf: int = 32,
                 n_downsample_global: int = 4, n_blocks_global: int = 9,
                 n_local_enhancers: int = 1, n_blocks_local: int = 3):
        super().__init__()
        _check_counts(input_nc=input_nc, output_nc=output_nc, ngf=ngf,
                      n_downsample_global=n_downsample_global, n_blocks_global=n_blocks_global,
                      n_local_enhancers=n_local_enhancers, n_blocks_local=n_blocks_local)
        self.input_nc, self.output_nc = input_nc, output_nc
        self.n_local_enhancers = n_local_enhancers
        self.size_multiple = 2 ** (n_downsample_global + n_local_enhancers)
        self.feature_nc = ngf
        glob = GlobalGenerator(input_nc, output_nc, ngf * 2 ** n_local_enhancers,
                               n_downsample_global, n_blocks_global)
        self.global_body = glob.body  # its head is dropped: the finest enhancer makes the image
        # enhancers[0] is the coarsest stage (right above the global net)
        self.enhancers = nn.ModuleList(
            _Enhancer(input_nc, ngf * 2 ** (n_local_enhancers - n), n_blocks_local)
            for n in range(1, n_local_enhancers + 1))
        self.head = _output(ngf, output_nc)
        _init_weights(self)

    def global_parameters(self):
        """The G1 parameters (`--niter-fix-global` trains only the others at first)."""
        return self.global_body.parameters()

    def load_global(self, G: GlobalGenerator):
        """Start from a trained global generator of the matching size (its head is unused)."""
        try:
            self.global_body.load_state_dict(G.body.state_dict())
        except RuntimeError as e:
            raise ValueError(f"load_global: the global generator {G.config} does not fit this "
                             f"enhancer's (ngf * 2^n_local_enhancers filters, same input and "
                             f"depth): {str(e).splitlines()[1].strip()}") from None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, self.input_nc, self.size_multiple, "LocalEnhancer")
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(downsample2x(pyramid[-1]))
        out = self.global_body(pyramid[-1])
        for stage, level in zip(self.enhancers, reversed(pyramid[:-1])):
            out = stage(level, out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN (n_layers 3): conv4 s2 + LeakyReLU, n_layers-1 x (conv4 s2, norm,
    LeakyReLU) doubling to at most 512 channels, conv4 s1 (norm, LeakyReLU), conv4 s1 -> 1.
    forward returns every stage's output; the last is the real/fake map."""

    def __init__(self, input_nc: int, ndf: int, n_layers: int):
        super().__init__()
        def conv(cin, cout, stride):
            return nn.Conv2d(cin, cout, 4, stride=stride, padding=2)
        stages = [nn.Sequential(conv(input_nc, ndf, 2), nn.LeakyReLU(0.2, True))]
        c = ndf
        for n in range(1, n_layers + 1):
            nxt = min(c * 2, 512)
            stride = 2 if n < n_layers else 1
            stages.append(nn.Sequential(conv(c, nxt, stride), nn.InstanceNorm2d(nxt),
                                        nn.LeakyReLU(0.2, True)))
            c = nxt
        stages.append(nn.Sequential(conv(c, 1, 1)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


@register("D", "pix2pixhd")
class MultiscaleDiscriminator(nn.Module):
    """num_D PatchGANs of the same design; scale i sees the input average-pooled i times.
    forward -> [scale][layer]: n_layers + 2 tensors per scale, the last one the prediction,
    the others the features of the feature-matching loss."""

    def __init__(self, input_nc: int = 39, ndf: int = 64, n_layers: int = 3, num_D: int = 3):
        super().__init__()
        _check_counts(input_nc=input_nc, ndf=ndf, n_layers=n_layers, num_D=num_D)
        self.input_nc, self.n_layers, self.num_D = input_nc, n_layers, num_D
        self.scales = nn.ModuleList(PatchDiscriminator(input_nc, ndf, n_layers)
                                    for _ in range(num_D))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        if x.ndim != 4 or x.shape[1] != self.input_nc:
            raise ValueError(f"MultiscaleDiscriminator takes [N, {self.input_nc}, H, W], "
                             f"not {list(x.shape)}")
        out = []
        for i, D in enumerate(self.scales):
            if i:
                x = downsample2x(x)
            out.append(D(x))
        return out


@register("E", "pix2pixhd")
class FeatureEncoder(nn.Module):
    """The instance feature encoder: c7s1-ngf, n_downsampling down, as many up (no residual
    blocks), c7s1-output_nc with tanh; then every instance's pixels get the instance's mean
    feature (`instance_average`). output_nc is the feature length (the paper: 3)."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 16,
                 n_downsampling: int = 4):
        super().__init__()
        _check_counts(input_nc=input_nc, output_nc=output_nc, ngf=ngf,
                      n_downsampling=n_downsampling)
        self.input_nc, self.output_nc = input_nc, output_nc
        self.size_multiple = 2 ** n_downsampling
        layers = _c7s1(input_nc, ngf)
        for i in range(n_downsampling):
            layers += _down(ngf * 2 ** i, ngf * 2 ** (i + 1))
        for i in range(n_downsampling, 0, -1):
            layers += _up(ngf * 2 ** i, ngf * 2 ** (i - 1))
        self.body = nn.Sequential(*layers, *_output(ngf, output_nc))
        _init_weights(self)

    def pixel_features(self, image: torch.Tensor) -> torch.Tensor:
        """[N, output_nc, H, W] before the instance pooling."""
        _check_size(image, self.input_nc, self.size_multiple, "FeatureEncoder")
        return self.body(image)

    def forward(self, image: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
        return instance_average(self.pixel_features(image), inst)


# --- input assembly ------------------------------------------------------------------------

def _as_map(t: torch.Tensor, what: str) -> torch.Tensor:
    """[N, H, W] or [N, 1, H, W] -> [N, 1, H, W]."""
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"{what} must be [N, 1, H, W] or [N, H, W], not {list(t.shape)}")
    return t


def instance_boundaries(inst: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] float: 1 where a pixel's instance id differs from one of its 4 neighbours
    (both pixels of such a pair are marked), 0 elsewhere."""
    t = _as_map(inst, "the instance map")
    edge = torch.zeros(t.shape, dtype=torch.bool, device=t.device)
    dx = t[..., :, 1:] != t[..., :, :-1]
    dy = t[..., 1:, :] != t[..., :-1, :]
    edge[..., :, 1:] |= dx
    edge[..., :, :-1] |= dx
    edge[..., 1:, :] |= dy
    edge[..., :-1, :] |= dy
    return edge.float()


def instance_average(features: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
    """Every pixel's features replaced by the mean over its instance (same id, same image),
    in one pass for the whole batch: ids are renumbered 0..U-1, made distinct per image
    (+ image index * U), summed with index_add and counted with bincount. Sums are taken in
    float32 (a half-precision sum over a large instance would overflow under AMP).
    Differentiable with respect to `features`."""
    t = _as_map(inst, "the instance map")
    n, c, h, w = features.shape
    if t.shape[0] != n or t.shape[2:] != features.shape[2:]:
        raise ValueError(f"instance map {list(t.shape)} does not match features "
                         f"{list(features.shape)}")
    if features.numel() == 0:
        return features.clone()
    _, ids = torch.unique(t.reshape(n, h * w), return_inverse=True)
    keys = ids + torch.arange(n, device=ids.device)[:, None] * (int(ids.max()) + 1)
    _, segment = torch.unique(keys.reshape(-1), return_inverse=True)
    count = int(segment.max()) + 1
    flat = features.float().permute(1, 0, 2, 3).reshape(c, n * h * w)
    sums = flat.new_zeros(c, count).index_add_(1, segment, flat)
    means = sums / torch.bincount(segment, minlength=count).to(flat.dtype)
    return means[:, segment].reshape(c, n, h, w).permute(1, 0, 2, 3).to(features.dtype)


def _check_labels(label: torch.Tensor, label_nc: int) -> torch.Tensor:
    """Integer class ids as long, or a ValueError naming the first bad value (instead of the
    device-side assert an out-of-range one-hot index gives on CUDA)."""
    if label.is_floating_point():
        bad = label != label.round()
        if bool(bad.any()):
            raise ValueError(f"label map: value {float(label[bad][0]):g} is not a class id "
                             f"(label maps hold integers 0..{label_nc - 1})")
    ids = label.long()
    if ids.numel() == 0:
        return ids
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= label_nc:
        raise ValueError(f"label map: value {lo if lo < 0 else hi} is outside 0..{label_nc - 1} "
                         f"(label_nc {label_nc})")
    return ids


def _matching(t: torch.Tensor, n: int, size: tuple, what: str) -> torch.Tensor:
    if t.shape[0] != n or tuple(t.shape[2:]) != size:
        raise ValueError(f"the {what} is {t.shape[0]} x {t.shape[2]}x{t.shape[3]} (N x HxW) but "
                         f"the labels are {n} x {size[0]}x{size[1]}")
    return t


def make_input(label: torch.Tensor, inst: torch.Tensor | None = None,
               feat: torch.Tensor | None = None, *, label_nc: int) -> torch.Tensor:
    """The generator's input: one-hot labels (label_nc channels) | instance boundaries (1
    channel, when `inst` is given) | instance features (when `feat` is given), concatenated.

    label: [N, 1, H, W] (or [N, H, W]) class ids in 0..label_nc-1; with label_nc 0 the input is
    an RGB image [N, 3, H, W] in [-1, 1] used as is (pix2pixHD's `--label_nc 0`).
    The discriminator's condition is the same without `feat`.
    """
    if isinstance(label_nc, bool) or not isinstance(label_nc, int) or label_nc < 0:
        raise ValueError(f"label_nc must be a non-negative integer, not {label_nc!r}")
    if label_nc == 0:
        if label.ndim != 4:
            raise ValueError(f"with label_nc 0 the input is an image [N, C, H, W], not "
                             f"{list(label.shape)}")
        parts = [label.float()]
    else:
        ids = _check_labels(_as_map(label, "the label map"), label_nc)
        one_hot = torch.zeros(ids.shape[0], label_nc, *ids.shape[2:], device=ids.device)
        parts = [one_hot.scatter_(1, ids, 1.0)]
    n, size = parts[0].shape[0], tuple(parts[0].shape[2:])
    if inst is not None:
        parts.append(_matching(instance_boundaries(inst), n, size, "instance map"))
    if feat is not None:
        if feat.ndim != 4:
            raise ValueError(f"features must be [N, F, H, W], not {list(feat.shape)}")
        parts.append(_matching(feat.float(), n, size, "feature map"))
    return torch.cat(parts, 1)


def generator_input_nc(label_nc: int, instance: bool = True, feat_num: int = 0,
                       image_nc: int = 3) -> int:
    """Channels of make_input's output (label_nc 0: an image of image_nc channels)."""
    return (label_nc or image_nc) + int(instance) + feat_num


def discriminator_input_nc(label_nc: int, instance: bool = True, output_nc: int = 3,
                           image_nc: int = 3) -> int:
    """The discriminator sees the condition (labels | boundaries) and the image."""
    return generator_input_nc(label_nc, instance, 0, image_nc) + output_nc
