"""This CPU's sustained conv throughput at a StyleGAN2 generator's shapes (the "conv limit").

    python benchmarks/conv_limit.py [--config stylegan2-256] [--batch 16]

The limit is what oneDNN reaches on the generator's own convolution workload with nothing else
in the way: one plain, shared-weight 3x3 conv per synthesis layer (same input and output
channels; a stride-2 up-conv is stood in for by a 3x3 conv at its input resolution, which has
the same multiply-adds), channels-last activations and weights, fp32, run back to back. Its
GFLOP/s = conv multiply-adds x 2 / time. A generator's share of the limit = its img/s x its
FLOPs per image (`torch.utils.flop_counter`, modulation, FIR filters and toRGB included) /
the limit. `benchmarks/generate.py` times the limit interleaved with the generators, in the
same process, so both see the same machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ganprior.nets.stylegan2 import SynthesisLayer  # noqa: E402


def conv_shapes(G) -> list[tuple[int, int, int]]:
    """(in channels, out channels, input resolution) of each synthesis layer's 3x3 conv."""
    shapes = []
    for m in G.synthesis.modules():
        if isinstance(m, SynthesisLayer):
            out_ch, in_ch = m.weight.shape[:2]
            shapes.append((in_ch, out_ch, m.resolution // m.up))
    return shapes


def generator_flops(G) -> int:
    """FLOPs of one image through the synthesis network (mapping excluded: < 0.1 %)."""
    from torch.utils.flop_counter import FlopCounterMode
    ws = torch.zeros(1, G.num_ws, G.w_dim)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        G.synthesize(ws, noise_mode="const")
    return counter.get_total_flops()


class ConvLimit:
    """The generator's 3x3 convs as plain channels-last convs at one batch size."""

    def __init__(self, G, batch: int):
        gen = torch.Generator().manual_seed(0)
        cl = torch.channels_last
        self.convs = []
        for in_ch, out_ch, res in conv_shapes(G):
            x = torch.randn(batch, in_ch, res, res, generator=gen).contiguous(memory_format=cl)
            w = torch.randn(out_ch, in_ch, 3, 3, generator=gen).contiguous(memory_format=cl)
            self.convs.append((x, w))
        self.flops = sum(2 * x.shape[0] * w.numel() * x.shape[2] * x.shape[3]
                         for x, w in self.convs)

    def __call__(self, _=None):
        for x, w in self.convs:
            F.conv2d(x, w, padding=1)


def measure(G, batch: int = 16, rounds: int = 5, min_seconds: float = 1.0) -> float:
    """Median GFLOP/s of the limit over `rounds` timed runs of >= min_seconds each."""
    limit = ConvLimit(G, batch)
    speeds = []
    with torch.no_grad():
        limit()
        for _ in range(rounds):
            n, t0 = 0, time.perf_counter()
            while n == 0 or time.perf_counter() - t0 < min_seconds:
                limit()
                n += 1
            speeds.append(n * limit.flops / (time.perf_counter() - t0) / 1e9)
    return statistics.median(speeds)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="stylegan2-256")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from generate import SG2_CONFIGS  # noqa: E402  (benchmarks/generate.py)
    from ganprior.nets.stylegan2 import StyleGAN2Generator
    G = StyleGAN2Generator(**SG2_CONFIGS[args.config]).eval()
    gflops = measure(G, args.batch, args.rounds)
    print(f"{args.config}: generator {generator_flops(G) / 1e9:.2f} GFLOP per image; conv limit "
          f"at batch {args.batch}, {torch.get_num_threads()} threads: {gflops:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
