"""The inversion engine: one optimisation loop for every method and every generator.

    result = invert(G, targets, make_method("mganprior", codes=20, layer="b16"), steps=300)

or, driving the loop yourself (what `invert` does, and what an interactive editor does):

    session = InversionSession(G, targets, method, steps=300)
    while not session.done:
        session.step()          # one Adam update of every image still running
        state = session.state() # current image, parameters, loss, PSNR
    result = session.result()   # the best parameters seen for each image

Targets are [N, C, H, W] images in [-1, 1]. Each image is optimised independently, so a batch
gives the same result as one image at a time, only faster:
- image i's initial values come from its own seed (`seeds[i]`, default `seed + i`);
- Adam is element-wise and the batch loss is a sum of per-image losses;
- early stopping (`patience`) is decided per image: a stopped image's parameters stay put
  while the others go on.
The best parameters seen for each image (by its loss) are kept.

`degrade` (optional) maps the generator's output to the observed space before the loss
(restoration tasks are inversions through a degradation; its output must have the targets'
shape). The quality metrics are then measured on the observation, or, when a clean
`reference` at the model's resolution is given, on the generator's image against it.
`frozen` names parameters that are kept at their initial values (e.g. mGANprior's alpha while
the codes are edited).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..metrics import psnr, ssim, to_unit
from ..nets.base import GeneratorBase
from ..progress import progress_bar
from .losses import MS_SSIM_MIN_SIZE, ReconstructionLoss


@dataclass
class InversionResult:
    params: dict[str, torch.Tensor]  # best parameters per image (detached, on CPU)
    images: torch.Tensor             # reconstructions [N, C, H, W] in [-1, 1]
    loss: list[float]                # final (best) loss per image
    psnr: list[float]                # against `reference` if given, else the observed target
    ssim: list[float]
    history: list[dict] = field(default_factory=list)  # per step: {"step", "loss": [N], "psnr": [N]}
    seconds: float = 0.0
    steps: int = 0                   # steps the batch ran (the longest-running image)
    loss_info: dict = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)        # per image: seed of its initial values
    image_steps: list[int] = field(default_factory=list)  # per image: steps it ran

    def image_record(self, i: int) -> dict:
        """The JSON-ready summary of image i."""
        steps = self.image_steps[i] if self.image_steps else self.steps
        return {"loss": self.loss[i], "psnr": self.psnr[i], "ssim": self.ssim[i],
                "steps": steps, "seed": self.seeds[i] if self.seeds else None,
                "seconds": self.seconds, **self.loss_info,
                "history": [{"step": h["step"], "loss": h["loss"][i], "psnr": h["psnr"][i]}
                            for h in self.history[:steps]]}


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


def image_seeds(seed: int | Sequence[int], n: int) -> list[int]:
    """One seed per image: `seed + i`, or the given list."""
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} images")
    return seeds


def check_settings(steps: int, lr: float, patience: int, tol: float):
    if steps < 0:
        raise ValueError("steps must be >= 0")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"the learning rate must be a finite number > 0, not {lr}")
    if patience < 0:
        raise ValueError("patience must be >= 0")
    if not (math.isfinite(tol) and 0 <= tol < 1):
        raise ValueError(f"tol must be in [0, 1), not {tol}")


def quality(a: torch.Tensor, b: torch.Tensor, fn=psnr) -> torch.Tensor:
    """PSNR (or `fn=ssim`) per image between images in [-1, 1]; SSIM is NaN on images
    smaller than its 11-px window."""
    if fn is ssim and min(a.shape[-2:]) < MS_SSIM_MIN_SIZE:
        return torch.full((a.shape[0],), float("nan"))
    return fn(to_unit(a), to_unit(b))


def _per_image(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[N] mask -> broadcastable against a [N, ...] tensor."""
    return mask.reshape(-1, *([1] * (like.dim() - 1)))


