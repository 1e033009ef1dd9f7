"""Image -> latent encoders (the "encoder" baseline of the mGANprior paper).

A plain strided-conv network: one 3x3 stride-2 conv + LeakyReLU per halving of the resolution
down to 4x4, then a linear head that predicts the latent: z for generators without a mapping
network, W+ ([num_ws, w_dim]) for StyleGAN2.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class LatentEncoder(nn.Module):
    def __init__(self, img_resolution: int, latent_shape: tuple[int, ...], img_channels: int = 3,
                 channels: int = 32, max_channels: int = 256):
        super().__init__()
        self.config = dict(img_resolution=img_resolution, latent_shape=list(latent_shape),
                           img_channels=img_channels, channels=channels, max_channels=max_channels)
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
