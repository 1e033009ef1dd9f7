"""Generator tuning on one image after an inversion: PTI and DGP-style progressive tuning.

    result = tune(G, target, method, params, kind="pti")   # or kind="dgp", D=D
    result.G                                               # a tuned copy; G is untouched
    save_delta("out/x_tuned.safetensors", result.G, G, meta=result.settings)
    G2 = load_delta("out/x_tuned.safetensors", G)          # the same tuned generator

- PTI (Roich et al. 2021): the pivot (the inversion's parameters, any method) stays fixed and
  the synthesis weights are tuned so that degrade(G(pivot)) matches the observation, while a
  locality regulariser keeps G's images unchanged at latents w_r a step `alpha` from the
  pivot towards random w (on full images).
- DGP (Pan et al. 2020): the synthesis blocks are unfrozen coarse to fine in stages; in each
  stage the latent parameters and the unfrozen blocks are optimised jointly (their own learning
  rates per stage), with the discriminator-feature loss + MSE when a D is given.
Settings, their sources and the deliberate differences: docs/tuning.md. The tuned copy only
ever differs from G in its synthesis weights (the mapping network is never tuned), so the
delta holds just those tensors.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from ..files import atomic_write, json_safe
from ..metrics import psnr, to_unit
from ..nets.base import GeneratorBase
from ..progress import progress_bar
from .engine import invert
from .losses import ReconstructionLoss

TUNINGS = ("pti", "dgp")

# Defaults per kind, with where they come from (docs/tuning.md has the full table).
DEFAULTS: dict[str, dict] = {
    "pti": {  # PTI's configs/hyperparameters.py
        "steps": 350,            # max_pti_steps
        "lr": 3e-4,              # pti_learning_rate (Adam, default betas)
        "l2": 1.0,               # pt_l2_lambda
        "lpips": 1.0,            # pt_lpips_lambda (when the LPIPS weights are installed)
        "reg": True,             # use_locality_regularization (off in the latest official code)
        "reg_l2": 0.1,           # regulizer_l2_lambda
        "reg_lpips": 0.1,        # regulizer_lpips_lambda (when LPIPS is installed)
        "reg_alpha": "auto",     # regulizer_alpha = 30 there; ours: see reg_alpha_fraction
        "reg_alpha_fraction": 0.5,  # "auto": alpha = this x median ||w_z - w_p|| (ours)
        "reg_psi": 0.5,          # truncation of the regulariser's random w (official)
        "reg_samples": 1,        # latent_ball_num_of_samples
        "reg_every": 1,          # locality_regularization_interval
    },
    "dgp": {  # DGP's experiments/imagenet1k_128/SR/D_biased/train.sh, 5 stages
        "iterations": [200, 200, 200, 200, 200],
        "g_lrs": [5e-5, 5e-5, 2e-5, 1e-5, 1e-5],
        "z_lrs": [2e-3, 1e-3, 2e-5, 1e-5, 1e-5],
        "lr_ratio": [1.0, 1.0, 1.0, 1.0, 1.0],  # block i's lr = g_lr x ratio^i
        "w_d": [1.0, 1.0, 1.0, 1.0, 1.0],       # w_D_loss
        "w_mse": [1.0, 1.0, 1.0, 1.0, 1.0],     # w_mse
        "w_nll": 0.02,           # z^2/2 prior on "z" latents
        "d_features": 8,         # ftr_num: the deepest N block features of D (8 = all here)
        "betas": [0.0, 0.999],   # BigGAN-PyTorch's G_B1, G_B2 (DGP uses them for G and z)
        "eps": 1e-8,
    },
}
_STAGE_LISTS = ("iterations", "g_lrs", "z_lrs", "lr_ratio", "w_d", "w_mse")
LPIPS_MIN_SIZE = 16  # VGG's four poolings before relu5_3
_ALPHA_SAMPLES, _ALPHA_SEED = 256, 123


@dataclass
class TuneResult:
    G: GeneratorBase                  # the tuned copy
    params: dict[str, torch.Tensor]   # PTI: the pivot unchanged; DGP: optimised jointly
    image: torch.Tensor               # G(params) [1, C, H, W] (model resolution)
    loss: float                       # the tuning objective's data term after tuning
    psnr: float                       # against `reference` if given, else the observed target
    ssim: float
    history: list[dict] = field(default_factory=list)  # per step: step, loss, psnr (+reg/stage)
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)
    loss_info: dict = field(default_factory=dict)


# --- settings ---------------------------------------------------------------------------------
def tune_settings(kind: str, steps: int | None = None, **overrides) -> dict:
    """The defaults of `kind` with `overrides`, checked. DGP's `steps` rescales its stages'
    iterations to that total (in proportion)."""
    if kind not in TUNINGS:
        raise ValueError(f"unknown tuning {kind!r}; choose from {', '.join(TUNINGS)}")
    s = copy.deepcopy(DEFAULTS[kind])
    unknown = set(overrides) - set(s)
    if unknown:
        raise ValueError(f"unknown {kind} setting {', '.join(sorted(unknown))}; "
                         f"use {', '.join(s)}")
    s.update(overrides)
    for k, v in s.items():
        values = v if isinstance(v, (list, tuple)) else [v]
        if k in ("reg", "reg_alpha") or isinstance(v, bool):
            continue
        if not all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0 for x in values):
            raise ValueError(f"{kind} setting {k} must be finite numbers >= 0, not {v}")
    if kind == "pti":
        if steps is not None:
            s["steps"] = steps
        if s["reg_alpha"] != "auto" and not (isinstance(s["reg_alpha"], (int, float))
                                             and s["reg_alpha"] > 0):
            raise ValueError(f"reg_alpha must be 'auto' or a number > 0, not {s['reg_alpha']}")
        s["steps"], s["reg_samples"] = int(s["steps"]), int(s["reg_samples"])
        if s["steps"] < 0:
            raise ValueError("steps must be >= 0")
        s["reg_every"] = max(1, int(s["reg_every"]))
        if not s["lr"] > 0:
            raise ValueError("lr must be > 0")
        return s
    n = len(s["iterations"])
    if n == 0 or any(len(s[k]) != n for k in _STAGE_LISTS):
        raise ValueError(f"dgp settings {', '.join(_STAGE_LISTS)} need one value per stage "
                         f"({n} stages)")
    s["iterations"] = [int(i) for i in s["iterations"]]
    if steps is not None:
        s["iterations"] = _rescale(s["iterations"], steps)
    s["steps"] = sum(s["iterations"])
    return s


def _rescale(iterations: list[int], steps: int) -> list[int]:
    """Split `steps` over the stages in proportion to `iterations` (rounded cumulatively)."""
    if steps < 0:
        raise ValueError("steps must be >= 0")
    total, cum, bounds = sum(iterations) or 1, 0, [0]
    for it in iterations:
        cum += it
        bounds.append(round(steps * cum / total))
    return [b - a for a, b in zip(bounds, bounds[1:])]


# --- what a tuning needs from the generator -------------------------------------------------
def block_groups(G: GeneratorBase) -> list[tuple[str, list[str]]]:
    """The synthesis parameters by block, coarse to fine: [(layer name, [parameter names])].

    A parameter belongs to the first split point (`G.layer_names`, then the image itself,
    named f"b{resolution}") whose output depends on it, read off the autograd graph, so this
    needs nothing but the generator interface: StyleGAN2's block b8 gets its convs and its
    toRGB, DCGAN's its ConvTranspose + BatchNorm. Parameters no image depends on (the mapping
    network) are in no group.
    """
    named = list(G.named_parameters())
    flags = [p.requires_grad for _, p in named]
    ws = G.w_avg.detach().reshape(1, 1, -1).expand(1, G.num_ws, -1).clone()
    ws = ws.to(next(G.parameters()).dtype)
    points = [(layer, lambda layer=layer: G.features_at(layer, ws)) for layer in G.layer_names]
    points.append((f"b{G.img_resolution}", lambda: G.synthesize(ws)))
    owner: dict[str, str] = {}
    try:
        for _, p in named:
            p.requires_grad_(True)
        with torch.enable_grad():
            for layer, output in points:
                grads = torch.autograd.grad(output().sum(), [p for _, p in named],
                                            allow_unused=True)
                for (name, _), g in zip(named, grads):
                    if g is not None:
                        owner.setdefault(name, layer)
    finally:
        for (_, p), f in zip(named, flags):
            p.requires_grad_(f)
    return [(layer, [n for n, _ in named if owner.get(n) == layer]) for layer, _ in points]


def pivot_ws(G: GeneratorBase, params: dict) -> torch.Tensor:
    """The pivot as ws [N, num_ws, w_dim], where the regulariser's neighbourhood is centred:
    params["w"] (w, w+, padinv, encoders; broadcast to every layer), z_to_w(params["z"]),
    or the mean of mGANprior's codes."""
    if "w" in params:
        return params["w"].expand(-1, G.num_ws, -1)
    if "z" in params:
        return G.z_to_w(params["z"])
    if "codes" in params:
        return params["codes"].mean(dim=1)
    raise ValueError(f"no pivot latent among the parameters {', '.join(params)}")