class InversionSession:
    """One optimisation of a batch of targets, a step at a time (see module doc)."""

    def __init__(self, G: GeneratorBase, targets: torch.Tensor, method, steps: int = 300,
                 lr: float = 0.03, loss: str | ReconstructionLoss = "auto",
                 seed: int | Sequence[int] = 0,
                 degrade: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 reference: torch.Tensor | None = None, schedule: str = "constant",
                 patience: int = 0, tol: float = 1e-4, params: dict | None = None,
                 frozen: Sequence[str] = ()):
        check_settings(steps, lr, patience, tol)
        lr_at(schedule, lr, 0.0)  # validates the schedule's name
        if targets.dim() != 4:
            raise ValueError(f"targets must be [N, C, H, W], got {tuple(targets.shape)}")
        self.G, self.method, self.degrade = G, method, degrade
        self.steps = steps if method.optimises else 0
        self.lr, self.schedule, self.patience, self.tol = lr, schedule, patience, tol
        device = G.device
        self.targets = targets.to(device)
        n = self.targets.shape[0]
        if not bool(torch.isfinite(self.targets).all()):
            raise ValueError("the targets contain NaN or infinite values")
        model_shape = (G.img_channels, G.img_resolution, G.img_resolution)
        if degrade is None and tuple(self.targets.shape[1:]) != model_shape:
            raise ValueError(f"targets are {tuple(self.targets.shape[1:])}, the model makes "
                             f"{model_shape}")
        if reference is not None:
            reference = reference.to(device)
            if tuple(reference.shape) != (n, *model_shape):
                raise ValueError(f"reference is {tuple(reference.shape)}, expected "
                                 f"{(n, *model_shape)} (the model's images)")
        self.reference = reference
        loss_fn = loss if isinstance(loss, ReconstructionLoss) else ReconstructionLoss(loss, device)
        self.loss_fn = loss_fn.bind(self.targets)
        self.loss_info = loss_fn.describe()
        G.requires_grad_(False)

        self.seeds = image_seeds(seed, n)
        rngs = [torch.Generator().manual_seed(s) for s in self.seeds]
        p = params if params is not None else method.init(G, self.targets, rngs)
        unknown = set(frozen) - set(p)
        if unknown:
            raise ValueError(f"cannot freeze {', '.join(sorted(unknown))}: the method "
                             f"optimises {', '.join(p)}")
        for k, v in p.items():
            if v.shape[0] != n:
                raise ValueError(f"parameter {k!r} has {v.shape[0]} rows for {n} images")
        self.frozen = tuple(frozen)
        self.params = {k: v.detach().clone().to(device).requires_grad_(k not in self.frozen)
                       for k, v in p.items()}
        self.best = {k: v.detach().clone() for k, v in self.params.items()}
        self.best_loss = torch.full((n,), float("inf"), device=device)
        self._new_optimiser()
        # early stopping, per image
        self.active = torch.ones(n, dtype=torch.bool, device=device)
        self.ref_loss = torch.full((n,), float("inf"), device=device)
        self.stale = torch.zeros(n, dtype=torch.long, device=device)
        self.image_steps = torch.zeros(n, dtype=torch.long, device=device)
        self.step_count, self.stopped = 0, False
        self.history: list[dict] = []
        self.last: dict = {}
        self.seconds, self._checked_shape = 0.0, False

    def _new_optimiser(self):
        trainable = [v for k, v in self.params.items() if k not in self.frozen]
        self.opt = torch.optim.Adam(trainable, lr=self.lr) if trainable else None

    @property
    def done(self) -> bool:
        if self.stopped or self.step_count >= self.steps or self.opt is None:
            return True
        # without early stopping every image runs every step: no need to ask the device
        return bool(self.patience) and not bool(self.active.any())

    def _observe(self, image: torch.Tensor) -> torch.Tensor:
        observed = self.degrade(image) if self.degrade is not None else image
        if not self._checked_shape:
            if observed.shape != self.targets.shape:
                raise ValueError(f"the degradation gives {tuple(observed.shape)}, the targets "
                                 f"are {tuple(self.targets.shape)}")
            self._checked_shape = True
        return observed

    def _quality(self, image, observed, fn=psnr) -> torch.Tensor:
        a, b = (image, self.reference) if self.reference is not None else (observed, self.targets)
        return quality(a, b, fn)

    def step(self) -> dict:
        """One Adam update of every running image; returns this step's {"step", "loss",
        "psnr", "active"} ([N] tensors on the model's device: loss and PSNR of the parameters
        before the update)."""
        if self.done:
            raise RuntimeError("the session is done")
        t0, step, p = time.time(), self.step_count, self.params
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.schedule, self.lr, step / max(self.steps, 1))
        self.method.on_step(step, self.steps)
        image = self.method.render(self.G, p)
        observed = self._observe(image)
        per_image = self.loss_fn(observed) + self.method.penalty(self.G, p)
        with torch.no_grad():
            loss = per_image.detach()
            improved = (loss < self.best_loss) & self.active
            self.best_loss = torch.where(improved, loss, self.best_loss)
            for k in p:
                self.best[k] = torch.where(_per_image(improved, p[k]), p[k].detach(), self.best[k])
            quality = self._quality(image, observed)
            running = self.active.clone()
        self.opt.zero_grad(set_to_none=True)
        per_image.sum().backward()
        held = None  # parameters of stopped images, put back after the update
        if self.patience and not bool(running.all()):
            held = {k: p[k].detach().clone() for k in p}
        self.opt.step()
        self.method.after_step(p)
        with torch.no_grad():
            if held is not None:  # images that stopped keep their parameters
                for k in p:
                    p[k].copy_(torch.where(_per_image(running, p[k]), p[k], held[k]))
            self.image_steps += running.long()
            if self.patience:
                better = loss < self.ref_loss * (1 - self.tol)
                self.ref_loss = torch.where(better & running, loss, self.ref_loss)
                self.stale = torch.where(better, 0, self.stale + 1)
                self.active &= self.stale < self.patience
        self.step_count += 1
        # kept on the device: reading them back every step would wait for the device
        self.last = {"step": step, "loss": loss, "psnr": quality, "active": running}
        self.history.append(self.last)
        self.seconds += time.time() - t0
        return self.last

    def stop(self):
        """End the optimisation (the best parameters so far are the result)."""
        self.stopped = True

    def state(self) -> dict:
        """The current parameters (detached), their image and the last step's loss and PSNR."""
        with torch.no_grad():
            image = self.method.render(self.G, self.params)
        return {"step": self.step_count, "image": image.detach(),
                "params": {k: v.detach().clone() for k, v in self.params.items()},
                "loss": self.last.get("loss"), "psnr": self.last.get("psnr"),
                "active": self.active.cpu()}

    def restore(self, params: dict[str, torch.Tensor]):
        """Continue from `params` (e.g. an earlier `state()["params"]`: undo); the
        optimiser's moments start afresh, as they would for a new run from there."""
        if set(params) != set(self.params):
            raise ValueError(f"restore needs {', '.join(self.params)}, got {', '.join(params)}")
        with torch.no_grad():
            for k, v in params.items():
                if v.shape != self.params[k].shape:
                    raise ValueError(f"parameter {k!r} is {tuple(v.shape)}, expected "
                                     f"{tuple(self.params[k].shape)}")
                self.params[k].copy_(v)
        self._new_optimiser()

    def result(self) -> InversionResult:
        """The best parameters seen for each image, rendered and measured (the initial
        parameters when no step ran)."""
        t0 = time.time()
        with torch.no_grad():
            image = self.method.render(self.G, self.best)
            observed = self._observe(image)
            final_loss = self.loss_fn(observed)  # the reconstruction term alone
            q_psnr = self._quality(image, observed)
            q_ssim = self._quality(image, observed, ssim)
        self.seconds += time.time() - t0
        losses = torch.stack([h["loss"] for h in self.history]).tolist() if self.history else []
        psnrs = torch.stack([h["psnr"] for h in self.history]).tolist() if self.history else []
        history = [{"step": h["step"], "loss": a, "psnr": b}
                   for h, a, b in zip(self.history, losses, psnrs)]
        return InversionResult(
            params={k: v.detach().cpu() for k, v in self.best.items()},
            images=image.detach().cpu(), loss=final_loss.tolist(), psnr=q_psnr.tolist(),
            ssim=q_ssim.tolist(),
            history=history, seconds=self.seconds, steps=self.step_count,
            loss_info=self.loss_info, seeds=self.seeds, image_steps=self.image_steps.tolist())


