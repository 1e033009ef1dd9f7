"""The one generator interface that inversion, restoration and editing talk to.

Every generator maps latents to images in three steps:

    z --z_to_w--> ws [N, num_ws, w_dim] --synthesize--> image [N, C, H, W] in [-1, 1]

and its synthesis can be split at a named layer (`layer_names`, e.g. "b16" = the output of the
block at 16x16 resolution):

    features = G.features_at("b16", ws)          # G1 in the mGANprior paper
    image    = G.synthesize_from("b16", features, ws)  # G2

Generators without a mapping network (DCGAN/PGGAN family) use the identity: ws = z[:, None, :]
with num_ws = 1 and w_dim = z_dim.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class GeneratorBase(nn.Module):
    z_dim: int
    c_dim: int = 0
    w_dim: int
    num_ws: int
    img_resolution: int
    img_channels: int
    latent_spaces: tuple[str, ...] = ("z",)
    # Config needed to rebuild the network (saved next to the weights in the native format).
    arch: str
    config: dict

    # --- latents -------------------------------------------------------------------------
    def z_from_seed(self, seed: int) -> torch.Tensor:
        """The z NVIDIA's generate.py uses for `seed`: RandomState(seed).randn(1, z_dim)."""
        z = np.random.RandomState(seed).randn(1, self.z_dim)
        return torch.from_numpy(z).float().to(self.device)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.z_dim, generator=generator).to(self.device)

    def class_vector(self, n: int, class_idx: int | None) -> torch.Tensor:
        """One-hot labels for conditional models (an empty [n, 0] tensor otherwise)."""
        c = torch.zeros(n, self.c_dim, device=self.device)
        if self.c_dim == 0:
            if class_idx is not None:
                raise ValueError("this model is unconditional: do not pass a class")
            return c
        if class_idx is None:
            raise ValueError(f"this model is conditional: pass a class in 0..{self.c_dim - 1}")
        if not 0 <= class_idx < self.c_dim:
            raise ValueError(f"class {class_idx} out of range 0..{self.c_dim - 1}")
        c[:, class_idx] = 1
        return c

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- the three steps -------------------------------------------------------------------
    def z_to_w(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
               truncation_cutoff: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def synthesize(self, ws: torch.Tensor, noise_mode: str = "const", **kwargs) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const", **kwargs):
        ws = self.z_to_w(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesize(ws, noise_mode=noise_mode, **kwargs)

    # --- split synthesis -------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """Layers where synthesis can be split, from coarse to fine (the image itself excluded)."""
        raise NotImplementedError

    def features_at(self, layer: str, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        raise NotImplementedError

    def synthesize_from(self, layer: str, features: torch.Tensor, ws: torch.Tensor,
                        noise_mode: str = "const") -> torch.Tensor:
        raise NotImplementedError

    def synthesize_with_features(self, ws: torch.Tensor, noise_mode: str = "const"):
        """(image, [features of every block, coarse to fine]) in one pass (DragGAN uses these)."""
        raise NotImplementedError

    def check_layer(self, layer: str) -> int:
        names = self.layer_names
        if layer not in names:
            raise ValueError(f"unknown layer {layer!r}; this model has {', '.join(names)}")
        return names.index(layer)

    def describe(self) -> dict:
        """A short summary for `ganprior models` and reports."""
        return dict(arch=self.arch, resolution=self.img_resolution, z_dim=self.z_dim,
                    w_dim=self.w_dim, num_ws=self.num_ws, c_dim=self.c_dim,
                    latent_spaces=list(self.latent_spaces), layers=self.layer_names,
                    params=sum(p.numel() for p in self.parameters()))
