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

from report import write_section  # noqa: E402  (benchmarks/report.py)

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


def time_variants(config, impls, batch, rounds, min_seconds):
    fns = {}
    for impl in impls:
        fns[impl], z_dim, ours = build(config, impl)
    z = torch.randn(batch, z_dim)
    with torch.no_grad():
        ref = fns[impls[0]](z)
        for impl in impls[1:]:
            err = (fns[impl](z) - ref).abs().max().item()
            assert err < 1e-3, f"{config} {impl}: outputs differ by {err}"
        results = {impl: [] for impl in impls}
        for _ in range(rounds):
            for impl in impls:
                n, t0 = 0, time.perf_counter()
                while True:
                    fns[impl](z)
                    n += 1
                    if time.perf_counter() - t0 >= min_seconds:
                        break
                results[impl].append(n * batch / (time.perf_counter() - t0))
    return {impl: statistics.median(v) for impl, v in results.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--configs", default="dcgan-digiface64,stylegan2-64,stylegan2-256")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    ap.add_argument("--memory-child", nargs=3, metavar=("CONFIG", "IMPL", "BATCH"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        c, i, b = args.memory_child
        print(json.dumps(measure_memory(c, i, int(b))))
        return
    torch.set_num_threads(2)
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
            speeds = time_variants(config, impls, batch, args.rounds, args.min_seconds)
            mem = {}
            for impl in ("ours",) + (("nvidia-fused", "nvidia-unfused") if have_nv and config != "dcgan-digiface64" else ()):
                out = subprocess.run([sys.executable, __file__, "--memory-child", config, impl, str(batch)],
                                     capture_output=True, text=True, env=os.environ)
                mem[impl] = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
            row = dict(config=config, batch=batch, speeds=speeds, memory_mib=mem)
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = render(rows, have_nv)
    print(table)
    if not args.no_write:
        write_section("generate", "Generator forward (`benchmarks/generate.py`)", table)


def render(rows, have_nv):
    when = datetime.date.today().isoformat()
    cpu = platform.processor() or platform.machine()
    lines = [f"Measured {when} on {os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, fp32, noise const. Command: "
             "`NVLABS_SG2ADA=<checkout> python benchmarks/generate.py` (`make bench`).", "",
             "| config | batch | ganprior img/s (auto) | fused | unfused | unfused + channels-last |"
             + (" NVIDIA fused | NVIDIA unfused | speed-up vs NVIDIA's best |" if have_nv else "")
             + " peak RSS ganprior (MiB) |" + (" peak RSS NVIDIA best (MiB) |" if have_nv else ""),
             "|---|---|---|---|---|---|" + ("---|---|---|" if have_nv else "") + "---|"
             + ("---|" if have_nv else "")]
    for r in rows:
        s, m = r["speeds"], r["memory_mib"]
        f = lambda k: f"{s[k]:.1f}" if k in s else "–"  # noqa: E731
        line = f"| {r['config']} | {r['batch']} | {f('ours')} | {f('ours-fused')} | {f('ours-unfused')} | {f('ours-unfused-cl')} |"
        if have_nv:
            if "nvidia-fused" in s:
                best = max(("nvidia-fused", "nvidia-unfused"), key=lambda k: s[k])
                line += f" {f('nvidia-fused')} | {f('nvidia-unfused')} | **{s['ours'] / s[best]:.2f}x** |"
            else:
                best = None
                line += " – | – | – |"
        mem = lambda k: f"{m[k]:.0f}" if m.get(k) is not None else "–"  # noqa: E731
        line += f" {mem('ours')} |"
        if have_nv:
            line += f" {mem(best) if best else '–'} |"
        lines.append(line)
    return "\n".join(lines)

if __name__ == "__main__":
    main()
