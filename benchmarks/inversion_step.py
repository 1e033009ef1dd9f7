"""Cost of one inversion step: ganprior's `invert` vs NVIDIA's projector loop, and `--loss auto`
vs plain MSE.

    NVLABS_SG2ADA=/path/to/stylegan2-ada-pytorch python benchmarks/inversion_step.py
    python benchmarks/inversion_step.py --only loss      # the loss comparison alone

Model `stylegan2-digiface64`, batch 1, one in-domain target (seed 1000, 8-bit quantised).
ganprior is timed as a user calls it, `ganprior.inversion.invert(G, target, make_method("w+"),
steps=S, loss=...)`; the cost of a step is (time of S2 steps - time of S1 steps) / (S2 - S1),
so setup (method init, loss construction) cancels out. NVIDIA's side is the loop body of its
`projector.py` (w and per-layer noise maps optimised by Adam, w perturbed by ramped noise, noise
regularisation and renormalisation, its lr schedule) on its own `training/networks.py` with the
same weights, with MSE in place of the LPIPS distance (its VGG16 cannot be downloaded here).
All variants are timed interleaved, round by round, in one process; compare the ratios.
Targets of issue 12: a w+ step >= 2x as fast as NVIDIA's loop; `--loss auto` at batch 1 costs
<= 1.5x plain MSE.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from generate import nvidia_generator_class  # noqa: E402  (benchmarks/generate.py)
from report import write_section  # noqa: E402  (benchmarks/report.py)

from ganprior.checkpoints import load_generator  # noqa: E402
from ganprior.images import to_uint8  # noqa: E402
from ganprior.inversion import ReconstructionLoss, invert, make_method  # noqa: E402

TARGET_NV, TARGET_AUTO = 2.0, 1.5


def target_image(G) -> torch.Tensor:
    with torch.no_grad():
        img = G.synthesize(G.z_to_w(G.z_from_seed(1000)))
    return torch.from_numpy(to_uint8(img)).permute(0, 3, 1, 2).float() / 127.5 - 1


def ours_runner(G, target, loss: str):
    def run(steps: int):
        invert(G, target, make_method("w+"), steps=steps, loss=loss)
    return run


class NvidiaProjectorLoop:
    """The per-step work of NVIDIA's projector.py, MSE instead of LPIPS (see module doc)."""

    def __init__(self, G_ours, target):
        Nv = nvidia_generator_class()
        self.G = Nv(**G_ours.config).eval()
        self.G.load_state_dict(G_ours.state_dict())
        self.G.requires_grad_(False)
        self.target = target
        with torch.no_grad():  # its w statistics (10000 samples there; setup, not timed)
            z = torch.from_numpy(np.random.RandomState(123).randn(2000, self.G.z_dim)).float()
            w = self.G.mapping(z, None)[:, :1]
        self.w_avg = w.mean(0, keepdim=True)
        self.w_std = float(((w - self.w_avg).square().sum() / len(w)) ** 0.5)

    def __call__(self, steps: int):
        bufs = [b for n, b in self.G.synthesis.named_buffers() if "noise_const" in n]
        w_opt = self.w_avg.clone().requires_grad_(True)
        with torch.no_grad():
            for b in bufs:
                b.normal_()
        for b in bufs:
            b.requires_grad_(True)
        opt = torch.optim.Adam([w_opt] + bufs, betas=(0.9, 0.999), lr=0.1)
        for step in range(steps):
            t = step / steps
            ramp = min(1.0, (1.0 - t) / 0.25)
            ramp = (0.5 - 0.5 * np.cos(ramp * np.pi)) * min(1.0, t / 0.05)
            for g in opt.param_groups:
                g["lr"] = 0.1 * ramp
            noise_scale = self.w_std * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
            ws = (w_opt + torch.randn_like(w_opt) * noise_scale).repeat(1, self.G.num_ws, 1)
            img = self.G.synthesis(ws, noise_mode="const")
            dist = F.mse_loss(img, self.target)
            reg = 0.0
            for b in bufs:
                n = b[None, None]
                while True:
                    reg = reg + (n * torch.roll(n, 1, dims=3)).mean() ** 2
                    reg = reg + (n * torch.roll(n, 1, dims=2)).mean() ** 2
                    if n.shape[2] <= 8:
                        break
                    n = F.avg_pool2d(n, 2)
            opt.zero_grad(set_to_none=True)
            (dist + reg * 1e5).backward()
            opt.step()
            with torch.no_grad():
                for b in bufs:
                    b -= b.mean()
                    b *= b.square().mean().rsqrt()


