"""The inversion engine: one optimisation loop for every method and every generator.

    result = invert(G, targets, make_method("mganprior", codes=20, layer="b16"), steps=300)

Targets are [N, C, H, W] images in [-1, 1] at the model's resolution. Each image is optimised
independently (Adam is element-wise and the batch loss is a sum of per-image losses), so a
batch gives the same result as one image at a time, only faster. The best parameters seen for
each image (by its loss) are kept. `degrade` (optional) maps the generator's output to the
observed space before the loss: restoration tasks are inversions through a degradation.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm import tqdm

from ..metrics import psnr, ssim, to_unit
from ..nets.base import GeneratorBase
from .losses import ReconstructionLoss


@dataclass
class InversionResult:
    params: dict[str, torch.Tensor]  # best parameters per image (detached, on CPU)
    images: torch.Tensor             # reconstructions [N, C, H, W] in [-1, 1]
    loss: list[float]                # final (best) loss per image
    psnr: list[float]                # against the target, in the observed space
    ssim: list[float]
    history: list[dict] = field(default_factory=list)  # per step: {"step", "loss": [N], "psnr": [N]}
    seconds: float = 0.0
    steps: int = 0                   # steps actually run (early stopping may end sooner)
    loss_info: dict = field(default_factory=dict)

    def image_record(self, i: int) -> dict:
        """The JSON-ready summary of image i."""
        return {"loss": self.loss[i], "psnr": self.psnr[i], "ssim": self.ssim[i],
                "steps": self.steps, "seconds": self.seconds, **self.loss_info,
                "history": [{"step": h["step"], "loss": h["loss"][i], "psnr": h["psnr"][i]}
                            for h in self.history]}


def lr_at(schedule: str, lr: float, t: float) -> float:
    """'constant', or 'nvidia': NVIDIA projector's ramp-up (first 5 %) and cosine ramp-down
    (last 25 %) of the learning rate; t in [0, 1)."""
    if schedule == "constant":
        return lr
    if schedule == "nvidia":
        ramp = min(1.0, (1.0 - t) / 0.25)
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        return lr * ramp * min(1.0, t / 0.05)
    raise ValueError(f"unknown schedule {schedule!r}: constant or nvidia")


def invert(G: GeneratorBase, targets: torch.Tensor, method, steps: int = 300, lr: float = 0.03,
           loss: str | ReconstructionLoss = "auto", seed: int = 0,
           degrade: Callable[[torch.Tensor], torch.Tensor] | None = None, schedule: str = "constant",
           patience: int = 0, tol: float = 1e-4, progress: bool = False,
           params: dict | None = None) -> InversionResult:
    """Optimise `method`'s parameters so that G renders `targets` (see module doc).

    patience > 0 stops when the mean loss has not improved by a relative `tol` for that many
    steps. `params` (optional) starts from given parameters instead of method.init (hybrid).
    """
    if steps < 0:
        raise ValueError("steps must be >= 0")
    if not method.optimises:
        steps = 0
    device = G.device
    targets = targets.to(device)
    n = targets.shape[0]
    expected = (G.img_channels, G.img_resolution, G.img_resolution)
    if degrade is None and tuple(targets.shape[1:]) != expected:
        raise ValueError(f"targets are {tuple(targets.shape[1:])}, the model makes {expected}")
    loss_fn = loss if isinstance(loss, ReconstructionLoss) else ReconstructionLoss(loss, device)
    observe = degrade or (lambda x: x)
    G.requires_grad_(False)

    rng = torch.Generator().manual_seed(seed)
    p = params if params is not None else method.init(G, targets, rng)
    p = {k: v.detach().clone().to(device).requires_grad_(True) for k, v in p.items()}
    best = {k: v.detach().clone() for k, v in p.items()}
    best_loss = torch.full((n,), float("inf"), device=device)
    opt = torch.optim.Adam(p.values(), lr=lr)

    history, t0 = [], time.time()
    stale, ref_loss, done = 0, float("inf"), 0
    bar = tqdm(range(steps), desc=f"invert {method.name}", unit="step", disable=not progress,
               leave=False)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(schedule, lr, step / max(steps, 1))
        method.on_step(step, steps)
        observed = observe(method.render(G, p))
        per_image = loss_fn(observed, targets) + method.penalty(G, p)
        with torch.no_grad():  # the loss and PSNR of these parameters, before the update
            improved = per_image < best_loss
            best_loss = torch.where(improved, per_image.detach(), best_loss)
            for k in p:
                best[k][improved] = p[k].detach()[improved]
            quality = psnr(to_unit(observed), to_unit(targets))
        history.append({"step": step, "loss": per_image.tolist(), "psnr": quality.tolist()})
        opt.zero_grad(set_to_none=True)
        per_image.sum().backward()
        opt.step()
        method.after_step(p)
        done = step + 1
        mean = per_image.mean().item()
        bar.set_postfix(loss=f"{mean:.4f}", psnr=f"{quality.mean().item():.2f}")
        if patience:
            if mean < ref_loss * (1 - tol):
                ref_loss, stale = mean, 0
            else:
                stale += 1
                if stale >= patience:
                    break

    with torch.no_grad():  # best starts as the initial parameters (the answer when steps == 0)
        image = method.render(G, best)
        observed = observe(image)
        final_loss = loss_fn(observed, targets)
        q_psnr = psnr(to_unit(observed), to_unit(targets))
        q_ssim = ssim(to_unit(observed), to_unit(targets))
    return InversionResult(
        params={k: v.detach().cpu() for k, v in best.items()}, images=image.detach().cpu(),
        loss=final_loss.tolist(), psnr=q_psnr.tolist(), ssim=q_ssim.tolist(), history=history,
        seconds=time.time() - t0, steps=done, loss_info=loss_fn.describe())