def invert(G: GeneratorBase, targets: torch.Tensor, method, steps: int = 300, lr: float = 0.03,
           loss: str | ReconstructionLoss = "auto", seed: int | Sequence[int] = 0,
           degrade: Callable[[torch.Tensor], torch.Tensor] | None = None,
           reference: torch.Tensor | None = None, schedule: str = "constant",
           patience: int = 0, tol: float = 1e-4, progress: bool = False,
           params: dict | None = None, frozen: Sequence[str] = ()) -> InversionResult:
    """Optimise `method`'s parameters so that G renders `targets` (see module doc).

    patience > 0 stops an image when its loss has not improved by a relative `tol` for that
    many steps. `params` (optional) starts from given parameters instead of method.init.
    """
    session = InversionSession(G, targets, method, steps=steps, lr=lr, loss=loss, seed=seed,
                               degrade=degrade, reference=reference, schedule=schedule,
                               patience=patience, tol=tol, params=params, frozen=frozen)
    bar = progress_bar(total=session.steps, desc=f"invert {method.name}", unit="step",
                       enabled=progress, leave=False)
    while not session.done:
        last = session.step()
        bar.update(1)
        if not bar.disable:  # reading the loss back waits for the device: only when shown
            bar.set_postfix(loss=f"{last['loss'].mean():.4f}", psnr=f"{last['psnr'].mean():.2f}")
    bar.close()
    return session.result()
