"""StyleGAN2 generator and discriminator in plain PyTorch.

Parameter and buffer names are those of NVIDIA's stylegan2-ada-pytorch (`mapping.fc0.weight`,
`synthesis.b8.conv0.affine.weight`, `b4.out.bias`, ...), so that their state dicts load as they
are and the constructors take the same keyword arguments a `.pkl` stores in `_init_kwargs`.
The numerics follow the reference paths (checked against fixtures to 1e-4 in fp32).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .base import GeneratorBase, StyleInput
from .registry import register
from .ops import (bias_act, cached_derived, conv2d_resample, demod_weight_sq, downsample2d,
                  modulated_conv2d, normalize_2nd_moment, setup_filter, shared_conv_weight,
                  upsample2d)

# Keyword arguments of NVIDIA's constructors that only choose precision or memory layout.
# We accept them (so every .pkl loads) and compute in the dtype of the caller.
_PRECISION_KWARGS = {"num_fp16_res", "fp16_channels_last", "channels_last", "use_fp16",
                     "fused_modconv_default"}


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalised learning rate (weights scaled at run time)."""

    def __init__(self, in_features, out_features, bias=True, activation="linear",
                 lr_multiplier=1.0, bias_init=0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        # The gain-scaled weight (transposed) and bias are reused while the weights are fixed.
        params = (self.weight,) if self.bias is None else (self.weight, self.bias)
        wt, b = cached_derived(self, "scaled", params, self._scaled)
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, wt)
        return bias_act(x.matmul(wt), b, act=self.activation)

    def _scaled(self):
        b = self.bias * self.bias_gain if self.bias is not None else None
        return (self.weight * self.weight_gain).t(), b