def regulariser_ws(G_base, w_pivot, z, alpha, psi) -> torch.Tensor:
    """PTI's w_r = w_p + alpha (w_z - w_p) / ||w_z - w_p||, w_z = mapping(z) at truncation
    psi; the norm is over the whole [num_ws, w_dim] code, one per sample."""
    w_z = G_base.z_to_w(z, truncation_psi=psi)
    d = w_z - w_pivot
    return w_pivot + alpha * d / d.flatten(1).norm(dim=1).reshape(-1, 1, 1)


def auto_alpha(G_base, w_pivot, psi, fraction) -> float:
    """`fraction` x the median distance from the pivot to random w_z (fixed seed)."""
    rng = torch.Generator().manual_seed(_ALPHA_SEED)
    z = torch.randn(_ALPHA_SAMPLES, G_base.z_dim, generator=rng)
    with torch.no_grad():
        w_z = G_base.z_to_w(z.to(w_pivot), truncation_psi=psi)
        return fraction * (w_z - w_pivot).flatten(1).norm(dim=1).median().item()


def locality_loss(G_tuned, G_base, w_pivot, z, alpha, psi=0.5, l2=1.0, lpips=None,
                  lpips_weight=0.0) -> torch.Tensor:
    """PTI's locality regulariser (scalar): mean over the samples z of
    l2 x MSE + lpips_weight x LPIPS between G_tuned and G_base at w_r (regulariser_ws)."""
    with torch.no_grad():
        w_r = regulariser_ws(G_base, w_pivot, z, alpha, psi)
        old = G_base.synthesize(w_r)
    new = G_tuned.synthesize(w_r)
    per_sample = l2 * (new - old).square().flatten(1).mean(1)
    if lpips is not None and lpips_weight > 0:
        per_sample = per_sample + lpips_weight * lpips(new, old)
    return per_sample.mean()


