"""pix2pixHD training with the official recipe (NVIDIA/pix2pixHD `train.py`, `pix2pixHD_model.py`).

- Networks: a global generator, or a local enhancer on top of one (`n_local_enhancers` >= 1);
  multi-scale PatchGAN discriminators; with `features`, the instance feature encoder, trained
  jointly with G (its instance-averaged output is part of G's input; its parameters are in G's
  optimiser) as the official `--instance_feat` (feat_num 3).
- One minibatch: fake = G(labels | boundaries | E(real, inst)); D sees (condition, image).
  G loss = LSGAN + feature matching (lambda 10) + VGG19 (lambda 10, when its weights are
  installed); D loss = 0.5 (real + fake). G steps first, then D, both on the same forward pass
  (the D outputs G's loss uses come from D before its step, as the official loop).
- Adam (lr 2e-4, betas (0.5, 0.999)) for both; lr constant for `niter` epochs, then lowered by
  lr / niter_decay after each further epoch (`lr_at`). `niter_fix_global` > 0: the global
  generator's parameters are frozen for that many epochs (only the enhancer and the encoder
  learn), then everything trains.
- An epoch is `n_images // batch` minibatches of a permutation drawn from (seed, epoch); crops
  and flips come from (seed, epoch, index) in the dataset. Nothing else is random, so the state
  file (`state.pt`: weights, optimisers, step, running loss sums) resumes a killed run exactly.
- Several processes: `torchrun --nproc_per_node K -m ganprior.cli train pix2pixhd ...`; each
  rank takes its share of every minibatch and gradients are averaged (gloo on CPU, nccl on
  CUDA); rank 0 writes every output. AMP (float16 autocast + gradient scaling) on CUDA only.

Output folder: state.pt, log.jsonl (one line per epoch), samples/epochNNNN.png (label | synthesis
| real), pix2pixhd-epochNNNN.{safetensors,json} (G, D and E in one native checkpoint; the JSON's
provenance holds what synthesis needs: label_nc, classes, feature length, size multiple).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import save_native
from ..device import describe_device
from ..distributed import average_gradients, rank_and_world
from ..files import atomic_write, atomic_write_text
from ..images import grid, save_image, to_uint8
from ..nets.pix2pixhd import (FeatureEncoder, GlobalGenerator, LocalEnhancer,
                              MultiscaleDiscriminator, discriminator_input_nc,
                              generator_input_nc, make_input)
from ..progress import progress_bar
from .pix2pixhd_loss import Pix2PixHDLoss, load_vgg_loss

SNAPSHOT_PREFIX = "pix2pixhd-epoch"
# options that may differ when a run is resumed: where the data is and how long to train
FREE_ON_RESUME = ("data", "niter", "niter_decay", "init_global")
DEFAULTS = dict(label_nc=None, instance=True, features=False, feat_num=3, ngf=64, ndf=64,
                n_blocks=9, n_downsample=4, n_local_enhancers=0, n_blocks_local=3, num_D=2,
                n_layers_D=3, nef=16, n_downsample_E=4, niter=100, niter_decay=100,
                niter_fix_global=0, batch=1, lr=2e-4, beta1=0.5, beta2=0.999, gan_mode="lsgan",
                lambda_feat=10.0, feature_matching=True, vgg=True, resize="none",
                load_size=None, crop_size=None, flip=True, seed=0, init_global=None)


def make_spec(**options) -> dict:
    """The run's settings: DEFAULTS (the official ones; the paper's network sizes) updated with
    `options`, checked. ValueError for unknown options or combinations that cannot train."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown pix2pixHD training option {unknown[0]!r}")
    spec = dict(DEFAULTS, **{k: v for k, v in options.items() if v is not None})
    for key in ("niter", "niter_decay", "niter_fix_global"):
        if not isinstance(spec[key], int) or spec[key] < 0:
            raise ValueError(f"{key} must be a non-negative integer, not {spec[key]!r}")
    if spec["niter"] + spec["niter_decay"] < 1:
        raise ValueError("niter + niter_decay must be at least one epoch")
    if spec["niter_fix_global"] and not spec["n_local_enhancers"]:
        raise ValueError("--niter-fix-global freezes the global generator under a local "
                         "enhancer: it needs --n-local-enhancers 1 or more")
    if spec["niter_fix_global"] > spec["niter"] + spec["niter_decay"]:
        raise ValueError(f"--niter-fix-global {spec['niter_fix_global']} is longer than the "
                         f"run ({spec['niter'] + spec['niter_decay']} epochs)")
    if spec["features"] and not spec["instance"]:
        raise ValueError("instance features (--features) need instance maps: drop --no-instance")
    if spec["features"] and spec["label_nc"] == 0:
        raise ValueError("instance features are clustered per class: they need label maps "
                         "(label_nc > 0)")
    if not (isinstance(spec["lr"], (int, float)) and math.isfinite(spec["lr"]) and spec["lr"] > 0):
        raise ValueError(f"lr must be a positive number, not {spec['lr']!r}")
    if not isinstance(spec["batch"], int) or spec["batch"] < 1:
        raise ValueError(f"batch must be a positive integer, not {spec['batch']!r}")
    return spec