class Conv2dLayer(nn.Module):
    """Conv with equalised LR, optional FIR up/downsampling, bias + activation + clamp."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="linear",
                 up=1, down=1, resample_filter=(1, 3, 3, 1), conv_clamp=None, trainable=True,
                 **unused):
        super().__init__()
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = 1.0 if activation == "linear" else math.sqrt(2)
        weight = torch.randn(out_channels, in_channels, kernel_size, kernel_size)
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", torch.zeros(out_channels) if bias else None)

    def forward(self, x, gain=1.0):
        w = self.weight * self.weight_gain
        # NVIDIA's layers ask for unflipped kernels when upsampling (transposed conv); torch's
        # conv_transpose2d already uses them that way, so no flip is needed on either path.
        x = conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class MappingNetwork(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None,
                 layer_features=None, activation="lrelu", lr_multiplier=0.01, w_avg_beta=0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1],
                                                        activation=activation,
                                                        lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None,
                update_w_avg=False):
        parts, dtype = [], next(self.parameters()).dtype  # float32 as NVIDIA's, float64 if cast
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.to(dtype)))
        if self.c_dim > 0:
            parts.append(normalize_2nd_moment(self.embed(c.to(dtype))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_w_avg and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x = torch.cat([self.w_avg.lerp(x[:, :cut], truncation_psi), x[:, cut:]], dim=1)
        return x


def pad_with_ring(x, coefficients):
    """Pad x [N, C, r, r] by one pixel with the border ring of coefficients [N, C, r+2, r+2]
    (PadInv's padding space; all-zero coefficients = zero padding)."""
    ring = torch.ones(coefficients.shape[-2:], device=x.device)
    ring[1:-1, 1:-1] = 0
    return nn.functional.pad(x, [1, 1, 1, 1]) + coefficients * ring


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling x2) + noise + bias + lrelu + clamp."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1,
                 use_noise=True, activation="lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp=None, **unused):
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = 1.0 if activation == "linear" else math.sqrt(2)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x, w, noise_mode="random", fused_modconv=True, gain=1.0, noise_map=None,
                pad_map=None):
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution,
                                device=x.device, dtype=x.dtype) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        elif noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be random, const or none, not {noise_mode!r}")
        if noise_map is not None:  # synthesize(noise=...): this map instead of the stored one
            noise = noise_map * self.noise_strength
        padding = self.padding
        if pad_map is not None:  # synthesize(paddings=...): the map's border ring pads x
            x, padding = pad_with_ring(x, pad_map), 0
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        weight = self.weight
        # Weight-only work, reused between inference/inversion calls (see ops.cached_derived).
        wsq = cached_derived(self, "weight_sq", (weight,), lambda: demod_weight_sq(weight))
        shared = None
        if not fused_modconv and x.is_contiguous(memory_format=torch.channels_last):
            shared = cached_derived(self, "weight_cl", (weight,),
                                    lambda: shared_conv_weight(weight, self.up, True))
        return modulated_conv2d(x, weight, styles, noise=noise, up=self.up,
                                padding=padding, resample_filter=self.resample_filter,
                                fused=fused_modconv, bias=self.bias, act=self.activation,
                                gain=self.act_gain * gain, clamp=clamp, weight_sq=wsq,
                                shared_weight=shared)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation."""

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None,
                 **unused):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x, w, fused_modconv=True):
        styles = self.affine(w) * self.weight_gain
        # (on channels-last x the 1x1 conv is a batched matmul: no weight layout to cache)
        return modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused_modconv,
                                bias=self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last,
                 architecture="skip", resample_filter=(1, 3, 3, 1), conv_clamp=None,
                 **layer_kwargs):
        super().__init__()
        assert architecture in ("orig", "skip", "resnet"), architecture
        self.in_channels, self.resolution = in_channels, resolution
        self.is_last, self.architecture = is_last, architecture
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution,
                                    conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    @property
    def has_rgb(self) -> bool:
        return self.is_last or self.architecture == "skip"

    def forward(self, x, img, ws, noise_mode="random", fused_modconv=True, noise=None, pad=None):
        """ws: [N, num_conv + num_torgb, w_dim]; noise: {"b{r}.conv0"/"b{r}.conv1": map} and
        pad: the padding coefficients of conv1 (see StyleGAN2Generator.synthesize)."""
        w = ws.unbind(dim=1)
        n0, n1 = ((noise or {}).get(f"b{self.resolution}.{k}") for k in ("conv0", "conv1"))
        if self.in_channels == 0:
            if x is None:
                x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, w[0], noise_mode, fused_modconv, noise_map=n1, pad_map=pad)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, w[0], noise_mode, fused_modconv, noise_map=n0)
            x = self.conv1(x, w[1], noise_mode, fused_modconv, gain=np.sqrt(0.5), noise_map=n1,
                           pad_map=pad)
            x = y + x
        else:
            x = self.conv0(x, w[0], noise_mode, fused_modconv, noise_map=n0)
            x = self.conv1(x, w[1], noise_mode, fused_modconv, noise_map=n1, pad_map=pad)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.has_rgb:
            y = self.torgb(x, w[self.num_conv], fused_modconv)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512,
                 **block_kwargs):
        super().__init__()
        log2 = int(np.log2(img_resolution))
        if img_resolution < 4 or 2 ** log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4, not {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        block_kwargs = {k: v for k, v in block_kwargs.items() if k not in _PRECISION_KWARGS}
        self.num_ws = 0
        self.w_spans = []  # (first ws index, count) per block: a block's torgb and the next
        for res in self.block_resolutions:  # block's conv0 share one w
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res,
                                   img_channels, is_last=(res == img_resolution), **block_kwargs)
            self.w_spans.append((self.num_ws, block.num_conv + block.num_torgb))
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)
        # plain list (not registered twice): names stay b4, b8, ... as in NVIDIA's state dicts
        self._block_list = [getattr(self, f"b{r}") for r in self.block_resolutions]

    def blocks(self):
        return self._block_list

    def block_ws(self, ws, i):
        return ws.narrow(1, *self.w_spans[i])

    def run_blocks(self, ws, x=None, img=None, start=0, stop=None, noise_mode="random",
                   fused_modconv=None, channels_last=None, collect=None, noise=None,
                   paddings=None):
        """Run blocks [start, stop); optionally append each block's x to `collect`.

        `x` replaces the input of block `start` (for the first block: the learned constant);
        `noise` and `paddings` are StyleGAN2Generator.synthesize's overrides (checked there).

        Speed choices (results agree to float rounding, see BENCHMARKS.md): on CPU, shared
        convs are fastest at every batch size measured, on channels-last tensors when no
        gradients are needed (oneDNN's transposed conv is ~3x faster channels-last) but not
        under autograd (its backward is slower: 12 vs 17 it/s at 64 px); elsewhere, NVIDIA's
        choice of one grouped conv per layer (fused_modconv) at batch 1.
        """
        ws = ws.to(next(self.parameters()).dtype)  # float32 as NVIDIA's, float64 if cast
        on_cpu = ws.device.type == "cpu"
        if fused_modconv is None:
            fused_modconv = ws.shape[0] == 1 and not on_cpu
        if channels_last is None:
            channels_last = on_cpu and not fused_modconv and not torch.is_grad_enabled()
        stop = len(self.block_resolutions) if stop is None else stop
        if channels_last and x is not None:
            x = x.contiguous(memory_format=torch.channels_last)
        for i in range(start, stop):
            block = self._block_list[i]
            if channels_last and block.in_channels == 0 and x is None:
                x = block.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1).contiguous(
                    memory_format=torch.channels_last)
            x, img = block(x, img, self.block_ws(ws, i), noise_mode, fused_modconv, noise=noise,
                           pad=(paddings or {}).get(block.resolution))
            if collect is not None:
                collect.append(x)
        return x, img

    def forward(self, ws, noise_mode="random", fused_modconv=None, channels_last=None):
        return self.run_blocks(ws, noise_mode=noise_mode, fused_modconv=fused_modconv,
                               channels_last=channels_last)[1]

    # How far (in its own pixels) a block's output reaches into the crop of its input for
    # the box to come out exact: 3 is the least that does (conv1's 3x3 and conv0's
    # upsampling 3x3 + 4-tap filter; measured for skip and resnet), plus one for slack.
    BOX_MARGIN = 4

    def activations_in_box(self, ws, index, box, noise_mode="const"):
        """Block `index`'s activations inside box (y0, y1, x0, x1) of its pixels, computed
        from the smallest crops of the earlier blocks' outputs that determine them (plus
        BOX_MARGIN); the blocks before the first crop smaller than its map run in full.
        Exact up to float rounding; noise "const" or "none" (random noise cannot be cropped:
        whole maps then)."""
        res = self.block_resolutions
        boxes = {index: tuple(int(v) for v in box)}
        for b in range(index, 0, -1):  # the part of block b-1's output that block b reads
            y0, y1, x0, x1 = boxes[b]
            n, m = res[b - 1], self.BOX_MARGIN
            boxes[b - 1] = (max(0, (y0 - m) // 2), min(n, (y1 + m + 1) // 2 + 1),
                            max(0, (x0 - m) // 2), min(n, (x1 + m + 1) // 2 + 1))
        first = next((b for b in range(1, index + 1)
                      if (boxes[b - 1][1] - boxes[b - 1][0]) * (boxes[b - 1][3] - boxes[b - 1][2])
                      < res[b - 1] ** 2), None)
        if noise_mode == "random" or first is None:
            x = self.run_blocks(ws, stop=index + 1, noise_mode=noise_mode)[0]
            y0, y1, x0, x1 = boxes[index]
            return x[:, :, y0:y1, x0:x1]
        # On CPU the blocks run channels-last here, with autograd too: on these small crops
        # oneDNN's channels-last convs and their backward are 15-20 % faster (measured at 64
        # and 256 px); full maps under autograd gain nothing (run_blocks' default).
        cl = ws.device.type == "cpu"
        x = self.run_blocks(ws, stop=first, noise_mode=noise_mode, channels_last=cl)[0]
        oy = ox = 0  # origin of x in its block's pixels
        for b in range(first, index + 1):
            y0, y1, x0, x1 = boxes[b - 1]
            x = x[:, :, y0 - oy:y1 - oy, x0 - ox:x1 - ox]
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            block = self._block_list[b]
            oy, ox, h, w = 2 * y0, 2 * x0, 2 * (y1 - y0), 2 * (x1 - x0)
            noise = None
            if noise_mode == "const":
                noise = {f"b{res[b]}.{k}": getattr(block, k).noise_const[oy:oy + h, ox:ox + w]
                         .expand(ws.shape[0], 1, h, w)
                         for k in ("conv0", "conv1") if getattr(block, k).use_noise}
            x, _ = block(x, None, self.block_ws(ws, b), noise_mode,
                         fused_modconv=ws.shape[0] == 1 and ws.device.type != "cpu", noise=noise)
        y0, y1, x0, x1 = boxes[index]
        return x[:, :, y0 - oy:y1 - oy, x0 - ox:x1 - ox]


_SYNTHESIS_OPTIONS = (SynthesisNetwork, SynthesisBlock, SynthesisLayer, ToRGBLayer,
                      set(_PRECISION_KWARGS))
_G_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs",
           "synthesis_kwargs")


def _generator_config(args: dict) -> dict:
    """Flat synthesis options (the stylegan3 repo's way) folded into synthesis_kwargs
    (stylegan2-ada's), so both give the same config."""
    extra = {k: args.pop(k) for k in list(args) if k not in _G_ARGS}
    args["synthesis_kwargs"] = dict(args["synthesis_kwargs"] or {}, **extra)
    args["mapping_kwargs"] = dict(args["mapping_kwargs"] or {})
    return args


@register("G", "stylegan2", normalise=_generator_config,
          nested={"mapping_kwargs": (MappingNetwork,), "synthesis_kwargs": _SYNTHESIS_OPTIONS,
                  "**": _SYNTHESIS_OPTIONS})
class StyleGAN2Generator(GeneratorBase):
    """NVIDIA-compatible StyleGAN2 generator implementing the ganprior generator interface."""

    arch = "stylegan2"
    latent_spaces = ("z", "w", "w+")

    def __init__(self, z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                 mapping_kwargs=None, synthesis_kwargs=None, **extra_synthesis_kwargs):
        super().__init__()
        # The stylegan3 repo passes synthesis options flat; stylegan2-ada nests them.
        synthesis_kwargs = dict(synthesis_kwargs or {}, **extra_synthesis_kwargs)
        mapping_kwargs = dict(mapping_kwargs or {})
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **mapping_kwargs)

    def z_to_w(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        self._check_z(z, c)
        return self.mapping(z, c, truncation_psi=truncation_psi,
                            truncation_cutoff=truncation_cutoff)

    def synthesize(self, ws, noise_mode="const", noise=None, const=None, paddings=None,
                   fused_modconv=None, channels_last=None):
        """See GeneratorBase.synthesize for the overrides `noise`, `const`, `paddings`."""
        self._check_ws(ws)
        self._check_overrides(ws, noise, const, paddings)
        return self.synthesis.run_blocks(ws, x=const, noise_mode=noise_mode,
                                         fused_modconv=fused_modconv, channels_last=channels_last,
                                         noise=noise, paddings=paddings)[1]

    @property
    def w_avg(self):
        return self.mapping.w_avg

    @property
    def const_input(self):
        return self.synthesis.b4.const

    def noise_layers(self):
        return {name: m.resolution for name, m in self.synthesis.named_modules()
                if isinstance(m, SynthesisLayer) and m.use_noise}

    def padding_resolutions(self):
        # conv1 is each block's non-upsampling 3x3 conv (the only conv of b4)
        return {r: getattr(self.synthesis, f"b{r}").conv1.weight.shape[1]
                for r in self.synthesis.block_resolutions}

    def modulation_weights(self):
        """Per style input: affine.weight x affine.weight_gain (and x torgb.weight_gain for
        toRGB, which scales its styles), i.e. styles = weight @ w + bias, as in the forward."""
        out = []
        for block, (first, _) in zip(self.synthesis.blocks(), self.synthesis.w_spans):
            layers = [k for k in ("conv0", "conv1") if hasattr(block, k)]
            layers += ["torgb"] if block.has_rgb else []
            for k, name in enumerate(layers):
                layer = getattr(block, name)
                weight = layer.affine.weight * layer.affine.weight_gain
                if name == "torgb":
                    weight = weight * layer.weight_gain
                out.append(StyleInput(f"b{block.resolution}.{name}", first + k, weight))
        return out

    # Split points are block outputs "b4" ... up to the block before the image.
    # For architectures that carry a running RGB image (skip), the features are the block
    # activations with that image appended as the last img_channels channels, so that a
    # split-and-resume is exact and a per-channel composition (mGANprior) covers both.
    @property
    def layer_names(self):
        return [f"b{r}" for r in self.synthesis.block_resolutions[:-1]]

    def feature_channels(self, layer):
        block = getattr(self.synthesis, layer)
        self.check_layer(layer)
        return block.conv1.weight.shape[0] + (self.img_channels if block.has_rgb else 0)

    def features_at(self, layer, ws, noise_mode="const", fused_modconv=None):
        i = self.check_layer(layer)
        self._check_ws(ws)
        x, img = self.synthesis.run_blocks(ws, stop=i + 1, noise_mode=noise_mode,
                                           fused_modconv=fused_modconv)
        return x if img is None else torch.cat([x, img], dim=1)

    def synthesize_from(self, layer, features, ws, noise_mode="const", fused_modconv=None):
        i = self.check_layer(layer)
        self._check_ws(ws)
        self._check_features(layer, features, ws)
        block = self.synthesis.blocks()[i]
        x, img = features, None
        if block.has_rgb:
            x, img = features[:, :-self.img_channels], features[:, -self.img_channels:]
        return self.synthesis.run_blocks(ws, x, img, start=i + 1, noise_mode=noise_mode,
                                         fused_modconv=fused_modconv)[1]

    def features_in_box(self, layer, ws, box, noise_mode="const"):
        """See GeneratorBase.features_in_box: here from crops (SynthesisNetwork
        .activations_in_box), any block including the last one."""
        self._check_ws(ws)
        names = [f"b{r}" for r in self.synthesis.block_resolutions]
        if layer not in names:
            raise ValueError(f"no block {layer!r}; this model has {', '.join(names)}")
        r = int(layer[1:])
        y0, y1, x0, x1 = (int(v) for v in box)
        if not (0 <= y0 < y1 <= r and 0 <= x0 < x1 <= r):
            raise ValueError(f"box {tuple(box)} is not inside the {r}x{r} map of {layer}")
        return self.synthesis.activations_in_box(ws, names.index(layer), (y0, y1, x0, x1),
                                                 noise_mode)

    def synthesize_with_features(self, ws, noise_mode="const", fused_modconv=None):
        self._check_ws(ws)
        feats = []
        img = self.synthesis.run_blocks(ws, noise_mode=noise_mode, fused_modconv=fused_modconv,
                                        collect=feats)[1]
        return img, feats


# ----------------------------------------------------------------------------------------------
# Discriminator


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels,
                 first_layer_idx=0, architecture="resnet", activation="lrelu",
                 resample_filter=(1, 3, 3, 1), conv_clamp=None, freeze_layers=0, **unused):
        super().__init__()
        self.in_channels, self.architecture = in_channels, architecture
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_layers = 0

        def next_trainable():
            self.num_layers += 1
            return first_layer_idx + self.num_layers - 1 >= freeze_layers

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation=activation,
                                       trainable=next_trainable(), conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation=activation,
                                 trainable=next_trainable(), conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation=activation, down=2,
                                 trainable=next_trainable(), resample_filter=resample_filter,
                                 conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2,
                                    trainable=next_trainable(), resample_filter=resample_filter)

    def forward(self, x, img):
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img.float())
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class MinibatchStdLayer(nn.Module):
    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, in_channels, cmap_dim, resolution, img_channels, architecture="resnet",
                 mbstd_group_size=4, mbstd_num_channels=1, activation="lrelu", conv_clamp=None):
        super().__init__()
        self.cmap_dim, self.architecture = cmap_dim, architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, 1, activation=activation)
        self.mbstd = (MinibatchStdLayer(mbstd_group_size, mbstd_num_channels)
                      if mbstd_num_channels > 0 else None)
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3,
                                activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels,
                                      activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap):
        if self.architecture == "skip":
            x = x + self.fromrgb(img.float())
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x