class DFeatureLoss:
    """DGP's feature loss: sum over D's deepest `n` block features of the L1 distance between
    the observation and the target, both upsampled (bilinear) to D's resolution when smaller.
    The target's features are computed once. Per image [N]."""

    def __init__(self, D, target: torch.Tensor, n: int = 8):
        if not hasattr(D, "block_features"):
            raise ValueError(f"the discriminator {type(D).__name__} has no block_features")
        self.D, self.n = D, max(1, int(n))
        self.size = D.img_resolution
        if target.shape[-1] > self.size or target.shape[-2] > self.size:
            raise ValueError(f"observations of {tuple(target.shape[-2:])} px are larger than "
                             f"the discriminator's {self.size} px")
        with torch.no_grad():
            self.target = [f.detach() for f in self._features(target)]

    def _features(self, x):
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, (self.size, self.size), mode="bilinear", align_corners=False)
        return self.D.block_features(x)[-self.n:]

    def __call__(self, observed: torch.Tensor) -> torch.Tensor:
        return sum((a - b).abs().flatten(1).mean(1)
                   for a, b in zip(self._features(observed), self.target))


def _lpips_or_none(device, size: int):
    from ..nets.vgg import load_lpips
    if size < LPIPS_MIN_SIZE:
        return None
    try:
        return load_lpips(device)
    except (OSError, RuntimeError, ValueError):
        return None