def lr_at(epoch: int, lr: float, niter: int, niter_decay: int) -> float:
    """The learning rate of 0-based `epoch`: lr for the first niter epochs, then lr x (1 - k /
    niter_decay) in the k-th epoch after them (the official loop lowers it by lr / niter_decay
    at the end of each epoch after the niter-th: the last epoch runs at lr / niter_decay)."""
    if epoch < niter or niter_decay == 0:
        return lr
    return lr * max(0.0, 1.0 - (epoch - niter) / niter_decay)


def build_networks(spec: dict):
    """(G, D, E or None) for the spec, freshly initialised."""
    g_in = generator_input_nc(spec["label_nc"], spec["instance"],
                              spec["feat_num"] if spec["features"] else 0)
    if spec["n_local_enhancers"]:
        G = LocalEnhancer(g_in, 3, spec["ngf"], spec["n_downsample"], spec["n_blocks"],
                          spec["n_local_enhancers"], spec["n_blocks_local"])
    else:
        G = GlobalGenerator(g_in, 3, spec["ngf"], spec["n_downsample"], spec["n_blocks"])
    D = MultiscaleDiscriminator(discriminator_input_nc(spec["label_nc"], spec["instance"]),
                                spec["ndf"], spec["n_layers_D"], spec["num_D"])
    E = FeatureEncoder(3, spec["feat_num"], spec["nef"], spec["n_downsample_E"]) \
        if spec["features"] else None
    return G, D, E


def size_multiple(spec: dict) -> int:
    """What H and W must be multiples of for G (and E): powers of two, so the larger."""
    g = 2 ** (spec["n_downsample"] + spec["n_local_enhancers"])
    return max(g, 2 ** spec["n_downsample_E"]) if spec["features"] else g


def check_sample_size(spec: dict, hw) -> None:
    """The networks' innermost maps must keep 2x2 pixels (instance norm of one pixel is
    undefined): refuse samples too small for the configured downsamplings up front."""
    need = 2 * size_multiple(spec)
    h, w = int(hw[0]), int(hw[1])
    if h < need or w < need:
        raise ValueError(f"training samples of {w}x{h} are too small for these networks "
                         f"(at least {need}x{need}); use fewer downsamplings (--n-downsample, "
                         f"--n-downsample-e) or larger images")


def read_manifest(root) -> dict:
    """The classes of a dataset made by `ganprior data scenes` (DATA/scenes.json: label_nc,
    classes, palette, things), or {} when there is none or it is not usable."""
    path = Path(root) / "scenes.json"
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return {}
        m = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if not isinstance(m, dict) or not isinstance(m.get("label_nc"), int):
        return {}
    classes = m.get("classes")
    if not (isinstance(classes, list) and len(classes) == m["label_nc"]
            and all(isinstance(c, str) for c in classes)):
        classes = None
    palette = m.get("palette") if classes and isinstance(m.get("palette"), dict) else None
    things = [t for t in m.get("things", []) if classes and t in classes]
    return {"label_nc": m["label_nc"], "classes": classes, "palette": palette, "things": things}


def label_colours(label_nc: int, classes=None, palette=None) -> np.ndarray:
    """[label_nc, 3] uint8 colours to show label maps: the dataset's palette where it names a
    class, else evenly spread hues (fixed, so grids of one run are comparable)."""
    import colorsys
    out = np.zeros((max(label_nc, 1), 3), dtype=np.uint8)
    for i in range(label_nc):
        name = classes[i] if classes else None
        if palette and name in palette:
            out[i] = palette[name]
        else:
            out[i] = [int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618) % 1, 0.65, 0.9)]
    return out