def _discriminator_config(args: dict) -> dict:
    for k in ("block_kwargs", "mapping_kwargs", "epilogue_kwargs"):
        args[k] = dict(args[k] or {})
    return args


@register("D", "stylegan2", normalise=_discriminator_config,
          nested={"block_kwargs": (DiscriminatorBlock, set(_PRECISION_KWARGS)),
                  "mapping_kwargs": (MappingNetwork,), "epilogue_kwargs": (DiscriminatorEpilogue,)})
class StyleGAN2Discriminator(nn.Module):
    def __init__(self, c_dim, img_resolution, img_channels, architecture="resnet",
                 channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None,
                 cmap_dim=None, block_kwargs=None, mapping_kwargs=None, epilogue_kwargs=None):
        super().__init__()
        self.c_dim, self.img_resolution = c_dim, img_resolution
        log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions + [4]}
        cmap_dim = channels[4] if cmap_dim is None else cmap_dim
        cmap_dim = 0 if c_dim == 0 else cmap_dim
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        block_kwargs = {k: v for k, v in (block_kwargs or {}).items()
                        if k not in _PRECISION_KWARGS}
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res],
                                       channels[res // 2], res, first_layer_idx=layer_idx,
                                       **block_kwargs, **common)
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim, 4, **(epilogue_kwargs or {}),
                                        **common)

    def forward(self, img, c=None):
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)

    def block_features(self, img) -> list[torch.Tensor]:
        """The output of every block, fine to coarse (the epilogue left out: its minibatch
        std makes an image's features depend on the rest of the batch). DGP's feature loss."""
        x, feats = None, []
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img)
            feats.append(x)
        return feats