# --- tuning -----------------------------------------------------------------------------------
def tune(G: GeneratorBase, target: torch.Tensor, method, params: dict, kind: str = "pti",
         D=None, degrade: Callable | None = None, reference: torch.Tensor | None = None,
         loss: str = "auto", steps: int | None = None, seed: int = 0, progress: bool = False,
         **overrides) -> TuneResult:
    """Tune a copy of G on one observed image `target` [1, C, h, w] from the pivot `params`
    (the inversion's parameters, batch 1) of `method`; see the module doc. `degrade` maps G's
    image to the observation (restoration tasks); `reference` [1, C, H, W] is the clean image
    the final PSNR/SSIM are measured against (else the observation). `loss` is the
    reconstruction loss spec ("auto": MSE + LPIPS when its weights exist, else
    ReconstructionLoss("auto")); DGP with a D uses the D-feature loss + MSE instead."""
    t0 = time.time()
    s = tune_settings(kind, steps, **overrides)
    if target.dim() != 4 or target.shape[0] != 1:
        raise ValueError(f"tune takes one image [1, C, H, W], got {tuple(target.shape)}")
    device = G.device
    target = target.to(device)
    params = {k: v.detach().clone().to(device) for k, v in params.items()}
    G_base = copy.deepcopy(G).eval().requires_grad_(False)  # the caller's G is never touched
    G_t = copy.deepcopy(G_base)
    # validates shapes (degradation, reference) through the engine, on a copy
    invert(G_t, target, method, steps=0, loss="mse", degrade=degrade, reference=reference,
           params=params)
    groups = block_groups(G_t)
    run = _run_pti if kind == "pti" else _run_dgp
    bar = progress_bar(total=s["steps"], desc=f"tune {kind}", unit="step", enabled=progress,
                       leave=False)
    try:
        params, history, loss_info, info = run(G_t, G_base, target, method, params, s, D,
                                               degrade, reference, loss, seed, groups, bar)
    finally:
        bar.close()
    G_t.eval().requires_grad_(False)
    end = invert(G_t, target, method, steps=0, loss="mse", degrade=degrade,
                 reference=reference, params=params)
    final_loss = info.pop("final_loss")
    settings = json_safe({"kind": kind, **s, **info, "loss": loss_info["loss"], "seed": seed,
                          "d": D is not None, "degrade": getattr(degrade, "name", None)
                          if degrade is not None else None})
    return TuneResult(G=G_t, params={k: v.detach().cpu() for k, v in params.items()},
                      image=end.images, loss=final_loss, psnr=end.psnr[0], ssim=end.ssim[0],
                      history=history, seconds=time.time() - t0, settings=settings,
                      loss_info=loss_info)


def _reconstruction_loss(spec: str, device, size: int, l2: float, lpips_weight: float):
    """PTI's data term: MSE + LPIPS when its weights are installed (and the observation is
    big enough), else `spec` ("auto" = the project's fallback)."""
    if spec == "auto" and _lpips_or_none(device, size) is not None:
        return ReconstructionLoss(f"mse:{l2}+lpips:{lpips_weight}", device)
    return ReconstructionLoss(spec, device)


def _observe(degrade, image, target):
    observed = degrade(image) if degrade is not None else image
    if observed.shape != target.shape:
        raise ValueError(f"the degradation gives {tuple(observed.shape)}, the target is "
                         f"{tuple(target.shape)}")
    return observed


def _step_psnr(image, observed, target, reference) -> torch.Tensor:
    a, b = (image, reference) if reference is not None else (observed, target)
    return psnr(to_unit(a.detach()), to_unit(b.to(a.device)))[0]


def _record(history: list, bar, **values):
    """One step's values (tensors stay on the device; `_read_back` turns them into numbers
    once at the end); the bar's postfix, which must read them, only when it is shown."""
    history.append(values)
    bar.update(1)
    if not bar.disable:
        bar.set_postfix({k: f"{float(v):.4f}" for k, v in values.items() if k != "step"})