class Trainer:
    """One process's share of pix2pixHD training. With `world` > 1 every rank builds the same
    networks (same seed), takes its slice of each minibatch, and gradients are averaged."""

    def __init__(self, dataset, spec: dict, device="cpu", rank: int = 0, world: int = 1,
                 amp: bool = True, vgg=None):
        self.dataset, self.spec, self.device = dataset, spec, torch.device(device)
        self.rank, self.world = rank, world
        if spec["batch"] % world:
            raise ValueError(f"batch {spec['batch']} is not divisible by {world} processes")
        self.n_images = len(dataset)
        self.steps_per_epoch = self.n_images // spec["batch"]
        if self.steps_per_epoch < 1:
            raise ValueError(f"{self.n_images} training samples are fewer than one batch of "
                             f"{spec['batch']}")
        self.total_steps = self.steps_per_epoch * (spec["niter"] + spec["niter_decay"])
        torch.manual_seed(spec["seed"])
        G, D, E = build_networks(spec)
        self.G, self.D = G.to(self.device).train(), D.to(self.device).train()
        self.E = E.to(self.device).train() if E is not None else None
        g_params = list(self.G.parameters()) + (list(self.E.parameters()) if self.E else [])
        betas = (spec["beta1"], spec["beta2"])
        self.opt_G = torch.optim.Adam(g_params, lr=spec["lr"], betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=spec["lr"], betas=betas)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.loss = Pix2PixHDLoss(spec["gan_mode"], spec["lambda_feat"], spec["lambda_feat"],
                                  spec["feature_matching"], vgg)
        self.step = 0
        self.sums: dict[str, float] = {}  # loss sums of the current epoch (for its log line)
        self.seconds = 0.0                 # training time over every run of this state

    @property
    def epoch(self) -> int:
        """0-based epoch of the next minibatch."""
        return self.step // self.steps_per_epoch

    # --- data -------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> list[int]:
        """This rank's samples for minibatch `step`: a slice of the epoch's permutation."""
        epoch, k = divmod(step, self.steps_per_epoch)
        g = torch.Generator().manual_seed(self.spec["seed"] * 1_000_003 + epoch)
        perm = torch.randperm(self.n_images, generator=g)
        b, n = self.spec["batch"], self.spec["batch"] // self.world
        start = k * b + self.rank * n
        return perm[start:start + n].tolist()

    def load_batch(self, indices, epoch: int) -> dict:
        self.dataset.set_epoch(epoch)
        items = [self.dataset[i] for i in indices]
        return {key: torch.stack([it[key] for it in items]).to(self.device)
                for key in ("label", "inst", "image") if key in items[0]}

    def condition(self, batch) -> torch.Tensor:
        """One-hot labels | instance boundaries: D's condition and G's input less features."""
        inst = batch.get("inst") if self.spec["instance"] else None
        return make_input(batch["label"], inst, label_nc=self.spec["label_nc"])

    def generate(self, batch, cond=None):
        """G's output for a batch (features encoded from its real images)."""
        cond = self.condition(batch) if cond is None else cond
        if self.E is not None:
            cond = torch.cat([cond, self.E(batch["image"], batch["inst"])], 1)
        return self.G(cond)

    # --- one minibatch ---------------------------------------------------------------------
    def set_trainable(self):
        """Freeze the global generator during the first niter_fix_global epochs."""
        if self.spec["niter_fix_global"]:
            train_global = self.epoch >= self.spec["niter_fix_global"]
            for p in self.G.global_parameters():
                p.requires_grad_(train_global)

    def set_lr(self):
        s = self.spec
        lr = lr_at(self.epoch, s["lr"], s["niter"], s["niter_decay"])
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = lr
        return lr

    def train_step(self) -> dict:
        """One minibatch: G's step, then D's; returns the loss terms (this rank's values)."""
        self.set_trainable()
        lr = self.set_lr()
        torch.manual_seed((self.spec["seed"] * 1_000_003 + self.step) * 1024 + self.rank)
        batch = self.load_batch(self.batch_indices(self.step), self.epoch)
        real = batch["image"]
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
            cond = self.condition(batch)
            fake = self.generate(batch, cond)
            self.D.requires_grad_(False)  # G's loss needs gradients for G (and E) only
            pred_fake_g = self.D(torch.cat([cond, fake], 1))
            self.D.requires_grad_(True)
            pred_fake = self.D(torch.cat([cond, fake.detach()], 1))
            pred_real = self.D(torch.cat([cond, real], 1))
            g_terms = self.loss.generator(pred_fake_g, pred_real, fake.float(), real)
            d_terms = self.loss.discriminator(pred_fake, pred_real)
            loss_G = sum(g_terms.values())
            loss_D = 0.5 * (d_terms["D_real"] + d_terms["D_fake"])
        self._apply(self.opt_G, loss_G, self.G, self.E)
        self._apply(self.opt_D, loss_D, self.D)
        self.scaler.update()
        logs = {k: float(v.detach()) for k, v in {**g_terms, **d_terms}.items()}
        logs.update(loss_G=float(loss_G.detach()), loss_D=float(loss_D.detach()))
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.sums["steps"] = self.sums.get("steps", 0.0) + 1
        self.step += 1
        return dict(logs, lr=lr)

    def _apply(self, opt, loss, *nets):
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        average_gradients([p for net in nets if net is not None for p in net.parameters()],
                          self.world)
        self.scaler.step(opt)

    # --- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        st = {"G": self.G.state_dict(), "D": self.D.state_dict(),
              "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
              "scaler": self.scaler.state_dict(), "step": self.step, "seconds": self.seconds,
              "sums": json.dumps(self.sums), "spec": json.dumps(self.spec)}
        if self.E is not None:
            st["E"] = self.E.state_dict()
        return st

    def load_state_dict(self, st: dict):
        self.G.load_state_dict(st["G"])
        self.D.load_state_dict(st["D"])
        if self.E is not None:
            self.E.load_state_dict(st["E"])
        self.opt_G.load_state_dict(st["opt_G"])
        self.opt_D.load_state_dict(st["opt_D"])
        if st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.step, self.seconds = int(st["step"]), float(st.get("seconds", 0.0))
        self.sums = json.loads(st.get("sums") or "{}")

    def weights_checksum(self) -> float:
        nets = [self.G, self.D] + ([self.E] if self.E is not None else [])
        return float(sum(p.double().sum() for net in nets for p in net.parameters()))

    @torch.no_grad()
    def sample_grid(self, batch, colours) -> np.ndarray:
        """Rows of (label map, synthesis, real image) for a fixed batch."""
        fake = self.generate(batch).float()
        if self.spec["label_nc"]:
            shown = colours[batch["label"][:, 0].cpu().numpy()]
        else:
            shown = to_uint8(batch["label"])
        cells = np.stack([c for row in zip(shown, to_uint8(fake), to_uint8(batch["image"]))
                          for c in row])
        return grid(cells, cols=3)


