"""DragGAN: drag-step speed beside the official renderer, and quality on a fixed set of drags.

    python benchmarks/drag.py [--quick] [--tasks 50] [--max-steps 300]
    DRAGGAN_REPO=<XingangPan/DragGAN checkout> python benchmarks/drag.py

Speed: ms per drag step (render + track + motion supervision + Adam, one handle, no mask) of
ganprior's DragSession and, when DRAGGAN_REPO points at a checkout of the official code, of
its `viz/renderer.py` `_render_drag_impl` on the *same weights* (ours loaded into its
Generator) in the same process, interleaved round by round (median), so the ratio holds on a
busy machine. Configs: StyleGAN2 at 64 px (channel_base 8192 / channel_max 256) and 256 px
(16384 / 512) as benchmarks/generate.py, 128 px (16384 / 512), 8 mapping layers, fp32, noise
const; the embedded zoo models stylegan2-digiface64 (its weights, both implementations) and
dcgan-digiface64 (ours only: the official code is StyleGAN-only). Both
use the same feature block (ours' default: the 6th block, b32 at 64 px) and the same r1 / r2
in pixels (the official code takes them in 512 px units and rounds r/512*H, which is 0 at
64 px: it is given r*512/H so that its rounding lands on our pixel radii).

Quality: `--tasks` seeded drags on generated images of stylegan2-digiface64 (truncation 0.7),
with 1 and with 5 handles (handles >= 8 % of the image apart, targets 5-15 % of the image away
in a random direction, everything >= 12.5 % inside the border), for the paper's tracker and
the robust one, and (with DRAGGAN_REPO) the official code's own drag: its renderer stepped as
its GUI does, with its tracker and its stop rule (every handle within max(2, 2/512 of the
image) px, where ours stop at d = 1 px at 64 px). Per setting: initial and final mean
handle-target distance (MD, px and fraction of the image), the share that converged (every
handle within d; the official row: within its own 2 px) and their steps and
seconds, and an independent check: the 7x7 patch around each handle in the start image is
found again in the final image by least squares (search box: handle and target, 6 px
around), so where the content went is measured without the tracker. "Independent MD" is the
target distance of those matches (the target: within 1 px of the tracker's MD); the mean
distance from each tracker point to its handle's match is printed too; "lost" = handles whose
match is > 5 % of the image (3.2 px at 64) from the tracker's final point (the tracker
follows something else).
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from report import write_section  # noqa: E402  (benchmarks/report.py)

from ganprior.checkpoints import load_generator  # noqa: E402
from ganprior.editing.drag import DragSession, DragSettings  # noqa: E402

SG2_CONFIGS = {
    f"stylegan2-{res}": dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                             mapping_kwargs=dict(num_layers=8),
                             synthesis_kwargs=dict(channel_base=base, channel_max=cmax,
                                                   num_fp16_res=0, conv_clamp=None))
    for res, base, cmax in ((64, 8192, 256), (128, 16384, 512), (256, 16384, 512))}
TASK_MODEL = "stylegan2-digiface64"
PATCH, SEARCH_MARGIN = 3, 6          # independent check: 7x7 patch, search box margin (px)
LOST_FRACTION = 0.05                 # tracker vs independent match farther than this: lost
TARGET_SPEEDUP, TARGET_MD_CUT, TARGET_AGREE = 2.0, 0.80, 1.0


# --- the official renderer -------------------------------------------------------------------
def official_modules():
    """(Renderer, Generator, EasyDict) from DRAGGAN_REPO, or None."""
    path = os.environ.get("DRAGGAN_REPO")
    if not path or not Path(path, "viz", "renderer.py").exists():
        return None
    sys.modules.setdefault("requests", types.ModuleType("requests"))  # dnnlib's downloads only
    sys.path.insert(0, path)
    import dnnlib  # noqa: E402  (the official checkout's)
    from training.networks_stylegan2 import Generator  # noqa: E402
    from viz.renderer import Renderer  # noqa: E402
    return Renderer, Generator, dnnlib.EasyDict


class OfficialDrag:
    """The official drag step on our weights: its Renderer with the network and latent set the
    way its init_network sets them (w+, Adam on the latent), stepped through _render_drag_impl."""

    def __init__(self, modules, config, ours, ws, handle, target, feature_idx, r1, r2, lr):
        Renderer, Generator, self.EasyDict = modules
        net = Generator(**config).eval()
        net.load_state_dict(ours.state_dict())
        self.r = Renderer(disable_timing=True)
        self.r.G, self.r.w0 = net, ws.detach().clone()
        self.r.w = ws.detach().clone().requires_grad_(True)
        self.r.w_optim = torch.optim.Adam([self.r.w], lr=lr)
        self.r.feat_refs, self.r.points0_pt = None, None
        H = ours.img_resolution
        self.points = [[handle[1], handle[0]]]      # the official points are (row, column)
        self.targets = [[target[1], target[0]]]
        self.kw = dict(feature_idx=feature_idx, r1=r1 * 512 / H, r2=r2 * 512 / H,
                       lambda_mask=20, trunc_psi=1.0, is_drag=True)

    def step(self):
        res = self.EasyDict()
        self.r._render_drag_impl(res, points=self.points, targets=self.targets, mask=None,
                                 **self.kw)
        if "error" in res:
            raise RuntimeError(res.error)
        return res


CLOCKS = {"wall": time.perf_counter,
          # CPU time of this process: with --threads 1 it counts only the time the benchmark
          # ran, so a machine shared with other jobs does not inflate the figures
          "cpu": time.process_time}


def speed_rows(configs, modules, rounds, steps_per_round, clock=time.perf_counter):
    rows = []
    for config in configs:
        torch.manual_seed(0)
        if config in SG2_CONFIGS:
            from ganprior.nets.stylegan2 import StyleGAN2Generator
            G, kwargs = StyleGAN2Generator(**SG2_CONFIGS[config]).eval(), SG2_CONFIGS[config]
        else:  # a zoo model (its own weights and config)
            G = load_generator(config)
            kwargs = G.config if G.arch == "stylegan2" else None
        H = G.img_resolution
        ws = G.z_to_w(G.z_from_seed(0), truncation_psi=0.7).detach()
        handle, target = (round(0.3 * H), H // 2), (round(0.7 * H), H // 2)  # never converges
        session = DragSession(G, ws, [handle], [target], settings=DragSettings(max_steps=10**9))
        runners = {"ganprior": session.step}
        note = ""
        if modules is not None and kwargs is not None:
            names = [f"b{r}" for r in G.synthesis.block_resolutions]
            official = OfficialDrag(modules, kwargs, G, ws, handle, target,
                                    names.index(session.layer), session.radii["r1"],
                                    session.radii["r2"], session.settings.lr)
            ours_img = session.image()
            theirs = official.step()
            err = (torch.from_numpy(np.asarray(theirs.image)).float()
                   - _uint8(ours_img)).abs().max().item()
            note = f"start images differ by <= {err:.0f}/255"
            runners["official"] = official.step
        for fn in runners.values():  # warm-up
            fn()
            fn()
        times = {k: [] for k in runners}
        for _ in range(rounds):
            for k, fn in runners.items():
                t0 = clock()
                for _ in range(steps_per_round):
                    fn()
                times[k].append((clock() - t0) / steps_per_round * 1000)
        ms = {k: statistics.median(v) for k, v in times.items()}
        row = dict(config=config, layer=session.layer, radii=session.radii, ms=ms, note=note)
        print(row, flush=True)
        rows.append(row)
    return rows


def _uint8(img):
    return (img[0] * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).float()


# --- the drag tasks ----------------------------------------------------------------------------
def make_tasks(n: int, n_points: int, resolution: int, seed: int = 0) -> list[dict]:
    """`n` seeded drags: image seed, handles and targets (x, y) in pixels (module doc)."""
    rng = np.random.RandomState(seed + 1000 * n_points)
    lo, hi = math.ceil(0.125 * resolution), math.floor(0.875 * (resolution - 1))
    apart = 0.08 * resolution
    tasks = []
    for k in range(n):
        handles, targets = [], []
        while len(handles) < n_points:
            h = rng.uniform(lo, hi, size=2).round()
            dist = rng.uniform(0.05, 0.15) * resolution
            angle = rng.uniform(0, 2 * math.pi)
            t = h + dist * np.array([math.cos(angle), math.sin(angle)])
            if not (lo <= t[0] <= hi and lo <= t[1] <= hi):
                continue
            if any(np.hypot(*(h - np.array(o))) < apart for o in handles):
                continue
            handles.append((float(h[0]), float(h[1])))
            targets.append((float(t[0]), float(t[1])))
        tasks.append(dict(seed=10_000 + k, handles=handles, targets=targets))
    return tasks


def locate(start: torch.Tensor, final: torch.Tensor, handle, target) -> tuple[float, float]:
    """Where the (2 PATCH + 1)^2 patch of `start` around `handle` is in `final`: the least-
    squares match over the box spanned by handle and target plus SEARCH_MARGIN px."""
    _, _, H, W = start.shape
    hx, hy = int(round(handle[0])), int(round(handle[1]))
    p = PATCH
    patch = start[:, :, hy - p:hy + p + 1, hx - p:hx + p + 1]
    x0 = max(int(min(hx, target[0])) - SEARCH_MARGIN, p)
    x1 = min(int(math.ceil(max(hx, target[0]))) + SEARCH_MARGIN, W - 1 - p)
    y0 = max(int(min(hy, target[1])) - SEARCH_MARGIN, p)
    y1 = min(int(math.ceil(max(hy, target[1]))) + SEARCH_MARGIN, H - 1 - p)
    region = final[:, :, y0 - p:y1 + p + 1, x0 - p:x1 + p + 1]
    # ||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2 over every placement, as convolutions
    cross = F.conv2d(region, patch)[0, 0]
    energy = F.conv2d(region ** 2, torch.ones_like(patch))[0, 0]
    k = int(torch.argmin(energy - 2 * cross))
    width = x1 - x0 + 1
    return float(x0 + k % width), float(y0 + k // width)


def run_official(G, modules, ws, task, max_steps):
    """The official drag on the task, stepped as its GUI does until its own stop rule (every
    handle within max(2 px, 2/512 of the image)) or max_steps: (start image, records, that
    stop distance, seconds of the steps), records shaped as DragSession's (image
    [1, C, H, W] in [-1, 1], points as (x, y))."""
    G.requires_grad_(False)
    ours = DragSession(G, ws, task["handles"], task["targets"])  # the same block and radii
    layer, radii = ours.layer, ours.radii
    names = [f"b{r}" for r in G.synthesis.block_resolutions]
    drag = OfficialDrag(modules, G.config, G, ws, task["handles"][0], task["targets"][0],
                        names.index(layer), radii["r1"], radii["r2"], DragSettings.lr)
    drag.points = [[int(y), int(x)] for x, y in task["handles"]]  # its GUI gives integers
    drag.targets = [[y, x] for x, y in task["targets"]]
    records, t0 = [], time.perf_counter()
    for step in range(max_steps + 1):
        res = drag.step()  # renders the current latent, tracks, then takes one Adam step
        image = torch.from_numpy(np.asarray(res.image)).float().permute(2, 0, 1)[None]
        points = [(float(c), float(r)) for r, c in res.points]
        dist = [math.hypot(tx - px, ty - py) for (px, py), (tx, ty) in zip(points,
                                                                           task["targets"])]
        # its image is (x * 127.5 + 128) truncated to uint8: (u - 127.5) / 127.5 inverts it
        records.append(dict(step=step, image=(image - 127.5) / 127.5, points=points,
                            distances=dist))
        if res.stop:
            break
    H = G.img_resolution
    return records[0]["image"], records, max(2.0, 2 * H / 512), time.perf_counter() - t0


def run_task(G, task, tracking, max_steps, modules=None):
    ws = G.z_to_w(G.z_from_seed(task["seed"]), truncation_psi=0.7).detach()
    if tracking == "official":  # (its setup is not timed, as ours is not)
        start, records, done_within, seconds = run_official(G, modules, ws, task, max_steps)
    else:
        session = DragSession(G, ws, task["handles"], task["targets"],
                              settings=DragSettings(tracking=tracking, max_steps=max_steps))
        start = session.image()
        t0 = time.perf_counter()
        records = session.run()
        seconds = time.perf_counter() - t0
        done_within = session.radii["d"]
    final = records[-1]
    converged = all(d <= done_within for d in final["distances"])
    image = final["image"]
    found = [locate(start, image, h, t) for h, t in zip(task["handles"], task["targets"])]
    res = G.img_resolution
    independent = [math.hypot(fx - tx, fy - ty)
                   for (fx, fy), (tx, ty) in zip(found, task["targets"])]
    gaps = [math.hypot(fx - px, fy - py) for (fx, fy), (px, py) in zip(found, final["points"])]
    lost = [g > LOST_FRACTION * res for g in gaps]
    return dict(initial=statistics.mean(records[0]["distances"]),
                final=statistics.mean(final["distances"]),
                independent=statistics.mean(independent), gap=statistics.mean(gaps),
                lost=sum(lost), points=len(lost),
                converged=converged, steps=final["step"], seconds=seconds)


def quality_row(job) -> dict:
    """One row (n_points, tracking) over the seeded tasks; runs in a worker process."""
    n_points, tracking, n_tasks, max_steps, threads = job
    torch.set_num_threads(threads)
    G = load_generator(TASK_MODEL)
    tasks = make_tasks(n_tasks, n_points, G.img_resolution)
    modules = official_modules() if tracking == "official" else None
    results = [run_task(G, task, tracking, max_steps, modules) for task in tasks]
    row = summarise(results, G.img_resolution)
    row.update(points=n_points, tracking=tracking, tasks=len(tasks))
    print(row, flush=True)
    return row


def quality_rows(n_tasks, max_steps, trackers, point_counts, jobs=1):
    """Every (points, tracking) row; `jobs` > 1 runs rows in that many processes (one torch
    thread each: the rows do not share a core then)."""
    work = [(n, t, n_tasks, max_steps, 1 if jobs > 1 else torch.get_num_threads())
            for n in point_counts for t in trackers]
    if jobs <= 1:
        return [quality_row(w) for w in work]
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return pool.map(quality_row, work, chunksize=1)


def summarise(results, resolution):
    done = [r for r in results if r["converged"]]
    def mean(k, rs=results):
        return statistics.mean(r[k] for r in rs) if rs else float("nan")
    initial, final = mean("initial"), mean("final")
    return dict(initial_md=initial, final_md=final, independent_md=mean("independent"),
                cut=1 - final / initial, agree=abs(mean("independent") - final),
                gap=mean("gap"),
                lost=sum(r["lost"] for r in results) / sum(r["points"] for r in results),
                converged=len(done) / len(results), steps=mean("steps", done),
                seconds=mean("seconds", done), resolution=resolution)


# --- the report --------------------------------------------------------------------------------
def speed_table(rows, have_official) -> str:
    lines = ["| config | feature block | r1 / r2 / d (px) | ganprior ms/step |"
             + (" official ms/step | speed-up |" if have_official else ""),
             "|---|---|---|---|" + ("---|---|" if have_official else "")]
    for r in rows:
        radii = "{r1:g} / {r2:g} / {d:g}".format(**r["radii"])
        cells = [r["config"], r["layer"], radii, f"{r['ms']['ganprior']:.0f}"]
        if have_official:
            theirs = r["ms"].get("official")
            cells += ([f"{theirs:.0f}", f"{theirs / r['ms']['ganprior']:.2f}x"] if theirs
                      else ["(StyleGAN only)", ""])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def quality_table(rows) -> str:
    lines = ["| points | tracking | tasks | MD start (px) | MD end, tracker (px) | MD cut "
             "| MD end, independent (px) | MD tracker - independent (px) "
             "| tracker point to independent match (px) | handles lost | converged | steps "
             "| seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    num = lambda v, f: "–" if math.isnan(v) else format(v, f)  # noqa: E731  (none converged)
    for r in rows:
        res = r["resolution"]
        lines.append(
            f"| {r['points']} | {r['tracking']} | {r['tasks']} | {r['initial_md']:.2f} "
            f"({r['initial_md'] / res:.1%}) | {r['final_md']:.2f} ({r['final_md'] / res:.1%}) "
            f"| {r['cut']:.0%} | {r['independent_md']:.2f} | {r['agree']:.2f} | {r['gap']:.2f} "
            f"| {r['lost']:.0%} | {r['converged']:.0%} | {num(r['steps'], '.0f')} "
            f"| {num(r['seconds'], '.1f')} |")
    return "\n".join(lines)


def target_lines(speed, quality) -> list[str]:
    out = []
    for r in speed:
        theirs = r["ms"].get("official")
        if theirs and r["config"] in ("stylegan2-64", "stylegan2-256"):
            ratio = theirs / r["ms"]["ganprior"]
            out.append(f"- drag step >= {TARGET_SPEEDUP:g}x the official at {r['config']}: "
                       f"{ratio:.2f}x, {'met' if ratio >= TARGET_SPEEDUP else 'NOT met'}")
    one = {r["tracking"]: r for r in quality if r["points"] == 1}
    for name, r in one.items():
        if name == "official":  # the targets are ganprior's; the official row is the reference
            continue
        ok = r["cut"] >= TARGET_MD_CUT and r["agree"] <= TARGET_AGREE
        out.append(f"- 1 point, {name}: MD cut {r['cut']:.0%} (target >= {TARGET_MD_CUT:.0%}), "
                   f"tracker and independent MD {r['agree']:.2f} px apart (target <= "
                   f"{TARGET_AGREE:g}): {'met' if ok else 'NOT met'} (per handle, the tracker's "
                   f"point is {r['gap']:.2f} px from the independent match)")
    if "official" in one:
        for name in ("paper", "robust"):
            if name in one:
                out.append(f"- 1 point, tracker vs independent MD: {name} {one[name]['agree']:.2f}"
                           f" px apart, the official code {one['official']['agree']:.2f} px on "
                           "the same tasks")
    five = {r["tracking"]: r for r in quality if r["points"] == 5}
    if {"paper", "robust"} <= set(five):
        a, b = five["paper"]["lost"], five["robust"]["lost"]
        out.append(f"- 5 points: robust loses {b:.0%} of handles, paper {a:.0%}: "
                   f"{'met' if b < a else 'NOT met'}")
    return out


def machine_note() -> str:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return (f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads, load average "
            f"{load:.1f} when the run ended" + (" (a busy machine: absolute times are inflated, "
                                                "the same-process ratios hold)" if load > 2.5
                                                else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 64 px speed, 3 tasks of "
                    "each kind, 60 steps; prints only (BENCHMARKS.md untouched)")
    ap.add_argument("--tasks", type=int, default=50)
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--configs", default="stylegan2-64,stylegan2-128,stylegan2-256,"
                    "stylegan2-digiface64,dcgan-digiface64",
                    help="StyleGAN2 configs (random weights) and zoo models")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps-per-round", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=1, help="quality rows in this many processes")
    ap.add_argument("--trackers", default="paper,robust,official",
                    help="quality rows: ganprior's trackers, and the official drag (its own "
                         "tracker and stop rule; needs DRAGGAN_REPO)")
    ap.add_argument("--points", default="1,5", help="handles per task, one row each")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="speed: wall time, or process CPU time (use with --threads 1 on a "
                         "busy machine)")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.max_steps, args.configs, args.rounds = 3, 60, "stylegan2-64", 2
        args.no_write = True
    torch.set_num_threads(args.threads)
    modules = official_modules()
    if modules is None:
        print("DRAGGAN_REPO not set (or not a DragGAN checkout): timing ganprior only",
              file=sys.stderr)
    speed = [] if args.no_speed else speed_rows(args.configs.split(","), modules, args.rounds,
                                                args.steps_per_round, CLOCKS[args.clock])
    trackers = [t for t in args.trackers.split(",") if t != "official" or modules is not None]
    quality = [] if args.no_quality else quality_rows(
        args.tasks, args.max_steps, trackers, [int(n) for n in args.points.split(",")], args.jobs)
    when = datetime.date.today().isoformat()
    command = (f"`DRAGGAN_REPO=<checkout> python benchmarks/drag.py --tasks {args.tasks} "
               f"--max-steps {args.max_steps} --threads {args.threads} --clock {args.clock}`")
    sections = []
    if speed:
        sections.append(("drag-speed", "DragGAN drag step (`benchmarks/drag.py`)", "\n\n".join(
            [f"Measured {when} on {machine_note()}; clock: {args.clock}. Command: {command} "
             "(`--no-quality` for this table alone; what is measured: the script's "
             "docstring). One handle, no mask, median of interleaved rounds, the same weights "
             "and latent for both:", speed_table(speed, modules is not None),
             *target_lines(speed, [])])))
    if quality:
        sections.append(("drag-quality", "DragGAN drag quality (`benchmarks/drag.py`)",
                         "\n\n".join([
            f"Measured {when} on {machine_note()}. Command: {command} (`--no-speed` for this "
            f"table alone). {args.tasks} seeded drags per row on {TASK_MODEL} (truncation 0.7), "
            f"at most {args.max_steps} steps; MD = mean handle-target distance; independent = "
            "where the start image's 7x7 patch around each handle is found in the final image "
            "(not the tracker's estimate); lost = that match > 5 % of the image from the "
            "tracker's point; steps and seconds over the drags that converged (ours: every "
            "handle within d; official: the official code's own drag, its tracker and its stop "
            "rule, every handle within 2 px):",
            quality_table(quality), *target_lines([], quality)])))
    for key, title, text in sections:
        print(text + "\n")
        if not args.no_write:
            write_section(key, title, text)


if __name__ == "__main__":
    main()