def step_ms(runners: dict, s1: int, s2: int, rounds: int, clock=time.perf_counter) -> dict:
    """Median ms per step of each runner, from the difference of an s2- and an s1-step run."""
    for run in runners.values():
        run(2)  # warm-up (lazy init, allocator)
    times = {k: [] for k in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t0 = clock()
            run(s1)
            t1 = clock()
            run(s2)
            t2 = clock()
            times[name].append(((t2 - t1) - (t1 - t0)) / (s2 - s1) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["nvidia", "loss"], help="run one comparison only")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, nargs=2, default=[5, 25], metavar=("S1", "S2"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or process CPU time (use with --threads 1 on a busy machine)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="--loss auto")  # printed once below instead
    G = load_generator("stylegan2-digiface64")
    target = target_image(G)
    auto_name = ReconstructionLoss("auto").name
    runners = {"ganprior w+ (mse)": ours_runner(G, target, "mse")}
    have_nv = nvidia_generator_class() is not None
    if args.only != "loss":
        if have_nv:
            runners["NVIDIA projector loop (mse)"] = NvidiaProjectorLoop(G, target)
        else:
            print("NVLABS_SG2ADA not set: no NVIDIA comparison", file=sys.stderr)
    if args.only != "nvidia":
        runners[f"ganprior w+ (auto = {auto_name})"] = ours_runner(G, target, "auto")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    ms = step_ms(runners, *args.steps, args.rounds, clock)
    lines = [f"Measured {datetime.date.today().isoformat()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, {args.clock} clock, fp32, batch 1, "
             "`stylegan2-digiface64`; ms per "
             f"step = (time of {args.steps[1]} steps - time of {args.steps[0]}) / "
             f"{args.steps[1] - args.steps[0]}, median of {args.rounds} interleaved rounds. "
             "Command: `NVLABS_SG2ADA=<checkout> python benchmarks/inversion_step.py"
             + "".join(f" --{k} {v}" for k, v in (("threads", args.threads), ("clock", args.clock),
                                                  ("rounds", args.rounds))
                       if v != {"threads": 2, "clock": "wall", "rounds": 3}[k])
             + "`.", "",
             "| what | ms per step |", "|---|---|"]
    lines += [f"| {name} | {v:.1f} |" for name, v in ms.items()]
    lines.append("")
    mse = ms["ganprior w+ (mse)"]
    if "NVIDIA projector loop (mse)" in ms:
        r = ms["NVIDIA projector loop (mse)"] / mse
        lines.append(f"target: w+ step >= {TARGET_NV:g}x NVIDIA's projector loop: "
                     f"{'met' if r >= TARGET_NV else 'NOT met'} ({r:.2f}x)")
    auto = [v for k, v in ms.items() if "auto" in k]
    if auto:
        r = auto[0] / mse
        lines.append(f"target: --loss auto <= {TARGET_AUTO:g}x plain MSE at batch 1: "
                     f"{'met' if r <= TARGET_AUTO else 'NOT met'} ({r:.2f}x, auto = {auto_name})")
    table = "\n".join(lines)
    print(table)
    if not args.no_write and args.only is None:
        write_section("inversion-step", "One inversion step (`benchmarks/inversion_step.py`)",
                      table.replace("\ntarget:", "\n\ntarget:"))


if __name__ == "__main__":
    main()
