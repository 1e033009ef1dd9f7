"""StyleGAN2 training with NVIDIA's recipe (stylegan2-ada-pytorch `training_loop.py`, `loss.py`).

- Non-saturating logistic loss; lazy R1 on reals (gamma, every 16 minibatches) and path-length
  regularisation (weight 2, every 4, batch shrink 2, decay 0.01), each scaled by its interval.
- A minibatch runs NVIDIA's phases in order, each its own optimiser step: G main, G reg (every
  4th), D main, D reg (every 16th). Adam betas (0, 0.99), eps 1e-8, with the lazy-regularisation
  correction lr * c and betas ** c, c = interval / (interval + 1): a regularised network takes
  interval + 1 steps per interval minibatches. Mapping lr x0.01 and equalised LR live in the layers.
- Style mixing with probability 0.9; G EMA with half-life `ema_kimg` and ramp-up 0.05;
  minibatch-stddev group size from the preset; x-flips from the dataset.
- Presets mirror NVIDIA's: `auto` (their formula from resolution and GPU count), `paper256`,
  `cifar`; model size can be overridden for CPU-sized models.
- Output folder: `state.pt` (everything needed to resume exactly, written atomically),
  `network-snapshot-KKKKKK.{safetensors,json}` (native G_ema + D), `fakesKKKKKK.png` sample
  grids, `log.jsonl` (kimg, s/kimg, losses, quality). Rerunning the same command resumes.
- Quality at every snapshot, offline: a classifier two-sample test between G_ema samples and
  the last tenth of the data (up to 500 images), which training never sees (0.5 is best).

- Several processes: `torchrun --nproc_per_node K -m ganprior.cli train stylegan2 ...` splits
  the batch across processes (gloo on CPU, nccl on CUDA); rank 0 writes all outputs.

- ADA (`aug="ada"`, NVIDIA's default): the "bgc" pipe (blits, geometric and colour ops),
  p adapted towards E[sign(D(real))] = 0.6 every 4 minibatches (see `augment.py`).
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoints import save_native
from ..device import describe_device
from ..distributed import average_gradients
from ..files import atomic_write
from ..images import grid, save_image, to_uint8
from ..nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from ..progress import progress_bar

PRESETS = {
    "paper256": dict(mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1.0, ema=20, ramp=None,
                     map=8, pl_weight=2.0, mixing=0.9, d_arch="resnet"),
    "cifar": dict(mb=64, mbstd=32, fmaps=1.0, lrate=0.0025, gamma=0.01, ema=500, ramp=0.05,
                  map=2, pl_weight=0.0, mixing=0.0, d_arch="orig"),
}


def resolve_config(cfg: str, resolution: int, gpus: int = 1, c_dim: int = 0, aug: str = "ada",
                   **overrides) -> dict:
    """Hyperparameters and network kwargs for a preset; `overrides` (batch, channel_base,
    channel_max, map, z_dim, w_dim, gamma, lrate, ema, mbstd) replace single values."""
    if aug not in ("ada", "noaug"):
        raise ValueError(f"unknown --aug {aug!r}: ada or noaug")
    if cfg == "auto":  # NVIDIA's heuristics
        mb = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
        spec = dict(mb=mb, mbstd=min(mb // gpus, 4), fmaps=1.0 if resolution >= 512 else 0.5,
                    lrate=0.002 if resolution >= 1024 else 0.0025,
                    gamma=0.0002 * resolution ** 2 / mb, ema=mb * 10 / 32, ramp=0.05, map=2,
                    pl_weight=2.0, mixing=0.9, d_arch="resnet")
    elif cfg in PRESETS:
        spec = dict(PRESETS[cfg])
    else:
        raise ValueError(f"unknown --cfg {cfg!r}: auto, paper256 or cifar")
    o = {k: v for k, v in overrides.items() if v is not None}
    if "batch" in o:
        spec["mb"] = o.pop("batch")
    for k in ("gamma", "lrate", "ema", "mbstd", "map"):
        if k in o:
            spec[k] = o.pop(k)
    channel_base = o.pop("channel_base", int(spec["fmaps"] * 32768))
    channel_max = o.pop("channel_max", 512)
    z_dim, w_dim = o.pop("z_dim", 512), o.pop("w_dim", 512)
    if o:
        raise ValueError(f"unknown overrides {sorted(o)}")
    spec["G_kwargs"] = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution,
                            img_channels=3, mapping_kwargs=dict(num_layers=spec["map"]),
                            synthesis_kwargs=dict(channel_base=channel_base,
                                                  channel_max=channel_max, conv_clamp=256))
    spec["D_kwargs"] = dict(c_dim=c_dim, img_resolution=resolution, img_channels=3,
                            architecture=spec["d_arch"], channel_base=channel_base,
                            channel_max=channel_max, conv_clamp=256,
                            epilogue_kwargs=dict(mbstd_group_size=spec["mbstd"]))
    spec.update(cfg=cfg, G_reg_interval=4, D_reg_interval=16, pl_batch_shrink=2, pl_decay=0.01,
                aug=aug, ada_target=0.6)
    return spec


# --- loss terms (plain functions: tested against hand-computed values) -------------------------

def lazy_adam_settings(lr: float, betas: tuple, interval: int | None) -> tuple[float, tuple]:
    """Adam's (lr, betas) for a network regularised every `interval` minibatches (NVIDIA's
    lazy-regularisation correction): it takes interval + 1 optimiser steps per interval
    minibatches, so c = interval / (interval + 1) and (lr * c, beta ** c) keep the per-minibatch
    step size and moment half-lives. `interval` None (no lazy regularisation): unchanged."""
    if interval is None:
        return lr, tuple(betas)
    c = interval / (interval + 1)
    return lr * c, tuple(b ** c for b in betas)


def ema_beta(batch: int, ema_kimg: float, rampup: float | None, cur_nimg: int) -> float:
    """G_ema's decay for one minibatch: half-life `ema_kimg` thousand images, shortened during
    ramp-up to `rampup` x the images seen so far (0 at the start: G_ema = G)."""
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


def r1_loss(penalty: torch.Tensor, gamma: float, interval: int) -> torch.Tensor:
    """The lazy R1 term: mean penalty x gamma / 2, x interval (it runs every interval-th
    minibatch, so its gradient is scaled to weigh as much as an every-minibatch R1)."""
    return penalty.mean() * (gamma / 2) * interval


def pl_loss(penalty: torch.Tensor, pl_weight: float, interval: int) -> torch.Tensor:
    """The lazy path-length term: mean penalty x pl_weight x interval (as r1_loss)."""
    return penalty.mean() * pl_weight * interval


def r1_penalty(D, real, c):
    """Per-sample ||grad_x D(x)||^2 on real images (to be scaled by gamma / 2)."""
    real = real.detach().requires_grad_(True)
    logits = D(real, c)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.square().sum(dim=[1, 2, 3])


def path_length_penalty(img, ws, pl_mean, decay):
    """(per-sample (|J_w^T y| - a)^2, new running mean a) with y ~ N(0, I) / sqrt(H W), for
    images `img` synthesised from `ws`."""
    noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    new_mean = pl_mean.lerp(lengths.mean(), decay)  # the penalty's gradient goes through it too
    return (lengths - new_mean).square(), new_mean.detach()


def run_generator(G, z, c, mixing_prob):
    """G forward as in training: random noise, w_avg tracking, style mixing."""
    ws = G.mapping(z, c, update_w_avg=True)
    if mixing_prob > 0:
        cutoff = int(torch.randint(1, ws.shape[1], ()))
        if torch.rand(()) >= mixing_prob:
            cutoff = ws.shape[1]
        ws = torch.cat([ws[:, :cutoff], G.mapping(torch.randn_like(z), c)[:, cutoff:]], dim=1)
    return G.synthesis(ws, noise_mode="random"), ws


def holdout_size(n_images: int) -> int:
    """The last tenth of the data, up to 500 images, is never trained on: it is the real side of
    the C2ST quality measure."""
    return min(500, n_images // 10)


def holdout_images(dataset) -> torch.Tensor:
    return torch.stack([dataset.image(i) for i in range(len(dataset) - holdout_size(len(dataset)),
                                                        len(dataset))])


class Trainer:
    """One process's share of training. With `world` > 1 (torchrun), every rank builds the same
    networks (same seed), draws its own data and noise, and gradients are averaged across ranks
    before each optimiser step (all_reduce, as NVIDIA's training loop does by hand)."""

    def __init__(self, dataset, spec: dict, seed: int = 0, device="cpu", rank: int = 0,
                 world: int = 1, fid_images: int = 10000):
        self.dataset, self.spec, self.device = dataset, spec, torch.device(device)
        # not in spec: a measurement setting, which may change when a run is resumed
        self.fid_images, self._fid_real, self._detector = fid_images, None, None
        self.seed, self.rank, self.world = seed, rank, world
        if spec["mb"] % world:
            raise ValueError(f"batch {spec['mb']} is not divisible by {world} processes")
        per_process, group = spec["mb"] // world, spec["mbstd"]
        if group is not None and group < 1:
            raise ValueError(f"minibatch-stddev group {group}: must be at least 1")
        if group and per_process % min(group, per_process):
            raise ValueError(f"the minibatch-stddev group of {group} must divide the batch per "
                             f"process ({per_process}); pick a batch that is a multiple of it")
        torch.manual_seed(seed)
        self.G = StyleGAN2Generator(**spec["G_kwargs"]).train().to(self.device)
        self.D = StyleGAN2Discriminator(**spec["D_kwargs"]).train().to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opts = {}
        for name, net, interval in (("G", self.G, spec["G_reg_interval"]),
                                    ("D", self.D, spec["D_reg_interval"])):
            lr, betas = lazy_adam_settings(spec["lrate"], (0.0, 0.99), interval)
            self.opts[name] = torch.optim.Adam(net.parameters(), lr=lr, betas=betas, eps=1e-8)
        from .augment import AugmentPipe
        self.augment = AugmentPipe(target=spec.get("ada_target", 0.6)) if spec.get("aug") == "ada" else None
        self.n_holdout = holdout_size(len(dataset))
        self.n_train = len(dataset) - self.n_holdout
        self.pl_mean = torch.zeros([], device=self.device)
        self.nimg, self.step = 0, 0
        self.data_rng = torch.Generator()
        self.fixed_z = torch.randn(32, self.G.z_dim, generator=torch.Generator().manual_seed(seed + 1))

    # --- data -------------------------------------------------------------------------------
    def real_batch(self, n):
        idx = torch.randint(self.n_train, (n,), generator=self.data_rng).tolist()
        imgs, cs = zip(*(self.dataset[i] for i in idx))
        return torch.stack(imgs).to(self.device), torch.stack(cs).to(self.device)

    def random_c(self, n):
        if self.G.c_dim == 0:
            return torch.zeros(n, 0, device=self.device)
        # labels drawn from the training data's distribution (no image needs loading)
        idx = torch.randint(self.n_train, (n,), generator=self.data_rng)
        labels = torch.as_tensor(self.dataset.labels)[idx]
        return F.one_hot(labels, self.G.c_dim).float().to(self.device)

    # --- plumbing for a step: randomness, augmentation, optimiser ----------------------------
    def _seed_step(self):
        """All randomness of a step derives from (seed, step, rank): resuming needs no RNG state."""
        step_seed = ((self.seed * 1_000_003 + self.step) * 1024 + self.rank) % (2 ** 63)
        torch.manual_seed(step_seed)
        self.data_rng.manual_seed(step_seed)

    def aug(self, x):
        return x if self.augment is None else self.augment(x)

    def d_real(self, x, c):
        """D on (augmented) reals; ADA counts the signs of every real pass, R1's included."""
        logits = self.D(self.aug(x), c)
        if self.augment is not None:
            self.augment.accumulate(logits)
        return logits

    def _apply(self, name, net, loss):
        """Backward, average gradients across processes, optimiser step."""
        self.opts[name].zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(net.parameters(), self.world)
        for p in net.parameters():  # as NVIDIA's loop: one bad minibatch must not poison Adam
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        self.opts[name].step()

    def _sum_over_processes(self, values: list) -> list:
        if self.world == 1:
            return values
        import torch.distributed as dist
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    # --- one minibatch: NVIDIA's phases Gmain, Greg (every 4), Dmain, Dreg (every 16) -----------
    def train_step(self) -> dict:
        s, n = self.spec, self.spec["mb"] // self.world
        G, D, logs = self.G, self.D, {}
        self._seed_step()
        real, real_c = self.real_batch(n)

        G.requires_grad_(True)
        D.requires_grad_(False)
        z, c = torch.randn(n, G.z_dim, device=self.device), self.random_c(n)
        fake, _ = run_generator(G, z, c, s["mixing"])
        loss = F.softplus(-D(self.aug(fake), c)).mean()
        logs["loss_G"] = loss.item()
        self._apply("G", G, loss)
        if s["pl_weight"] > 0 and self.step % s["G_reg_interval"] == 0:
            m = max(n // s["pl_batch_shrink"], 1)
            z, c = torch.randn(m, G.z_dim, device=self.device), self.random_c(m)
            img, ws = run_generator(G, z, c, s["mixing"])
            pen, self.pl_mean = path_length_penalty(img, ws, self.pl_mean, s["pl_decay"])
            logs["pl_penalty"] = pen.mean().item()
            self._apply("G", G, pl_loss(pen, s["pl_weight"], s["G_reg_interval"]))

        G.requires_grad_(False)
        D.requires_grad_(True)
        with torch.no_grad():
            z, c = torch.randn(n, G.z_dim, device=self.device), self.random_c(n)
            fake, _ = run_generator(G, z, c, s["mixing"])
        loss = F.softplus(D(self.aug(fake), c)).mean() + F.softplus(-self.d_real(real, real_c)).mean()
        logs["loss_D"] = loss.item()
        self._apply("D", D, loss)
        if s["gamma"] > 0 and self.step % s["D_reg_interval"] == 0:
            pen = r1_penalty(self.d_real, real, real_c)
            logs["r1_penalty"] = pen.mean().item()
            self._apply("D", D, r1_loss(pen, s["gamma"], s["D_reg_interval"]))
        D.requires_grad_(False)

        if self.augment is not None:
            self.augment.adjust(s["mb"], reduce=self._sum_over_processes)
            logs["augment_p"] = self.augment.p
        self.update_ema()  # ramp-up from the images seen before this minibatch, as NVIDIA's
        self.nimg += s["mb"]  # the global batch
        self.step += 1
        return logs

    @torch.no_grad()
    def update_ema(self):
        beta = ema_beta(self.spec["mb"], self.spec["ema"], self.spec["ramp"], self.nimg)
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # --- state ------------------------------------------------------------------------------
    def state_dict(self):
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "opt_G": self.opts["G"].state_dict(), "opt_D": self.opts["D"].state_dict(),
                "pl_mean": self.pl_mean, "nimg": self.nimg, "step": self.step,
                "seed": self.seed, "spec": json.dumps(self.spec),
                "augment": self.augment.state() if self.augment is not None else []}

    def load_state_dict(self, st):
        # --kimg is when to stop and --data where the images are: a resumed run may go further,
        # or read the same images from a new place (as NVIDIA's --resume allows)
        free = ("kimg", "data")
        theirs, mine = json.loads(st["spec"]), json.loads(json.dumps(self.spec))
        changed = sorted(k for k in theirs.keys() | mine.keys()
                         if k not in free and theirs.get(k) != mine.get(k))
        if changed:
            raise ValueError(f"the run in this folder used other settings ({', '.join(changed)}); "
                             "use a new --out or the same options")
        self.G.load_state_dict(st["G"])
        self.D.load_state_dict(st["D"])
        self.G_ema.load_state_dict(st["G_ema"])
        self.opts["G"].load_state_dict(st["opt_G"])
        self.opts["D"].load_state_dict(st["opt_D"])
        self.nimg, self.step, self.seed = int(st["nimg"]), int(st["step"]), int(st["seed"])
        per_rank = st.get("per_rank") or []
        own = per_rank[self.rank] if len(per_rank) == self.world else st  # else rank 0's
        self.pl_mean = own["pl_mean"].to(self.device)
        if self.augment is not None:
            if "augment" in own:
                self.augment.load_state(own["augment"])
            else:  # a state.pt written before the counters were saved
                self.augment.p = float(st["augment_p"])

    def rank_state(self) -> dict:
        """What differs between processes: each averages path lengths and counts ADA's signs over
        its own images between adjustments. A multi-process state.pt keeps every rank's."""
        return {"pl_mean": self.pl_mean.cpu(),
                "augment": self.augment.state() if self.augment is not None else []}

    @torch.no_grad()
    def quality(self, seed: int = 0) -> dict:
        """C2ST accuracy of G_ema samples against held-out real images (0.5 = indistinguishable),
        plus FID/KID when NVIDIA's Inception detector is installed."""
        from ..metrics.c2st import generator_c2st
        out = {}
        if self.n_holdout >= 8:
            real = holdout_images(self.dataset)
            out = {"c2st_accuracy": generator_c2st(self.G_ema, real, seed), "c2st_images": len(real)}
        return dict(out, **self.fid_kid(seed))

    @torch.no_grad()
    def fid_kid(self, seed: int = 0) -> dict:
        """FID/KID of G_ema against `fid_images` training images, when NVIDIA's Inception
        detector is in the weights folder (else {}). Real features are computed once per run."""
        from .. import weights
        from ..metrics import fid
        n = min(self.fid_images, len(self.dataset))
        if n < 2 or weights.find("inception-fid") is None:
            return {}
        if self._detector is None:
            self._detector = fid.load_detector(self.device)
        if self._fid_real is None:
            self._fid_real = fid.inception_features(
                self._detector, fid.dataset_batches(self.dataset, n, seed=seed), self.device)
        fake = fid.inception_features(
            self._detector, fid.generator_batches(self.G_ema, n, seed=seed, device=self.device,
                                                  labels=self.dataset.labels), self.device)
        tag = f"{n // 1000}k" if n % 1000 == 0 else str(n)
        return {f"fid{tag}": fid.frechet_distance(self._fid_real, fake),
                f"kid{tag}": fid.kernel_distance(self._fid_real, fake)}

    def weights_checksum(self) -> float:
        return float(sum(p.double().sum() for p in self.G.parameters()) +
                     sum(p.double().sum() for p in self.D.parameters()))

    def sample_grid(self):
        with torch.no_grad():
            c = self.G_ema.class_vector(len(self.fixed_z), 0 if self.G_ema.c_dim else None)
            img = self.G_ema(self.fixed_z.to(self.device), c, noise_mode="const")
        return grid(to_uint8(img), cols=8)


def train(data, out, cfg="auto", kimg=1000, seed=0, snap_kimg=50, sample_kimg=10, device="cpu",
          xflip=True, progress=True, fid_images=10000, **overrides) -> Trainer:
    import os

    from ..data import ImageDataset
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        import torch.distributed as dist
        device = torch.device(device)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)  # NCCL's collectives use the current device
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = ImageDataset(data, resolution=8, xflip=xflip)
    dataset.resolution = res = _dataset_resolution(dataset)
    spec = resolve_config(cfg, res, gpus=world, c_dim=dataset.c_dim, **overrides)
    spec.update(data=str(data), kimg=kimg, seed=seed, xflip=xflip)
    trainer = Trainer(dataset, spec, seed=seed, device=device, rank=rank, world=world,
                      fid_images=fid_images)
    state_path = out / "state.pt"
    if state_path.exists():
        trainer.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    total = kimg * 1000
    bar = progress_bar(total=total, initial=min(trainer.nimg, total), unit="img",
                       unit_scale=True, desc="train stylegan2", enabled=progress and rank == 0)
    t_last, n_last = time.time(), trainer.nimg
    next_snap = (trainer.nimg // (snap_kimg * 1000) + 1) * snap_kimg * 1000
    next_sample = (trainer.nimg // (sample_kimg * 1000) + 1) * sample_kimg * 1000
    while trainer.nimg < total:
        logs = trainer.train_step()
        bar.update(spec["mb"])
        done_kimg = max(trainer.nimg - n_last, 1) / 1000
        bar.set_postfix(kimg=f"{trainer.nimg / 1000:.1f}", s_per_kimg=f"{(time.time() - t_last) / done_kimg:.0f}",
                        G=f"{logs['loss_G']:.3f}", D=f"{logs['loss_D']:.3f}")
        done = trainer.nimg >= total
        if trainer.nimg >= next_sample or done:
            if rank == 0:
                save_image(trainer.sample_grid(), out / f"fakes{trainer.nimg // 1000:06d}.png")
            next_sample += sample_kimg * 1000
        if trainer.nimg >= next_snap or done:
            now = time.time()
            sec_per_kimg = (now - t_last) / max((trainer.nimg - n_last) / 1000, 1e-9)
            t_last, n_last = now, trainer.nimg
            per_rank = []
            if world > 1:  # every rank must hold the same weights
                logs = dict(logs, ddp_consistent=_ranks_agree(trainer), processes=world)
                per_rank = [None] * world
                torch.distributed.all_gather_object(per_rank, trainer.rank_state())
            if rank == 0:
                _snapshot(trainer, out, sec_per_kimg, logs, per_rank)
            next_snap += snap_kimg * 1000
    bar.close()
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
    return trainer


def _ranks_agree(trainer) -> bool:
    import torch.distributed as dist
    mine = (trainer.weights_checksum(), trainer.augment.p if trainer.augment is not None else 0.0)
    everyone = [None] * trainer.world
    dist.all_gather_object(everyone, mine)
    sums = [x[0] for x in everyone]
    same_p = all(x[1] == mine[1] for x in everyone)
    return same_p and max(sums) - min(sums) <= 1e-6 * max(1.0, abs(sums[0]))


def _dataset_resolution(ds) -> int:
    w, h = ds.first_image_size()
    res = 2 ** int(np.floor(np.log2(min(w, h))))
    if res < 8:
        raise ValueError(f"images of {w}x{h} are too small to train on")
    return res


def _snapshot(trainer, out, sec_per_kimg, logs, per_rank=()):
    kimg = trainer.nimg / 1000
    stem = out / f"network-snapshot-{int(kimg):06d}"
    quality = trainer.quality()
    prov = {"summary": f"StyleGAN2 trained by ganprior, {kimg:.1f} kimg",
            "training": {k: v for k, v in trainer.spec.items() if k not in ("G_kwargs", "D_kwargs")},
            "kimg": kimg, "quality": quality}
    logs = dict(logs, **quality)
    save_native(stem, trainer.G_ema, trainer.D, provenance=prov)
    state = dict(trainer.state_dict(), per_rank=list(per_rank))
    atomic_write(out / "state.pt", lambda tmp: torch.save(state, tmp))
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps({"kimg": kimg, "sec_per_kimg": sec_per_kimg, "time": time.time(),
                            "hardware": describe_device(trainer.device), **logs}) + "\n")
