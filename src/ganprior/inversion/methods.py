"""Inversion methods: what is optimised and how it becomes an image.

A method is a small object with
    init(G, targets, rngs) -> dict of leaf tensors to optimise (first dim: one per target image);
                          `rngs` holds one torch.Generator per image, and image i draws its
                          random values from rngs[i] alone, so a batch gives the same start
                          as one image at a time
    render(G, p)     -> images [n, C, H, W] in [-1, 1]
    penalty(G, p)    -> extra loss per image [n] (0 when the method has none)
and talks to the generator only through the interface in `nets/base.py` (PadInv's padding
maps and NVIDIA-projector noise maps go in through `G.synthesize(..., paddings=, noise=)`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nets.base import GeneratorBase


def _needs_w(G: GeneratorBase, method: str):
    if "w" not in G.latent_spaces:
        raise ValueError(f"method {method!r} needs a model with a W space (StyleGAN2); "
                         f"{G.arch} has only {', '.join(G.latent_spaces)}")


def _w_avg(G: GeneratorBase) -> torch.Tensor:
    return G.w_avg.detach().clone()


def _like(G) -> dict:
    """Device and dtype of G's weights (float64 models give float64 parameters)."""
    w = next(G.parameters())
    return {"device": w.device, "dtype": w.dtype}


def randn_per_image(rngs: list[torch.Generator], *shape: int, like: dict) -> torch.Tensor:
    """[len(rngs), *shape] normal samples, row i drawn from rngs[i] only."""
    return torch.stack([torch.randn(*shape, generator=r) for r in rngs]).to(**like)


class Method:
    name: str
    optimises = True  # False: the initial parameters are the answer (encoder)

    def penalty(self, G, p):
        return 0.0

    def on_step(self, step: int, steps: int):
        """Called before each step (schedules that depend on progress)."""

    def after_step(self, p):
        """Called after each optimiser update (projections, renormalisation)."""


class LatentZ(Method):
    """(a) one z per image, optimised through the mapping network (if any)."""
    name = "z"

    def init(self, G, targets, rngs):
        return {"z": randn_per_image(rngs, G.z_dim, like=_like(G))}

    def render(self, G, p):
        return G.synthesize(G.z_to_w(p["z"]))


class LatentW(Method):
    """(a) one w (broadcast to every layer) or one w per layer (w+), initialised at w_avg.

    With `noise_maps=True` it follows NVIDIA's projector: the per-pixel noise maps of every
    synthesis layer are optimised too (per image), pushed towards white noise by a multi-scale
    autocorrelation penalty (weight `noise_reg`) and renormalised after each step, and the w
    being optimised is perturbed by Gaussian noise whose strength ramps down to 0 over the
    first 75 % of the steps (initial factor 0.05 of the spread of W).
    """

    def __init__(self, plus: bool = False, noise_maps: bool = False, noise_reg: float = 1e5,
                 initial_noise_factor: float = 0.05, noise_ramp: float = 0.75):
        self.plus, self.noise_maps, self.noise_reg = plus, noise_maps, noise_reg
        self.initial_noise_factor, self.noise_ramp = initial_noise_factor, noise_ramp
        self.name = "w+" if plus else "w"
        self.w_noise = 0.0

    def init(self, G, targets, rngs):
        n = targets.shape[0]
        _needs_w(G, self.name)
        k = G.num_ws if self.plus else 1
        p = {"w": _w_avg(G).reshape(1, 1, -1).repeat(n, k, 1)}
        if self.noise_maps:
            # the spread of W (for the noise added to w) is the model's, not an image's: drawn
            # with a fixed seed (NVIDIA's projector uses 123 too) so no image's start moves it
            with torch.no_grad():
                z = torch.randn(2000, G.z_dim, generator=torch.Generator().manual_seed(123))
                w = G.z_to_w(z.to(**_like(G)))[:, 0]
                self.w_std = (w - _w_avg(G)).square().sum(1).mean().sqrt().item()
            self.rngs = rngs  # the per-step noise on w is drawn per image too
            for name, r in G.noise_layers().items():
                p[f"noise.{name}"] = randn_per_image(rngs, 1, r, r, like=_like(G))
        return p

    def on_step(self, step, steps):
        if self.noise_maps:
            t = step / max(steps, 1)
            self.w_noise = self.w_std * self.initial_noise_factor * max(0.0, 1 - t / self.noise_ramp) ** 2

    def render(self, G, p):
        w = p["w"]
        if self.noise_maps and self.w_noise > 0 and torch.is_grad_enabled():
            w = w + randn_per_image(self.rngs, *w.shape[1:], like={"device": w.device, "dtype": w.dtype}) * self.w_noise
        noise = ({k: p[f"noise.{k}"] for k in G.noise_layers()} if self.noise_maps else None)
        return G.synthesize(w.expand(-1, G.num_ws, -1), noise_mode="const", noise=noise)

    def penalty(self, G, p):
        if not self.noise_maps:
            return 0.0
        reg = 0.0
        for k, v in p.items():
            if not k.startswith("noise."):
                continue
            x = v
            while True:  # squared autocorrelation at lag 1, at every scale down to 8x8
                reg = reg + (x * torch.roll(x, 1, dims=3)).mean(dim=[1, 2, 3]) ** 2
                reg = reg + (x * torch.roll(x, 1, dims=2)).mean(dim=[1, 2, 3]) ** 2
                if x.shape[2] <= 8:
                    break
                x = F.avg_pool2d(x, 2)
        return self.noise_reg * reg

    def after_step(self, p):
        with torch.no_grad():
            for k, v in p.items():
                if k.startswith("noise."):
                    v -= v.mean(dim=[1, 2, 3], keepdim=True)
                    v *= v.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()