def _resolve_spec(spec: dict, state_path: Path) -> tuple[dict, dict | None]:
    """(spec to train with, saved state or None): a resumed run keeps its own settings;
    options other than FREE_ON_RESUME (and vgg, decided below) must match."""
    if not state_path.exists():
        return spec, None
    st = torch.load(state_path, map_location="cpu", weights_only=True)
    saved = json.loads(st["spec"])
    changed = sorted(k for k in saved.keys() | spec.keys() if k not in FREE_ON_RESUME
                     and k not in ("vgg", "n_images") and saved.get(k) != spec.get(k))
    if changed:
        raise ValueError(f"the run in {state_path.parent} used other settings "
                         f"({', '.join(changed)}); use a new --out or the same options")
    if saved.get("vgg") and not spec.get("vgg"):
        raise ValueError(f"the run in {state_path.parent} uses the VGG19 loss: drop --no-vgg "
                         "to resume it")
    return dict(saved, **{k: spec.get(k) for k in FREE_ON_RESUME}), st


def _init_process_group(device):
    import torch.distributed as dist
    device = torch.device(device)
    if device.type == "cuda":
        import os
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def _load_global(trainer: Trainer, path):
    """Start a local enhancer from a trained global generator (and its encoder, if any)."""
    from ..checkpoints import load_networks
    nets = load_networks(path, device="cpu")
    G = nets["G"]
    if not isinstance(G, GlobalGenerator) or not isinstance(trainer.G, LocalEnhancer):
        raise ValueError(f"{path}: --init-global takes a global-generator pix2pixHD model, "
                         "for a run with --n-local-enhancers")
    try:
        trainer.G.load_global(G)
        if trainer.E is not None and isinstance(nets.get("E"), FeatureEncoder):
            trainer.E.load_state_dict(nets["E"].state_dict())
    except RuntimeError as e:
        raise ValueError(f"{path}: its global generator does not fit this run's (the global "
                         f"net has ngf x 2^n_local_enhancers filters): "
                         f"{str(e).splitlines()[0]}")


