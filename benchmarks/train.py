"""StyleGAN2 training speed (s/kimg): ganprior's Trainer vs NVIDIA's loss + phase schedule.

    NVLABS_SG2ADA=/path/to/stylegan2-ada-pytorch python benchmarks/train.py [--res 64]

Same network config, same batch, same schedule (G main every minibatch, path length every 4,
D main every minibatch, R1 every 16; Adam with the lazy-regularisation correction), no
augmentation, fp32, 2 threads. Timing: whole 16-minibatch cycles (one R1 each), alternating
between the two implementations; the median cycle gives s/kimg. Without the environment variable
only ganprior is timed. NVIDIA's code is never committed here.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from report import write_section  # noqa: E402  (benchmarks/report.py)

from ganprior.train.stylegan2 import Trainer, resolve_config  # noqa: E402


class RandomImages:
    """A stand-in dataset of fixed random images (speed only; content does not matter)."""
    def __init__(self, n, res):
        self.x = torch.rand(n, 3, res, res, generator=torch.Generator().manual_seed(0)) * 2 - 1
        self.c_dim, self.xflip = 0, False

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], torch.zeros(0)


def nvidia_runner(spec, ada_p=None):
    path = os.environ.get("NVLABS_SG2ADA")
    if not path or not Path(path, "training", "loss.py").exists():
        return None
    sys.modules.setdefault("requests", types.ModuleType("requests"))
    sys.path.insert(0, path)
    from training.loss import StyleGAN2Loss  # noqa: E402  (NVIDIA's, from the env var path)
    from training.networks import Discriminator, Generator  # noqa: E402

    pipe = None
    if ada_p is not None:  # NVIDIA's "bgc" pipe at a fixed p
        from training.augment import AugmentPipe  # noqa: E402
        ops = ("xflip rotate90 xint scale rotate aniso xfrac brightness contrast lumaflip hue "
               "saturation").split()
        pipe = AugmentPipe(**{k: 1 for k in ops}).train().requires_grad_(False)
        pipe.p.copy_(torch.as_tensor(ada_p))
    torch.manual_seed(0)
    gk, dk = spec["G_kwargs"], spec["D_kwargs"]
    G = Generator(**gk).train().requires_grad_(False)
    D = Discriminator(**dk).train().requires_grad_(False)
    loss = StyleGAN2Loss(torch.device("cpu"), G.mapping, G.synthesis, D, augment_pipe=pipe,
                         style_mixing_prob=spec["mixing"], r1_gamma=spec["gamma"],
                         pl_weight=spec["pl_weight"])
    opts = {}
    for name, net, k in (("G", G, 4), ("D", D, 16)):
        c = k / (k + 1)
        opts[name] = torch.optim.Adam(net.parameters(), lr=spec["lrate"] * c, betas=(0.0, 0.99 ** c), eps=1e-8)
    data = torch.rand(spec["mb"], 3, gk["img_resolution"], gk["img_resolution"]) * 2 - 1
    c0 = torch.zeros(spec["mb"], 0)
    state = {"step": 0}

    def step():
        i, mb = state["step"], spec["mb"]
        phases = [("Gmain", G, "G", 1), ("Dmain", D, "D", 1)]
        if i % 4 == 0:
            phases.insert(1, ("Greg", G, "G", 4))
        if i % 16 == 0:
            phases.append(("Dreg", D, "D", 16))
        for phase, net, opt, gain in phases:
            opts[opt].zero_grad(set_to_none=True)
            net.requires_grad_(True)
            loss.accumulate_gradients(phase=phase, real_img=data, real_c=c0,
                                      gen_z=torch.randn(mb, gk["z_dim"]), gen_c=c0, sync=True,
                                      gain=gain)
            net.requires_grad_(False)
            opts[opt].step()
        state["step"] += 1
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--channel-base", type=int, default=4096)
    ap.add_argument("--channel-max", type=int, default=128)
    ap.add_argument("--map", type=int, default=4)
    ap.add_argument("--dim", type=int, default=128, help="z_dim = w_dim")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--ada-p", type=float, default=0.6, help="also time both with ADA (bgc) at "
                    "this fixed p; 0 = skip")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    spec = resolve_config("auto", args.res, batch=args.batch, channel_base=args.channel_base,
                          channel_max=args.channel_max, map=args.map, z_dim=args.dim,
                          w_dim=args.dim, aug="noaug")
    spec["G_kwargs"]["synthesis_kwargs"]["num_fp16_res"] = 0
    ours = Trainer(RandomImages(256, args.res), spec)
    runners = {"ganprior": ours.train_step}
    nv = nvidia_runner(spec)
    if nv is not None:
        runners["NVIDIA reference"] = nv
    else:
        print("NVLABS_SG2ADA not set: timing ganprior only", file=sys.stderr)
    if args.ada_p > 0:
        spec_ada = dict(spec, aug="ada")
        with_ada = Trainer(RandomImages(256, args.res), spec_ada)
        with_ada.augment.p = args.ada_p
        with_ada.augment.speed_kimg = float("inf")  # keep p fixed while timing
        runners[f"ganprior + ADA (p {args.ada_p})"] = with_ada.train_step
        if nv is not None:
            runners[f"NVIDIA reference + ADA (p {args.ada_p})"] = nvidia_runner(spec, args.ada_p)
    for run in runners.values():  # warm-up: one R1 + path-length minibatch each
        run()
    times = {k: [] for k in runners}
    for _ in range(args.cycles):
        for name, run in runners.items():
            t0 = time.perf_counter()
            for _ in range(16):
                run()
            times[name].append(time.perf_counter() - t0)
    kimg_per_cycle = 16 * args.batch / 1000
    s_per_kimg = {k: statistics.median(v) / kimg_per_cycle for k, v in times.items()}
    params = sum(p.numel() for p in ours.G.parameters()) / 1e6
    lines = [f"Measured {datetime.date.today()} on {os.cpu_count()} CPU cores, torch {torch.__version__}, "
             f"2 threads, fp32. {args.res} px, batch {args.batch}, channel_base {args.channel_base}, "
             f"channel_max {args.channel_max}, mapping {args.map} layers, z/w {args.dim} "
             f"(G {params:.2f} M parameters), R1 γ {spec['gamma']:.4g} every 16, path length "
             f"every 4, style mixing 0.9, no augmentation unless the row says ADA; median of {args.cycles} 16-minibatch "
             f"cycles. Command: `NVLABS_SG2ADA=<checkout> python benchmarks/train.py"
             f"{'' if args.cycles == 3 else f' --cycles {args.cycles}'}`.", "",
             "| implementation | s/kimg | img/s |", "|---|---|---|"]
    for k, v in s_per_kimg.items():
        lines.append(f"| {k} | {v:.1f} | {1000 / v:.1f} |")
    if "NVIDIA reference" in s_per_kimg:
        a, b = s_per_kimg["ganprior"], s_per_kimg["NVIDIA reference"]
        text = f"\nganprior / NVIDIA speed: **{b / a:.2f}x** without augmentation"
        ada = [k for k in s_per_kimg if "ADA" in k]
        if len(ada) == 2:
            text += f", **{s_per_kimg[ada[1]] / s_per_kimg[ada[0]]:.2f}x** with ADA at a fixed p"
        lines.append(text)
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section("train", "StyleGAN2 training speed vs NVIDIA (`benchmarks/train.py`)", table)

if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