def _read_back(history: list) -> list[dict]:
    return [{k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in h.items()}
            for h in history]


def _named(G, names):
    params = dict(G.named_parameters())
    return [params[n] for n in names]


def _run_pti(G_t, G_base, target, method, params, s, D, degrade, reference, loss, seed,
             groups, bar):
    device = target.device
    rec_loss = _reconstruction_loss(loss, device, min(target.shape[-2:]), s["l2"], s["lpips"])
    bound = rec_loss.bind(target)
    loss_info = rec_loss.describe()
    tuned = _named(G_t, [n for _, names in groups for n in names])
    for p in tuned:
        p.requires_grad_(True)
    opt = torch.optim.Adam(tuned, lr=s["lr"])
    with torch.no_grad():
        w_pivot = pivot_ws(G_base, params)
    lpips = _lpips_or_none(device, G_t.img_resolution)
    alpha = (auto_alpha(G_base, w_pivot, s["reg_psi"], s["reg_alpha_fraction"])
             if s["reg_alpha"] == "auto" else float(s["reg_alpha"]))
    rng = torch.Generator().manual_seed(seed)
    history = []
    for step in range(s["steps"]):
        image = method.render(G_t, params)
        observed = _observe(degrade, image, target)
        data = bound(observed).sum()
        reg = torch.zeros((), device=device)
        if s["reg"] and s["reg_samples"] > 0 and step % s["reg_every"] == 0:
            z = torch.randn(s["reg_samples"], G_t.z_dim, generator=rng).to(w_pivot)
            reg = locality_loss(G_t, G_base, w_pivot, z, alpha, s["reg_psi"], s["reg_l2"],
                                lpips, s["reg_lpips"])
        opt.zero_grad(set_to_none=True)
        (data + reg).backward()
        opt.step()
        _record(history, bar, step=step, loss=data.detach(), reg=reg.detach(),
                psnr=_step_psnr(image, observed, target, reference))
    with torch.no_grad():
        final = bound(_observe(degrade, method.render(G_t, params), target)).item()
    info = {"reg_alpha_used": alpha, "reg_lpips_used": lpips is not None,
            "tuned_parameters": sum(p.numel() for p in tuned), "final_loss": final}
    return params, _read_back(history), loss_info, info


def stage_blocks(n_blocks: int, n_stages: int) -> list[int]:
    """How many blocks (coarse to fine) each DGP stage has unfrozen: ceil((s+1) B / S), so
    stage 1 tunes the coarsest block(s) and the last stage all of them."""
    return [math.ceil((s + 1) * n_blocks / n_stages) for s in range(n_stages)]


