"""The one generator interface that inversion, restoration and editing talk to.

Every generator maps latents to images in three steps:

    z --z_to_w--> ws [N, num_ws, w_dim] --synthesize--> image [N, C, H, W] in [-1, 1]

and its synthesis can be split at a named layer (`layer_names`, e.g. "b16" = the output of the
block at 16x16 resolution):

    features = G.features_at("b16", ws)          # G1 in the mGANprior paper
    image    = G.synthesize_from("b16", features, ws)  # G2

Generators without a mapping network (DCGAN/PGGAN family) use the identity: ws = z[:, None, :]
with num_ws = 1 and w_dim = z_dim.

The public entry points check shapes (z [N, z_dim], ws [N, num_ws, w_dim], features
[N, feature_channels(layer), r, r]) and raise ValueError naming what was expected and got.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn


class StyleInput(NamedTuple):
    """One style input of the synthesis: `weight` [features, w_dim] maps the w at `ws_index`
    to the layer's styles (bias left out), with every gain the forward pass applies."""
    name: str
    ws_index: int
    weight: torch.Tensor


def _shape(t) -> str:
    return str(list(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


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

    @property
    def w_avg(self) -> torch.Tensor:
        """The centre of W ([w_dim]): truncation pulls towards it, W-space inversion starts there.
        The model's own buffer: clone it before changing it."""
        raise NotImplementedError

    # --- shape checks at the public entry points ---------------------------------------------
    def _check_z(self, z, c=None):
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {_shape(z)}")
        has_c = c is not None and c.numel() > 0
        if self.c_dim == 0 and has_c:
            raise ValueError(f"this model is unconditional: c must be empty, got {_shape(c)}")
        if self.c_dim and (c is None or c.ndim != 2 or tuple(c.shape) != (z.shape[0], self.c_dim)):
            raise ValueError(f"this model is conditional: c must be [{z.shape[0]}, {self.c_dim}], "
                             f"got {_shape(c) if c is not None else None}")

    def _check_ws(self, ws):
        want = (self.num_ws, self.w_dim)
        if not isinstance(ws, torch.Tensor) or ws.ndim != 3 or tuple(ws.shape[1:]) != want:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {_shape(ws)}")

    def _check_features(self, layer: str, features, ws=None):
        r = int(layer[1:])
        want = (self.feature_channels(layer), r, r)
        if (not isinstance(features, torch.Tensor) or features.ndim != 4
                or tuple(features.shape[1:]) != want):
            raise ValueError(f"features at {layer} must be [N, {', '.join(map(str, want))}], "
                             f"got {_shape(features)}")
        if ws is not None and ws.shape[0] != features.shape[0]:
            raise ValueError(f"ws has {ws.shape[0]} rows but the features {features.shape[0]}")

    # --- the three steps -------------------------------------------------------------------
    def z_to_w(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
               truncation_cutoff: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def synthesize(self, ws: torch.Tensor, noise_mode: str = "const", noise: dict | None = None,
                   const: torch.Tensor | None = None, paddings: dict | None = None,
                   **speed_options) -> torch.Tensor:
        """ws -> image. Overrides (StyleGAN2; empty or None elsewhere):
        noise    {name: [N, 1, r, r]} replaces the per-pixel noise of the layers named in
                 `noise_layers()` (scaled by the layer's learned strength, whatever noise_mode);
        const    [N, *const_input.shape] replaces the learned constant input;
        paddings {r: [N, C, r+2, r+2]} for r in `padding_resolutions()`: the map's one-pixel
                 border ring replaces the zero padding of that resolution's non-upsampling
                 3x3 conv (PadInv's padding space); all-zero maps give the plain image."""
        raise NotImplementedError

    # --- what methods need besides the three steps ---------------------------------------
    @property
    def const_input(self) -> torch.Tensor | None:
        """The learned constant the synthesis starts from ([C, 4, 4]), or None."""
        return None

    def noise_layers(self) -> dict[str, int]:
        """{layer name: resolution} of every synthesis layer with per-pixel noise."""
        return {}

    def padding_resolutions(self) -> dict[int, int]:
        """{resolution: input channels} of the convs whose padding `synthesize(paddings=...)`
        can replace, coarse to fine."""
        return {}

    def modulation_weights(self) -> list[StyleInput]:
        """The linear maps from the latent to every style input, in layer order (SeFa's closed
        form takes eigenvectors of the stacked weights)."""
        raise NotImplementedError

    def feature_channels(self, layer: str) -> int:
        """Channels of `features_at(layer)`."""
        raise NotImplementedError

    def _check_overrides(self, ws, noise, const, paddings):
        """ValueError for overrides this model has no place for, or of the wrong shape."""
        n = ws.shape[0]
        layers, pads = self.noise_layers(), self.padding_resolutions()
        for name, t in (noise or {}).items():
            if name not in layers:
                raise ValueError(f"no noise layer {name!r}; this model has "
                                 f"{', '.join(layers) or 'none'}")
            r = layers[name]
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != (n, 1, r, r):
                raise ValueError(f"noise {name} must be [{n}, 1, {r}, {r}], got {_shape(t)}")
        if const is not None:
            if self.const_input is None:
                raise ValueError(f"{self.arch} has no constant input to replace")
            want = (n, *self.const_input.shape)
            if not isinstance(const, torch.Tensor) or tuple(const.shape) != want:
                raise ValueError(f"const must be {list(want)}, got {_shape(const)}")
        for r, t in (paddings or {}).items():
            if r not in pads:
                raise ValueError(f"no padded conv at resolution {r!r}; this model has "
                                 f"{', '.join(map(str, pads)) or 'none'}")
            want = (n, pads[r], r + 2, r + 2)
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != want:
                raise ValueError(f"padding {r} must be {list(want)}, got {_shape(t)}")

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

    def features_in_box(self, layer: str, ws: torch.Tensor, box, noise_mode: str = "const"):
        """The output of block `layer` ("b{r}", any block synthesize_with_features returns,
        without the RGB image features_at appends) inside box = (y0, y1, x0, x1) of its
        pixels: [N, C, y1 - y0, x1 - x0]. Generators that can compute it from crops of the
        earlier blocks override this (DragGAN differentiates a few pixels of one block);
        this default computes every block and cuts the box out."""
        self._check_ws(ws)
        _, feats = self.synthesize_with_features(ws, noise_mode=noise_mode)
        r = int(layer[1:]) if layer[:1] == "b" and layer[1:].isdigit() else -1
        found = [f for f in feats if f.shape[-1] == r]
        if not found:
            raise ValueError(f"no block {layer!r}; this model has "
                             f"{', '.join(f'b{f.shape[-1]}' for f in feats)}")
        y0, y1, x0, x1 = box
        return found[0][:, :, y0:y1, x0:x1]

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
