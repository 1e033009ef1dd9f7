"""Generator forward speed and peak memory: ganprior vs NVIDIA's reference implementation.

    python benchmarks/generate.py                 # writes the table into BENCHMARKS.md
    NVLABS_SG2ADA=/path/to/stylegan2-ada-pytorch python benchmarks/generate.py

Configs: the embedded DCGAN (dcgan-digiface64), and StyleGAN2 at 64 px (channel_base 8192,
channel_max 256, 8 mapping layers) and 256 px (16384 / 512), const noise, fp32, batch 1 and 16.
Speed: all variants of one config run interleaved in one process (median over rounds), so the
ratios are fair even when the machine's speed drifts. NVIDIA's code is only used when the
environment variable points at a checkout (never committed here); weights are shared, and its
outputs are checked against ours before timing. Memory: peak RSS growth during one forward
pass, each measured in a fresh subprocess (Linux /proc; VmHWM reset via clear_refs).

Conv limit (`benchmarks/conv_limit.py`): the generator's 3x3 convs as plain channels-last
oneDNN convs at batch 16, timed as one more variant in the same rounds; each implementation's
share of it = img/s x the generator's FLOPs per image / limit GFLOP/s. The last lines check the
targets of issue 12: >= 2x NVIDIA's best mode in every StyleGAN2 row, >= 70 % of the limit at
batch 16 (exit status 0 either way; the lines say "met" or "NOT met").
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from conv_limit import ConvLimit, generator_flops  # noqa: E402  (benchmarks/conv_limit.py)
from report import write_section  # noqa: E402  (benchmarks/report.py)

LIMIT_BATCH = 16
TARGET_RATIO, TARGET_SHARE = 2.0, 0.70

SG2_CONFIGS = {
    "stylegan2-64": dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3,
                         mapping_kwargs=dict(num_layers=8),
                         synthesis_kwargs=dict(channel_base=8192, channel_max=256,
                                               num_fp16_res=0, conv_clamp=None)),
    "stylegan2-256": dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                          mapping_kwargs=dict(num_layers=8),
                          synthesis_kwargs=dict(channel_base=16384, channel_max=512,
                                                num_fp16_res=0, conv_clamp=None)),
}


def nvidia_generator_class():
    path = os.environ.get("NVLABS_SG2ADA")
    if not path or not Path(path, "training", "networks.py").exists():
        return None
    # dnnlib.util imports `requests` for downloads only; an empty module is enough here.
    sys.modules.setdefault("requests", types.ModuleType("requests"))
    sys.path.insert(0, path)
    from training.networks import Generator  # noqa: E402  (NVIDIA's, from the env var path)
    return Generator


def build(config: str, impl: str):
    """-> (callable(batch z) -> images, z_dim)."""
    if config == "dcgan-digiface64":
        from ganprior.checkpoints import load_generator
        G = load_generator("dcgan-digiface64")
        return (lambda z: G.synthesize(G.z_to_w(z))), G.z_dim, None
    torch.manual_seed(0)
    from ganprior.nets.stylegan2 import StyleGAN2Generator
    ours = StyleGAN2Generator(**SG2_CONFIGS[config]).eval()
    if impl == "conv-limit":
        return ConvLimit(ours, LIMIT_BATCH), 512, ours
    if impl.startswith("ours"):
        opts = {"ours": {}, "ours-fused": dict(fused_modconv=True),
                "ours-unfused": dict(fused_modconv=False, channels_last=False),
                "ours-unfused-cl": dict(fused_modconv=False, channels_last=True)}[impl]
        return (lambda z: ours(z, None, noise_mode="const", **opts)), 512, ours
    Nv = nvidia_generator_class()
    nv = Nv(**SG2_CONFIGS[config]).eval()
    nv.load_state_dict(ours.state_dict())
    fused = impl == "nvidia-fused"
    return (lambda z: nv(z, None, noise_mode="const", fused_modconv=fused)), 512, ours


def _rss_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure_memory(config, impl, batch):
    """Runs in a subprocess: peak RSS growth (MiB) during one forward pass."""
    torch.set_num_threads(2)
    fn, z_dim, _ = build(config, impl)
    z = torch.randn(batch, z_dim)
    with torch.no_grad():
        fn(z[:1])  # one warm-up at batch 1 so lazy initialisation is not counted
        Path("/proc/self/clear_refs").write_text("5")
        before = _rss_kb("VmRSS")
        fn(z)
        peak = _rss_kb("VmHWM")
    return (peak - before) / 1024


CLOCKS = {"wall": time.perf_counter,
          # CPU time of this process: with --threads 1 it counts only the time the benchmark
          # actually ran, so figures hold up on a machine shared with other jobs.
          "cpu": time.process_time}


def time_variants(config, impls, batch, rounds, min_seconds, clock=time.perf_counter):
    fns = {}
    for impl in impls:
        fns[impl], z_dim, ours = build(config, impl)
    z = torch.randn(batch, z_dim)
    with torch.no_grad():
        ref = fns[impls[0]](z)
        for impl in impls[1:]:
            if impl == "conv-limit":
                continue
            err = (fns[impl](z) - ref).abs().max().item()
            assert err < 1e-3, f"{config} {impl}: outputs differ by {err}"
        results = {impl: [] for impl in impls}
        for _ in range(rounds):
            for impl in impls:
                n, t0 = 0, clock()
                while True:
                    fns[impl](z)
                    n += 1
                    if clock() - t0 >= min_seconds:
                        break
                results[impl].append(n * batch / (clock() - t0))
    return {impl: statistics.median(v) for impl, v in results.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--configs", default="dcgan-digiface64,stylegan2-64,stylegan2-256")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the "
                    "machine kind's core count)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall time, or process CPU time (use with --threads 1 on a busy machine)")
    ap.add_argument("--memory-child", nargs=3, metavar=("CONFIG", "IMPL", "BATCH"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        c, i, b = args.memory_child
        print(json.dumps(measure_memory(c, i, int(b))))
        return
    torch.set_num_threads(args.threads)
    have_nv = nvidia_generator_class() is not None
    if not have_nv:
        print("NVLABS_SG2ADA not set (or not a stylegan2-ada-pytorch checkout): "
              "timing ganprior only", file=sys.stderr)
    rows = []
    for config in args.configs.split(","):
        for batch in (1, 16):
            if config == "dcgan-digiface64":
                impls = ["ours"]
            else:
                impls = ["ours", "ours-fused", "ours-unfused", "ours-unfused-cl"]
                if have_nv:
                    impls += ["nvidia-fused", "nvidia-unfused"]
                impls.append("conv-limit")
            speeds = time_variants(config, impls, batch, args.rounds, args.min_seconds,
                                   CLOCKS[args.clock])
            limit = None
            if "conv-limit" in speeds:  # calls/s x FLOPs per call
                calls = speeds.pop("conv-limit") / batch
                fn, _, ours = build(config, "conv-limit")
                limit = dict(gflops=calls * fn.flops / 1e9,
                             gen_gflop_per_img=generator_flops(ours) / 1e9)
            mem = {}
            for impl in () if args.no_memory else ("ours",) + (("nvidia-fused", "nvidia-unfused") if have_nv and config != "dcgan-digiface64" else ()):
                out = subprocess.run([sys.executable, __file__, "--memory-child", config, impl, str(batch)],
                                     capture_output=True, text=True, env=os.environ)
                mem[impl] = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
            row = dict(config=config, batch=batch, speeds=speeds, memory_mib=mem,
                       conv_limit=limit)
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = "\n\n".join([render(rows, have_nv, args)] + target_lines(rows, have_nv))
    print(table)
    if not args.no_write:
        write_section("generate", "Generator forward (`benchmarks/generate.py`)", table)


def nvidia_best(speeds):
    if "nvidia-fused" not in speeds:
        return None
    return max(("nvidia-fused", "nvidia-unfused"), key=lambda k: speeds[k])


def share(row, impl):
    """Fraction of the conv limit an implementation reaches (None without a limit)."""
    lim = row.get("conv_limit")
    if not lim or impl not in row["speeds"]:
        return None
    return row["speeds"][impl] * lim["gen_gflop_per_img"] / lim["gflops"]


def command_options(args) -> str:
    opts = [(f"--{k.replace('_', '-')}", v) for k, v in vars(args).items()
            if k in ("rounds", "min_seconds", "threads", "clock", "configs")]
    defaults = {"--rounds": 3, "--min-seconds": 1.0, "--threads": 2, "--clock": "wall",
                "--configs": "dcgan-digiface64,stylegan2-64,stylegan2-256"}
    return "".join(f" {k} {v}" for k, v in opts if defaults[k] != v)


def malloc_note() -> str:
    """glibc allocator settings taken from the environment, if any (they change the figures:
    see BENCHMARKS.md), so a table says under which it was measured."""
    env = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("MALLOC_"))
    return f" Allocator environment: `{' '.join(env)}`." if env else ""


def render(rows, have_nv, args):
    when = datetime.date.today().isoformat()
    cpu = platform.processor() or platform.machine()
    lines = [f"Measured {when} on {os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, fp32, noise const, {args.clock} clock. Command: "
             f"`NVLABS_SG2ADA=<checkout> python benchmarks/generate.py{command_options(args)}`"
             " (`make bench` runs the defaults). Conv limit "
             f"= the generator's 3x3 convs as plain channels-last convs at batch {LIMIT_BATCH}, "
             "timed in the same rounds (`benchmarks/conv_limit.py`)." + malloc_note(), "",
             "| config | batch | ganprior img/s (auto) | fused | unfused | unfused + channels-last |"
             + (" NVIDIA fused | NVIDIA unfused | speed-up vs NVIDIA's best |" if have_nv else "")
             + " conv limit (GFLOP/s) | GFLOP/img | share of limit, ganprior |"
             + (" share, NVIDIA best |" if have_nv else "")
             + " peak RSS ganprior (MiB) |" + (" peak RSS NVIDIA best (MiB) |" if have_nv else ""),
             "|---|---|---|---|---|---|" + ("---|---|---|" if have_nv else "") + "---|---|---|"
             + ("---|" if have_nv else "") + "---|" + ("---|" if have_nv else "")]
    pct = lambda v: f"{100 * v:.0f} %" if v is not None else "–"  # noqa: E731
    for r in rows:
        s, m, lim = r["speeds"], r["memory_mib"], r.get("conv_limit")
        f = lambda k: f"{s[k]:.1f}" if k in s else "–"  # noqa: E731
        line = f"| {r['config']} | {r['batch']} | {f('ours')} | {f('ours-fused')} | {f('ours-unfused')} | {f('ours-unfused-cl')} |"
        best = nvidia_best(s)
        if have_nv:
            if best:
                line += f" {f('nvidia-fused')} | {f('nvidia-unfused')} | **{s['ours'] / s[best]:.2f}x** |"
            else:
                line += " – | – | – |"
        if lim:
            line += f" {lim['gflops']:.0f} | {lim['gen_gflop_per_img']:.2f} | {pct(share(r, 'ours'))} |"
        else:
            line += " – | – | – |"
        if have_nv:
            line += f" {pct(share(r, best)) if best else '–'} |"
        mem = lambda k: f"{m[k]:.0f}" if m.get(k) is not None else "–"  # noqa: E731
        line += f" {mem('ours')} |"
        if have_nv:
            line += f" {mem(best) if best else '–'} |"
        lines.append(line)
    return "\n".join(lines)


def target_lines(rows, have_nv):
    """Issue 12's generation targets, one line each, with the measured figures."""
    out = []
    sg2 = [r for r in rows if r.get("conv_limit")]
    if have_nv and sg2:
        ratios = [(r, r["speeds"]["ours"] / r["speeds"][nvidia_best(r["speeds"])]) for r in sg2]
        worst = min(ratios, key=lambda t: t[1])
        ok = worst[1] >= TARGET_RATIO
        out.append(f"target: >= {TARGET_RATIO:g}x NVIDIA's best mode in every StyleGAN2 row: "
                   f"{'met' if ok else 'NOT met'} (lowest {worst[1]:.2f}x at {worst[0]['config']} "
                   f"batch {worst[0]['batch']})")
    b16 = [(r, share(r, "ours")) for r in sg2 if r["batch"] == 16]
    if b16:
        worst = min(b16, key=lambda t: t[1])
        ok = worst[1] >= TARGET_SHARE
        out.append(f"target: >= {100 * TARGET_SHARE:.0f} % of the conv limit at batch 16: "
                   f"{'met' if ok else 'NOT met'} (lowest {100 * worst[1]:.0f} % at "
                   f"{worst[0]['config']})")
    return out


if __name__ == "__main__":
    main()
