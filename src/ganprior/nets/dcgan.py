"""DCGAN / PGGAN-style generator: z -> stack of ConvTranspose+BatchNorm+ReLU blocks -> tanh.

Layout and parameter names (`main.0.weight`, `main.1.running_mean`, ...) are those of the PyTorch
DCGAN tutorial, which the embedded `dcgan-digiface64` model uses. Each block doubles the
resolution: 1 -> 4 -> 8 -> ... -> img_resolution. There is no mapping network, so the "w" space
is z itself (ws = z[:, None, :], num_ws = 1); all split points are block outputs "b4", "b8", ...
Truncation scales z towards 0 (the prior's mean), so `w_avg` is zeros.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import GeneratorBase, StyleInput
from .registry import register


@register("G", "dcgan")
class DCGANGenerator(GeneratorBase):
    arch = "dcgan"
    latent_spaces = ("z",)

    def __init__(self, z_dim=100, ngf=64, img_resolution=64, img_channels=3):
        super().__init__()
        n_blocks = int(math.log2(img_resolution)) - 1
        if img_resolution < 8 or 2 ** (n_blocks + 1) != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 8, not {img_resolution}")
        self.z_dim = self.w_dim = z_dim
        self.num_ws = 1
        self.img_resolution, self.img_channels = img_resolution, img_channels
        channels = [ngf * 2 ** (n_blocks - 2 - i) for i in range(n_blocks - 1)]
        layers, in_ch = [], z_dim
        for i, out_ch in enumerate(channels):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(in_ch, out_ch, 4, stride, pad, bias=False),
                       nn.BatchNorm2d(out_ch), nn.ReLU(True)]
            in_ch = out_ch
        layers += [nn.ConvTranspose2d(in_ch, img_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self._resolutions = [4 * 2 ** i for i in range(len(channels))]

    # `main` is [convT, BN, ReLU] * blocks + [convT, tanh]; block i ends at index 3 * i + 3.
    def _run(self, x, start, stop):
        for layer in self.main[start:stop]:
            x = layer(x)
        return x

    @property
    def w_avg(self):
        # The prior's mean, which truncation pulls towards (there is no mapping network).
        return torch.zeros(self.z_dim, device=self.device)

    def z_to_w(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        if c is not None and c.numel() > 0:
            raise ValueError("DCGAN models are unconditional")
        self._check_z(z)
        # Truncation in z space: pull towards the prior's mean (0), the analogue of w_avg.
        return (z.float() * truncation_psi).unsqueeze(1)

    def synthesize(self, ws, noise_mode="const", noise=None, const=None, paddings=None,
                   **speed_options):  # fused_modconv / channels_last mean nothing here
        self._check_ws(ws)
        self._check_overrides(ws, noise, const, paddings)
        return self._run(self._z(ws), 0, len(self.main))

    @staticmethod
    def _z(ws):
        return ws[:, 0].reshape(ws.shape[0], -1, 1, 1)  # one code; no per-layer styles

    def modulation_weights(self):
        """The first layer is the only map from z: ConvT(z as 1x1) -> 4x4 features is linear,
        features = W z with W [C*4*4, z_dim] (what SeFa uses for PGGAN)."""
        w = self.main[0].weight  # [z_dim, C, 4, 4]
        return [StyleInput("b4", 0, w.reshape(w.shape[0], -1).t())]

    @property
    def layer_names(self):
        return [f"b{r}" for r in self._resolutions]

    def feature_channels(self, layer):
        return self.main[3 * self.check_layer(layer)].out_channels

    def features_at(self, layer, ws, noise_mode="const", **unused):
        i = self.check_layer(layer)
        self._check_ws(ws)
        return self._run(self._z(ws), 0, 3 * i + 3)

    def synthesize_from(self, layer, features, ws=None, noise_mode="const", **unused):
        i = self.check_layer(layer)
        self._check_features(layer, features)
        return self._run(features, 3 * i + 3, len(self.main))

    def synthesize_with_features(self, ws, noise_mode="const", **unused):
        self._check_ws(ws)
        x, feats = self._z(ws), []
        for i in range(len(self._resolutions)):
            x = self._run(x, 3 * i, 3 * i + 3)
            feats.append(x)
        return self._run(x, 3 * len(self._resolutions), len(self.main)), feats
