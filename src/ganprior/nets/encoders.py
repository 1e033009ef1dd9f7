"""Image -> latent encoders (the "encoder" baseline of the mGANprior paper).

A plain strided-conv network: one 3x3 stride-2 conv + LeakyReLU per halving of the resolution
down to 4x4, then a linear head that predicts the latent: z for generators without a mapping
network, W+ ([num_ws, w_dim]) for StyleGAN2.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .registry import register


@register("E", "latent")
class LatentEncoder(nn.Module):
    def __init__(self, img_resolution: int, latent_shape: tuple[int, ...], img_channels: int = 3,
                 channels: int = 32, max_channels: int = 256):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        layers, c = [nn.Conv2d(img_channels, channels, 3, padding=1), nn.LeakyReLU(0.2)], channels
        for _ in range(int(math.log2(img_resolution)) - 2):
            out = min(c * 2, max_channels)
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.GroupNorm(8, out),
                       nn.LeakyReLU(0.2)]
            c = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c * 16, math.prod(self.latent_shape))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(img).flatten(1)).reshape(-1, *self.latent_shape)


def encoder_for(G) -> LatentEncoder:
    shape = (G.num_ws, G.w_dim) if "w" in G.latent_spaces else (G.z_dim,)
    return LatentEncoder(G.img_resolution, shape, G.img_channels)


@register("E", "padinv")
class PadInvEncoder(nn.Module):
    """PadInv's encoder (Bai et al., ECCV 2022): a strided-conv backbone, a feature pyramid
    (top-down, lateral 1x1 convs), one head per W+ layer (coarse layers read the coarse level,
    fine layers the fine level, as in pSp) predicting offsets from w_avg, and a padding branch
    that predicts the padding coefficient maps ((r+2)^2 per padded resolution r) and an offset of
    the constant input. The padding branch's output convs start at zero, so an untrained encoder
    means "zero padding" and the learned constant.

    It only knows shapes: `num_ws`, `w_dim`, `pads` = {r: channels}, `const_shape`.
    """

    def __init__(self, img_resolution: int, num_ws: int, w_dim: int, pads: dict,
                 const_shape: tuple[int, int, int], img_channels: int = 3, width: int = 64,
                 max_channels: int = 256):
        super().__init__()
        pads = {int(r): int(c) for r, c in pads.items()}
        self.num_ws, self.w_dim, self.pads = num_ws, w_dim, pads
        self.const_shape = tuple(const_shape)
        # backbone: stages at res/2, res/4, ..., 4
        self.stem = nn.Sequential(nn.Conv2d(img_channels, 32, 3, padding=1), nn.LeakyReLU(0.2))
        stages, c, r = [], 32, img_resolution
        self.level_res = []
        while r > 4:
            out = min(c * 2, max_channels)
            stages.append(nn.Sequential(nn.Conv2d(c, out, 3, stride=2, padding=1),
                                        nn.GroupNorm(8, out), nn.LeakyReLU(0.2)))
            c, r = out, r // 2
            self.level_res.append(r)
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList([nn.Conv2d(s[0].out_channels, width, 1) for s in stages])
        # pyramid levels used by the W+ heads: coarse (4x4), middle, fine (finest level <= 32)
        levels = len(stages)
        self.head_level = [min(levels - 1, max(0, levels - 1 - (i * 3) // num_ws))
                           for i in range(num_ws)]
        self.w_heads = nn.ModuleList([
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, w_dim))
            for _ in range(num_ws)])
        self.pad_heads = nn.ModuleDict({str(r): nn.Conv2d(width, ch, 3, padding=1)
                                        for r, ch in pads.items()})
        self.const_head = nn.Conv2d(width, const_shape[0], 3, padding=1)
        for conv in list(self.pad_heads.values()) + [self.const_head]:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def pyramid(self, img):
        x, feats = self.stem(img), []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        out, top = [None] * len(feats), None
        for i in reversed(range(len(feats))):  # top-down: coarse to fine
            lat = self.lateral[i](feats[i])
            top = lat if top is None else lat + nn.functional.interpolate(top, size=lat.shape[-2:], mode="nearest")
            out[i] = top
        return out  # out[i] has resolution self.level_res[i]

    def _level_for(self, res):
        return min(range(len(self.level_res)), key=lambda i: abs(self.level_res[i] - res))

    def forward(self, img, w_avg):
        """-> {"w": [N, num_ws, w_dim], "const": [N, *const_shape], "pad{r}": [N, C, r+2, r+2]}"""
        p = self.pyramid(img)
        ws = torch.stack([head(p[self.head_level[i]]) for i, head in enumerate(self.w_heads)], 1)
        out = {"w": ws + w_avg.reshape(1, 1, -1)}
        size = self.const_shape[1:]
        feat = nn.functional.interpolate(p[self._level_for(size[0])], size=size, mode="bilinear",
                                         align_corners=False)
        out["const_offset"] = self.const_head(feat)
        for r, head in self.pad_heads.items():
            r = int(r)
            feat = nn.functional.interpolate(p[self._level_for(r)], size=(r + 2, r + 2),
                                             mode="bilinear", align_corners=False)
            out[f"pad{r}"] = head(feat)
        return out


def padinv_params(G, E: PadInvEncoder, x) -> dict:
    """The PadInv encoder's prediction as parameters of the padding-space method
    (inversion's PaddingSpace): "w", "const" (the learned constant plus the predicted offset)
    and "pad{r}" maps. Used at inference (encoder / hybrid inversion) and in training."""
    out = E(x, G.w_avg)
    params = {k: v for k, v in out.items() if k != "const_offset"}
    params["const"] = G.const_input.unsqueeze(0) + out["const_offset"]
    return params


def padinv_encoder_for(G, resolutions: int = 4) -> PadInvEncoder:
    pads = dict(list(G.padding_resolutions().items())[:resolutions])
    if not pads or G.const_input is None:
        raise ValueError(f"a PadInv encoder needs a StyleGAN2 generator, not {G.arch}")
    return PadInvEncoder(G.img_resolution, G.num_ws, G.w_dim, pads,
                         tuple(G.const_input.shape), G.img_channels)
