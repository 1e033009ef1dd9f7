"""ADA augmentation pipe speed: ganprior's AugmentPipe vs NVIDIA's, as the trainer uses it.

    NVLABS_SG2ADA=/path/to/stylegan2-ada-pytorch python benchmarks/augment.py [--p 0.6]

Both pipes run the full "bgc" set at the same fixed p on the same batch; each timing is one
forward plus the double backward that R1 needs (gradient of the output w.r.t. the input with
create_graph, then backward through it). Rounds alternate between the implementations; the
median round is reported. Without the environment variable only ganprior is timed.
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

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from report import write_section  # noqa: E402  (benchmarks/report.py)

from ganprior.train.augment import AugmentPipe  # noqa: E402


def nvidia_pipe(p):
    path = os.environ.get("NVLABS_SG2ADA")
    if not path or not Path(path, "training", "augment.py").exists():
        return None
    sys.modules.setdefault("requests", types.ModuleType("requests"))
    sys.path.insert(0, path)
    from training.augment import AugmentPipe as NvidiaPipe  # noqa: E402  (from the env var path)
    pipe = NvidiaPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                      brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    pipe.p.copy_(torch.tensor(p))
    return pipe


def forward_double_backward(pipe, x):
    x = x.detach().requires_grad_(True)
    y = pipe(x)
    grad, = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    grad.sum().backward()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--p", type=float, default=0.6)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5, help="calls per round")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.res, args.res)
    pipes = {"ganprior": AugmentPipe(p=args.p)}
    nvidia = nvidia_pipe(args.p)
    if nvidia is not None:
        pipes["NVIDIA reference"] = nvidia
    else:
        print("NVLABS_SG2ADA not set (or not a stylegan2-ada-pytorch checkout): timing ganprior only",
              file=sys.stderr)
    times = {name: [] for name in pipes}
    for name, pipe in pipes.items():
        forward_double_backward(pipe, x)  # warm-up
    for _ in range(args.rounds):
        for name, pipe in pipes.items():
            t = time.perf_counter()
            for _ in range(args.reps):
                forward_double_backward(pipe, x)
            times[name].append((time.perf_counter() - t) / args.reps)
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    rows = "\n".join(f"| {name} | {v:.0f} |" for name, v in ms.items())
    text = (f"Measured {datetime.date.today()} on {os.cpu_count()} CPU cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, fp32. Batch {args.batch}, {args.res} px, bgc at p {args.p}, "
            f"forward + double backward; median of {args.rounds} rounds of {args.reps}. On CPU NVIDIA's "
            "pipe runs its pure-PyTorch fallback (`_upfirdn2d_ref`), not its CUDA kernel. "
            "Command: `NVLABS_SG2ADA=<checkout> python benchmarks/augment.py`.\n\n"
            f"| implementation | ms per batch |\n|---|---|\n{rows}\n")
    if len(ms) == 2:
        text += f"\nganprior / NVIDIA speed: **{ms['NVIDIA reference'] / ms['ganprior']:.2f}x**\n"
    print(text)
    if not args.no_write:
        write_section("augment", "ADA pipe speed vs NVIDIA (`benchmarks/augment.py`)", text)


if __name__ == "__main__":
    main()