def train(data, out, spec: dict, device="cpu", amp: bool = True, snap_every: int = 10,
          save_every: int = 500, sample_every: int = 1, progress: bool = True, say=None,
          command: str | None = None, _stop_after: int | None = None) -> Trainer:
    """Train (or resume: rerun the same call) pix2pixHD on the paired dataset `data` into the
    folder `out`. `spec` comes from make_spec (label_nc None: the dataset's scenes.json).
    State is saved every `save_every` minibatches and at each epoch's end; snapshots every
    `snap_every` epochs and at the end; sample grids every `sample_every` epochs. `say(text)`
    receives notices (missing VGG19 weights, JPEG label maps). `_stop_after` (tests) returns
    after that many minibatches in total without saving, as a killed run would."""
    from ..data.paired import Layout, PairedDataset
    say = say or (lambda text: None)
    rank, world = rank_and_world()
    if world > 1:
        device = _init_process_group(device)
    device = torch.device(device)
    out = Path(out)
    manifest = read_manifest(data)
    spec = dict(spec)
    if spec.get("label_nc") is None:
        if "label_nc" not in manifest:
            raise ValueError(f"{data}: no scenes.json says how many classes the label maps "
                             "have; pass --label-nc (0: RGB input images)")
        spec["label_nc"] = manifest["label_nc"]
    spec = make_spec(**spec)
    spec["data"] = str(data)
    spec, state = _resolve_spec(spec, out / "state.pt")
    multiple = size_multiple(spec)
    layout = Layout(Path(data), spec["label_nc"], instance=spec["instance"])
    dataset = PairedDataset(layout, spec["resize"], spec["load_size"], spec["crop_size"],
                            multiple, spec["flip"], spec["seed"], check=True,
                            progress=progress and rank == 0)
    if rank == 0:
        for note in dataset.notes:
            say(note)
    if state is not None and state_n_images(state) not in (None, len(dataset)):
        raise ValueError(f"the run in {out} trained on {state_n_images(state)} samples; "
                         f"{data} has {len(dataset)}")
    spec["n_images"] = len(dataset)
    check_sample_size(spec, dataset[0]["label"].shape[-2:])
    vgg = None
    if spec["vgg"]:
        vgg, note = load_vgg_loss(device, warn=False)
        if vgg is None:
            if state is not None:
                raise ValueError(f"the run in {out} uses the VGG19 loss, which is not "
                                 f"available now: {note}")
            spec["vgg"] = False
            if rank == 0:
                say(note)
    trainer = Trainer(dataset, spec, device, rank, world, amp, vgg)
    if state is not None:
        trainer.load_state_dict(state)
    elif spec.get("init_global"):
        _load_global(trainer, spec["init_global"])
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    _train_loop(trainer, out, manifest, snap_every, save_every, sample_every,
                progress and rank == 0, command, _stop_after)
    if world > 1:
        torch.distributed.barrier()
    return trainer


def state_n_images(state: dict):
    return json.loads(state["spec"]).get("n_images")


def _train_loop(trainer: Trainer, out: Path, manifest: dict, snap_every, save_every,
                sample_every, show, command, stop_after):
    spec, spe = trainer.spec, trainer.steps_per_epoch
    epochs = spec["niter"] + spec["niter_decay"]
    colours = label_colours(spec["label_nc"], manifest.get("classes"), manifest.get("palette"))
    fixed = None
    bar = progress_bar(total=trainer.total_steps, initial=min(trainer.step, trainer.total_steps),
                       unit="batch", desc="train pix2pixhd", enabled=show)
    t_start, step_start = time.time(), trainer.step
    t_epoch = time.time()
    while trainer.step < trainer.total_steps:
        if stop_after is not None and trainer.step >= stop_after:
            bar.close()
            return
        logs = trainer.train_step()
        bar.update(1)
        bar.set_postfix(epoch=f"{trainer.step / spe:.2f}", G=f"{logs['loss_G']:.3f}",
                        D=f"{logs['loss_D']:.3f}", lr=f"{logs['lr']:.2e}")
        now = time.time()
        trainer.seconds += now - t_start
        t_start = now
        epoch_end = trainer.step % spe == 0
        if epoch_end:
            epoch = trainer.step // spe  # epochs completed
            line = _epoch_line(trainer, epoch, logs["lr"], now - t_epoch,
                               (trainer.step - step_start) * spec["batch"])
            t_epoch, step_start = now, trainer.step
            if trainer.rank == 0:
                if epoch % sample_every == 0 or epoch == epochs:
                    fixed = fixed or _fixed_batch(trainer)
                    save_image(trainer.sample_grid(fixed, colours),
                               out / "samples" / f"epoch{epoch:04d}.png")
                if epoch % snap_every == 0 or epoch == epochs:
                    save_snapshot(trainer, out / f"{SNAPSHOT_PREFIX}{epoch:04d}", epoch,
                                  manifest, command)
                _append_log(out / "log.jsonl", line)
            trainer.sums = {}
        if epoch_end or trainer.step % save_every == 0:
            if trainer.rank == 0:
                st = trainer.state_dict()
                atomic_write(out / "state.pt", lambda tmp: torch.save(st, tmp))
    bar.close()