def _run_dgp(G_t, G_base, target, method, params, s, D, degrade, reference, loss, seed,
             groups, bar):
    device = target.device
    latents = {k: v.requires_grad_(True) for k, v in params.items()}
    if D is not None:
        D = copy.deepcopy(D).to(device).eval().requires_grad_(False)
        dfeat = DFeatureLoss(D, target, s["d_features"])
        # (the weights per stage are settings w_d and w_mse)
        loss_info = {"loss": "d-features+mse"}
        if loss != "auto":
            loss_info["note"] = f"loss {loss!r} not used: DGP with a discriminator"

        def data_term(observed, stage):
            mse = (observed - target).square().flatten(1).mean(1)
            return s["w_d"][stage] * dfeat(observed) + s["w_mse"][stage] * mse
    else:
        rec_loss = ReconstructionLoss(loss, device)
        bound = rec_loss.bind(target)
        loss_info = rec_loss.describe()

        def data_term(observed, stage):
            return bound(observed)
    blocks = [_named(G_t, names) for _, names in groups]
    betas = tuple(s["betas"])
    g_opt = torch.optim.Adam([{"params": b, "lr": 0.0} for b in blocks], betas=betas,
                             eps=s["eps"])
    z_opt = torch.optim.Adam(list(latents.values()), lr=s["z_lrs"][0], betas=betas,
                             eps=s["eps"])
    unfrozen = stage_blocks(len(blocks), len(s["iterations"]))
    history, step = [], 0
    for stage, iterations in enumerate(s["iterations"]):
        for i, (block, group) in enumerate(zip(blocks, g_opt.param_groups)):
            on = i < unfrozen[stage]
            for p in block:  # frozen blocks get no gradient at all (cheaper than lr 0)
                p.requires_grad_(on)
            group["lr"] = s["g_lrs"][stage] * s["lr_ratio"][stage] ** i if on else 0.0
        for group in z_opt.param_groups:
            group["lr"] = s["z_lrs"][stage]
        for _ in range(iterations):
            image = method.render(G_t, latents)
            observed = _observe(degrade, image, target)
            data = data_term(observed, stage).sum()
            nll = (latents["z"].square() / 2).mean() if "z" in latents else 0.0
            g_opt.zero_grad(set_to_none=True)
            z_opt.zero_grad(set_to_none=True)
            (data + s["w_nll"] * nll).backward()
            g_opt.step()
            z_opt.step()
            _record(history, bar, step=step, stage=stage + 1, loss=data.detach(),
                    psnr=_step_psnr(image, observed, target, reference))
            step += 1
    last = len(s["iterations"]) - 1
    with torch.no_grad():
        final = data_term(_observe(degrade, method.render(G_t, latents), target), last).item()
    # per stage, the finest block it tunes (all coarser ones are tuned too)
    info = {"stage_blocks": [groups[k - 1][0] if k else None for k in unfrozen],
            "final_loss": final}
    return {k: v.detach() for k, v in latents.items()}, _read_back(history), loss_info, info


# --- deltas -----------------------------------------------------------------------------------
DELTA_FORMAT = "ganprior-tuning-delta"


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a, b = a.detach().cpu().contiguous(), b.detach().cpu().contiguous()
    return torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


def save_delta(path, G_tuned: GeneratorBase, G_base: GeneratorBase, meta: dict):
    """Write the tensors of G_tuned that differ (bit for bit) from G_base, with the base
    model's fingerprint and `meta` (JSON), atomically, as safetensors."""
    from safetensors.torch import save_file
    from .files import model_fingerprint
    base, tuned = G_base.state_dict(), G_tuned.state_dict()
    if set(base) != set(tuned):
        raise ValueError("the tuned generator and the base model have different tensors")
    changed = {k: v.detach().cpu().contiguous().clone() for k, v in tuned.items()
               if not _same_bits(v, base[k])}
    metadata = {"format": DELTA_FORMAT, "version": "1",
                "base_fingerprint": model_fingerprint(G_base),
                "meta": json.dumps(json_safe(meta), allow_nan=False)}
    return atomic_write(path, lambda tmp: save_file(changed, tmp, metadata=metadata))


def read_delta(path) -> tuple[dict[str, torch.Tensor], dict]:
    """(changed tensors, metadata with "meta" parsed) of a delta file; ValueError if it is
    not one."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors' own error types vary by version
        raise ValueError(f"{path} is not a readable tuning delta ({e})") from None
    if metadata.get("format") != DELTA_FORMAT:
        raise ValueError(f"{path} is not a ganprior tuning delta")
    metadata["meta"] = json.loads(metadata.get("meta", "{}"))
    return tensors, metadata


def load_delta(path, G_base: GeneratorBase) -> GeneratorBase:
    """A copy of G_base with the delta's tensors in place: the tuned generator, exactly.
    Refuses a delta made for another base model."""
    from .files import model_fingerprint
    tensors, metadata = read_delta(path)
    want, have = metadata.get("base_fingerprint", ""), model_fingerprint(G_base)
    if want != have:
        raise ValueError(f"{path} was tuned from another model (base {want[:12]}, this model "
                         f"is {have[:12]})")
    G = copy.deepcopy(G_base)
    state = G.state_dict()
    for k, v in tensors.items():
        if k not in state or state[k].shape != v.shape or state[k].dtype != v.dtype:
            raise ValueError(f"{path}: tensor {k!r} does not fit the model")
    with torch.no_grad():
        for k, v in tensors.items():
            state[k].copy_(v)
    return G