class MultiCode(Method):
    """mGANprior (Gu et al., CVPR 2020): N codes, features composed at layer l with per-channel
    importance α (N x C, initialised 1/N), image = G2(Σ_n F_n ⊙ α_n).

    DCGAN family: codes are z. StyleGAN2: codes live in W+ (one per branch, initialised from
    random samples of W so the branches differ), and the layers after the split take their
    styles from one more W+ code (`ws_tail`, initialised at w_avg), optimised with the rest.
    """
    name = "mganprior"

    def __init__(self, n_codes: int = 20, layer: str | None = None):
        if n_codes < 1:
            raise ValueError("--codes must be at least 1")
        self.n_codes, self.layer = n_codes, layer

    def split_layer(self, G):
        if self.layer is None:  # default: the block at 1/4 of the output resolution
            self.layer = f"b{max(4, G.img_resolution // 4)}"
        G.check_layer(self.layer)
        return self.layer

    def init(self, G, targets, rngs):
        n = targets.shape[0]
        layer = self.split_layer(G)
        z = randn_per_image(rngs, self.n_codes, G.z_dim, like=_like(G))
        with torch.no_grad():
            codes = G.z_to_w(z.flatten(0, 1))
        p = {"codes": codes.reshape(n, self.n_codes, *codes.shape[1:]).clone(),
             "alpha": torch.full((n, self.n_codes, G.feature_channels(layer)), 1.0 / self.n_codes,
                                 **_like(G))}
        if "w" in G.latent_spaces:
            p["ws_tail"] = _w_avg(G).reshape(1, 1, -1).repeat(n, G.num_ws, 1)
        return p

    def render(self, G, p):
        n, k = p["alpha"].shape[:2]
        feats = G.features_at(self.layer, p["codes"].flatten(0, 1))
        feats = feats.reshape(n, k, *feats.shape[1:])
        composed = (feats * p["alpha"][..., None, None]).sum(dim=1)
        return G.synthesize_from(self.layer, composed, p.get("ws_tail"))


class PaddingSpace(Method):
    """PadInv (Bai et al., ECCV 2022), optimisation variant: W+ plus per-image maps that replace
    the zero padding of the non-upsampling 3x3 convs (conv1) of the first K resolutions and the
    constant input. A (res+2)^2 map's one-pixel border ring is used as padding, the conv runs
    without padding; all-zero maps give back the plain generator exactly.
    """
    name = "padinv"

    def __init__(self, resolutions: int = 4):
        self.k = resolutions

    def padded_layers(self, G) -> dict[int, int]:
        """{resolution: input channels} of the padded convs of the first K resolutions."""
        pads = dict(list(G.padding_resolutions().items())[: self.k])
        if not pads or G.const_input is None:
            raise ValueError("padinv needs a StyleGAN2 generator (padded 3x3 convs)")
        return pads

    def init(self, G, targets, rngs):
        n = targets.shape[0]
        pads = self.padded_layers(G)
        p = LatentW(plus=True).init(G, targets, rngs)
        p["const"] = G.const_input.detach().unsqueeze(0).repeat(n, 1, 1, 1)
        for r, c in pads.items():
            p[f"pad{r}"] = torch.zeros(n, c, r + 2, r + 2, **_like(G))
        return p

    def render(self, G, p):
        pads = self.padded_layers(G)
        return G.synthesize(p["w"], noise_mode="const", const=p["const"],
                            paddings={r: p[f"pad{r}"] for r in pads})