def _mean_over_processes(trainer: Trainer, sums: dict) -> dict:
    if trainer.world == 1:
        return sums
    import torch.distributed as dist
    keys = sorted(sums)
    t = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=trainer.device)
    dist.all_reduce(t)
    return {k: v / trainer.world for k, v in zip(keys, t.tolist())}


def _ranks_agree(trainer: Trainer) -> bool:
    import torch.distributed as dist
    everyone = [None] * trainer.world
    dist.all_gather_object(everyone, trainer.weights_checksum())
    return max(everyone) - min(everyone) <= 1e-6 * max(1.0, abs(everyone[0]))


def _epoch_line(trainer: Trainer, epoch: int, lr: float, seconds: float, images: int) -> dict:
    """The epoch's log record: mean losses over its minibatches (and processes), speed."""
    sums = _mean_over_processes(trainer, trainer.sums)
    n = max(sums.pop("steps", 1.0), 1.0)
    line = {"epoch": epoch, "step": trainer.step, "images": trainer.step * trainer.spec["batch"],
            "lr": lr, **{k: v / n for k, v in sorted(sums.items())},
            "sec": seconds, "img_per_s": images / max(seconds, 1e-9),
            "train_seconds": trainer.seconds, "hardware": describe_device(trainer.device),
            "processes": trainer.world}
    if trainer.world > 1:
        line["ddp_consistent"] = _ranks_agree(trainer)
    return line


def _append_log(path: Path, line: dict):
    """Rewrite log.jsonl atomically without lines of this epoch or later (a resumed run
    redoes the minibatches after its last state save and must not log an epoch twice)."""
    kept = []
    if path.exists():
        for raw in path.read_text().splitlines():
            try:
                if json.loads(raw).get("epoch", 0) < line["epoch"]:
                    kept.append(raw)
            except json.JSONDecodeError:
                continue
    kept.append(json.dumps(line))
    atomic_write_text(path, "\n".join(kept) + "\n")


def _fixed_batch(trainer: Trainer, n: int = 4) -> dict:
    """The first samples of the data, as seen in epoch 0: the same rows in every grid."""
    return trainer.load_batch(list(range(min(n, trainer.n_images))), 0)


def save_snapshot(trainer: Trainer, stem: Path, epoch: int, manifest: dict,
                  command: str | None = None):
    """G, D and E in one native checkpoint; provenance says how to use and remake it."""
    spec = trainer.spec
    G = trainer.G
    first = trainer.dataset[0]["label"]
    prov = {"summary": f"pix2pixHD trained by ganprior, {epoch} epochs on "
                       f"{trainer.n_images} samples",
            "pix2pixhd": {"label_nc": spec["label_nc"], "instance": spec["instance"],
                          "feat_num": spec["feat_num"] if spec["features"] else 0,
                          "classes": manifest.get("classes"), "palette": manifest.get("palette"),
                          "things": manifest.get("things") or [],
                          "size_multiple": size_multiple(spec),
                          "resolution": [int(first.shape[-1]), int(first.shape[-2])]},
            "training": {k: v for k, v in spec.items()}, "epoch": epoch,
            "train_seconds": round(trainer.seconds, 1), "processes": trainer.world,
            "hardware": describe_device(trainer.device), "command": command}
    save_native(stem, G, trainer.D, provenance=prov,
                more={"E": trainer.E} if trainer.E is not None else None)


def latest_snapshot(run) -> Path:
    """The newest pix2pixhd-epochNNNN.safetensors of a run folder (FileNotFoundError if none)."""
    found = sorted(Path(run).glob(f"{SNAPSHOT_PREFIX}[0-9]*.safetensors"))
    if not found:
        raise FileNotFoundError(f"{run}: no {SNAPSHOT_PREFIX}NNNN.safetensors snapshot yet")
    return found[-1]
