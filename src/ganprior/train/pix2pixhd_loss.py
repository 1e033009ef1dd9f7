"""pix2pixHD's objective: adversarial loss over every discriminator scale (LSGAN, or hinge),
discriminator feature matching and the VGG19 perceptual loss.

    G: sum_k GAN(D_k(x, G(x)), real) + lambda_feat * FM + lambda_vgg * VGG
    D: sum_k GAN(D_k(x, y), real) + GAN(D_k(x, G(x).detach()), fake)

FM = sum_k sum_i (1/num_D) (4/(n_layers+1)) |D_k^i(x, G(x)) - D_k^i(x, y)|_1 (mean absolute
difference per layer i of the n_layers+1 feature layers, real features detached);
VGG = sum_i w_i |VGG_i(G(x)) - VGG_i(y)|_1 over relu1_1 ... relu5_1 with w = 1/32, 1/16,
1/8, 1/4, 1. lambda_feat = lambda_vgg = 10 as the official code (it weights both with
--lambda_feat). Discriminator outputs are `MultiscaleDiscriminator`'s [scale][layer] lists.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("lsgan", "hinge")
VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def _predictions(outputs) -> list[torch.Tensor]:
    """The real/fake maps: the last tensor of each scale (or the tensors themselves)."""
    return [o[-1] if isinstance(o, (list, tuple)) else o for o in outputs]


def gan_loss(outputs, real: bool, mode: str = "lsgan", for_discriminator: bool = True):
    """Summed over the discriminator's scales (as the official code: not averaged).

    lsgan: mean((p - t)^2) with t = 1 for real, 0 for fake (both players).
    hinge: D: mean(relu(1 - p)) on real, mean(relu(1 + p)) on fake; G: -mean(p) (real=True).
    """
    if mode not in GAN_MODES:
        raise ValueError(f"GAN loss must be one of {', '.join(GAN_MODES)}, not {mode!r}")
    total = 0
    for p in _predictions(outputs):
        if mode == "lsgan":
            total = total + (p - float(real)).square().mean()
        elif for_discriminator:
            total = total + F.relu(1 - p if real else 1 + p).mean()
        else:
            if not real:
                raise ValueError("the hinge generator loss is only defined towards 'real'")
            total = total - p.mean()
    return total


def feature_matching_loss(fake_outputs, real_outputs, lambda_feat: float = 10.0):
    """lambda_feat * sum over scales and feature layers (all but each scale's prediction) of
    (1/num_D) (4/(n_layers+1)) * L1(fake, real.detach()); n_layers+1 feature layers a scale."""
    if len(fake_outputs) != len(real_outputs):
        raise ValueError(f"{len(fake_outputs)} fake scales but {len(real_outputs)} real ones")
    num_D = len(fake_outputs)
    total = 0
    for fake, real in zip(fake_outputs, real_outputs):
        feats_fake, feats_real = fake[:-1], real[:-1]
        if len(feats_fake) != len(feats_real) or not feats_fake:
            raise ValueError("feature matching needs the same feature layers (at least one) "
                             "for fake and real")
        weight = lambda_feat * (1.0 / num_D) * (4.0 / len(feats_fake))
        for f, r in zip(feats_fake, feats_real):
            total = total + weight * F.l1_loss(f, r.detach())
    return total


class VGGLoss(nn.Module):
    """sum_i w_i * L1(VGG19_i(fake), VGG19_i(real).detach()) on [-1, 1] images (ImageNet-
    normalised before VGG, which the official code skips: see docs/pix2pixhd.md)."""

    def __init__(self, vgg, layer_weights=VGG_WEIGHTS):
        super().__init__()
        self.vgg, self.layer_weights = vgg, tuple(layer_weights)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        from ..nets.vgg import imagenet_normalise
        fa = self.vgg(imagenet_normalise(fake))
        fb = self.vgg(imagenet_normalise(real))
        return sum(w * F.l1_loss(a, b.detach()) for w, a, b in zip(self.layer_weights, fa, fb))


def load_vgg_loss(device, warn: bool = True) -> tuple[VGGLoss | None, str | None]:
    """(VGGLoss, None), or (None, note) when the VGG19 weights are not usable: training goes
    on without the perceptual term; the note is also a Python warning (unless `warn` is off)
    and is what the CLI prints."""
    from ..nets.vgg19 import load_vgg19
    vgg, why = load_vgg19(device)
    if vgg is None:
        note = f"training without the VGG19 perceptual loss: {why}"
        if warn:
            warnings.warn(note, stacklevel=2)
        return None, note
    return VGGLoss(vgg), None


class Pix2PixHDLoss:
    """The generator's and the discriminator's losses, by term (for logging), with the
    options the trainer exposes. `vgg` None = no perceptual term (`note` says why)."""

    def __init__(self, gan_mode: str = "lsgan", lambda_feat: float = 10.0,
                 lambda_vgg: float = 10.0, feature_matching: bool = True,
                 vgg: VGGLoss | None = None, note: str | None = None):
        if gan_mode not in GAN_MODES:
            raise ValueError(f"GAN loss must be one of {', '.join(GAN_MODES)}, not {gan_mode!r}")
        self.gan_mode, self.lambda_feat, self.lambda_vgg = gan_mode, lambda_feat, lambda_vgg
        self.feature_matching, self.vgg, self.note = feature_matching, vgg, note

    def generator(self, fake_outputs, real_outputs, fake, real) -> dict:
        """{'G_GAN', 'G_feat', 'G_VGG'} (terms that are off are left out). fake_outputs:
        D(condition, fake) with gradients; real_outputs: D(condition, real)."""
        terms = {"G_GAN": gan_loss(fake_outputs, True, self.gan_mode, for_discriminator=False)}
        if self.feature_matching:
            terms["G_feat"] = feature_matching_loss(fake_outputs, real_outputs, self.lambda_feat)
        if self.vgg is not None:
            terms["G_VGG"] = self.lambda_vgg * self.vgg(fake, real)
        return terms

    def discriminator(self, fake_outputs, real_outputs) -> dict:
        """{'D_real', 'D_fake'}; fake_outputs must come from a detached fake image."""
        return {"D_real": gan_loss(real_outputs, True, self.gan_mode),
                "D_fake": gan_loss(fake_outputs, False, self.gan_mode)}

    def describe(self) -> dict:
        return {"gan": self.gan_mode,
                "feature_matching": self.lambda_feat if self.feature_matching else None,
                "vgg": self.lambda_vgg if self.vgg is not None else None, "note": self.note}