class Encoded(Method):
    """(b) encoder: the parameters a trained encoder predicts (no optimisation), or
    (c) hybrid: those parameters as the starting point of optimisation.
    A latent encoder predicts z (DCGAN family) or W+ (StyleGAN2); a PadInv encoder predicts
    the padding-space parameters (W+, constant, padding maps) of `PaddingSpace`."""

    def __init__(self, encoder, hybrid: bool = False):
        from ..nets.encoders import PadInvEncoder
        self.encoder, self.hybrid = encoder, hybrid
        self.name = "hybrid" if hybrid else "encoder"
        self.optimises = hybrid
        self.padding = (PaddingSpace(len(encoder.pads)) if isinstance(encoder, PadInvEncoder)
                        else None)

    def init(self, G, targets, rngs):
        self.encoder.to(G.device)
        with torch.no_grad():
            if self.padding is not None:
                from ..nets.encoders import padinv_params
                self.padding.padded_layers(G)  # StyleGAN2 check
                return padinv_params(G, self.encoder, targets.to(G.device))
            latent = self.encoder(targets.to(G.device))
        if tuple(latent.shape[1:]) == (G.num_ws, G.w_dim) and "w" in G.latent_spaces:
            return {"w": latent}
        if tuple(latent.shape[1:]) == (G.z_dim,):
            return {"z": latent}
        raise ValueError(f"the encoder predicts {tuple(latent.shape[1:])}, which does not fit "
                         "this model's latents")

    def render(self, G, p):
        if self.padding is not None:
            return self.padding.render(G, p)
        if "w" in p:
            return G.synthesize(p["w"])
        return G.synthesize(G.z_to_w(p["z"]))


# the options each method takes (what make_method reads), with their defaults
METHOD_OPTIONS = {
    "z": {},
    "w": {"noise_maps": False, "noise_reg": 1e5},
    "w+": {"noise_maps": False, "noise_reg": 1e5},
    "mganprior": {"codes": 20, "layer": None},
    "padinv": {"pad_resolutions": 4},
    "encoder": {"encoder": None, "encoder_sha256": None},
    "hybrid": {"encoder": None, "encoder_sha256": None},
}
# `model` names the model the method is for (encoder/hybrid fall back to its shipped encoder)
_COMMON_OPTIONS = ("model",)


def _check_options(name: str, options: dict) -> dict:
    """The named method's options with defaults filled in; a name that no method takes is an
    error (a typo such as `code=5` must not be silently ignored). Options of the other
    methods are accepted unused, so one set of options can serve every method (the CLI
    passes its --codes/--layer/... whatever --method is)."""
    if name not in METHOD_OPTIONS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    known = {k for opts in METHOD_OPTIONS.values() for k in opts} | set(_COMMON_OPTIONS)
    unknown = sorted(set(options) - known)
    if unknown:
        own = ", ".join(METHOD_OPTIONS[name]) or "none"
        raise ValueError(f"make_method({name!r}): unknown option{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)} (its options: {own})")
    return {k: default if options.get(k) is None else options[k]
            for k, default in METHOD_OPTIONS[name].items()}


def _encoder_for(name: str, encoder, model, sha256):
    """The encoder module: the one given (module or file), else the shipped encoder of the
    zoo model `model`, as the CLI does."""
    from ..nets.encoder_files import load_encoder, zoo_encoder
    if encoder is None and model is not None:
        encoder = zoo_encoder(str(model))
        if encoder is None:
            raise ValueError(f"method {name!r}: model {model} ships no encoder; pass "
                             "encoder=FILE (train one with `ganprior train-encoder`)")
    if encoder is None:
        raise ValueError(f"method {name!r} needs --encoder FILE or a zoo model with a shipped "
                         "encoder (model=NAME); train one with `ganprior train-encoder`")
    if not isinstance(encoder, torch.nn.Module):
        encoder = load_encoder(encoder)[0]
    if sha256 is not None:
        from .files import model_fingerprint
        if model_fingerprint(encoder) != sha256:
            raise ValueError(f"method {name!r}: the encoder is not the one the result was "
                             f"made with (SHA-256 {sha256[:12]}...)")
    return encoder


def make_method(name: str, **options) -> Method:
    """The inversion method `name` (see METHODS), configured by its options:

    - "z": none; "w", "w+": noise_maps (NVIDIA projector's noise-map optimisation), noise_reg;
    - "mganprior": codes (N), layer (composition block, e.g. "b16"; default 1/4 resolution);
    - "padinv": pad_resolutions (how many resolutions get padding maps);
    - "encoder", "hybrid": encoder (a module or a `ganprior train-encoder` file); without it,
      model=ZOO_NAME uses that model's shipped encoder (e.g. model="dcgan-digiface64").

    An option no method takes is a ValueError (one line); see `_check_options`.
    """
    opts = _check_options(name, options)
    if name == "z":
        return LatentZ()
    if name in ("w", "w+"):
        return LatentW(plus=name == "w+", **opts)
    if name == "mganprior":
        return MultiCode(n_codes=opts["codes"], layer=opts["layer"])
    if name == "padinv":
        return PaddingSpace(resolutions=opts["pad_resolutions"])
    encoder = _encoder_for(name, opts["encoder"], options.get("model"), opts["encoder_sha256"])
    return Encoded(encoder, hybrid=name == "hybrid")


METHODS = tuple(METHOD_OPTIONS)
