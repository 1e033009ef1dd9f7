"""Publish a training run's snapshot as an embedded zoo model (a maintainer's tool).

    python scripts/publish_zoo.py out/sg2/run --name stylegan2-digiface64 \
        --command "ganprior train stylegan2 ..." [--snapshot network-snapshot-000050]

Writes
- src/ganprior/zoo/NAME.{safetensors,json}: G_ema and D (NVIDIA's .pkl needs both, and D can
  serve as a loss), with the provenance: training command, kimg, training time summed from the
  run's log.jsonl, hardware, the C2ST measured anew over five seeds (and the one logged during
  training), and the same test on the training data itself, which is the floor it can reach;
- docs/zoo/NAME_samples.png (seeds 0-63, psi 1), NAME_trunc07.png (psi 0.7), NAME_mixing.png
  (coarse layers 0-3 from the column seeds), NAME_c2st.svg and NAME_losses.svg (vs kimg).
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ganprior.checkpoints import load_networks, save_native  # noqa: E402
from ganprior.data import ImageDataset  # noqa: E402
from ganprior.editing.mixing import style_mixing_grid  # noqa: E402
from ganprior.files import atomic_write_text  # noqa: E402
from ganprior.generate import generate  # noqa: E402
from ganprior.images import grid, save_image  # noqa: E402
from ganprior.metrics.c2st import c2st_accuracy, generator_c2st  # noqa: E402
from ganprior.plots import line_chart  # noqa: E402
from ganprior.train.stylegan2 import holdout_images, holdout_size  # noqa: E402


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line]


def training_seconds(log: list[dict], upto_kimg: float) -> float:
    """Sum of s/kimg x kimg over the logged intervals (work lost to kills is not counted)."""
    total, prev = 0.0, 0.0
    for entry in log:
        if entry["kimg"] > upto_kimg + 1e-9:
            break
        total += entry["sec_per_kimg"] * (entry["kimg"] - prev)
        prev = entry["kimg"]
    return total


def c2st_floor(dataset_path: str, resolution: int, seed: int = 0) -> tuple[float, int]:
    """C2ST between two disjoint sets of training images (the trainer's hold-out size, from the
    training part): the best score a generator can reach. Returns (accuracy, dataset size)."""
    ds = ImageDataset(dataset_path, resolution=resolution)
    n = holdout_size(len(ds))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds) - n, generator=g)[:2 * n].tolist()
    imgs = torch.stack([ds.image(i) for i in idx])
    return c2st_accuracy(imgs[:n], imgs[n:], seed=seed), len(ds)


def c2st_over_seeds(G, dataset_path: str, seeds=(0, 1, 2, 3, 4)) -> list[float]:
    """The trainer's C2ST (the last 500 images, never trained on, against G's samples) on
    several seeds: a single run of it moves by several points."""
    real = holdout_images(ImageDataset(dataset_path, resolution=G.img_resolution))
    return [generator_c2st(G, real, seed) for seed in seeds]


def training_charts(log: list[dict]) -> dict[str, str]:
    xs = [f"{e['kimg']:.0f}" for e in log]
    return {
        "c2st": line_chart("C2ST accuracy of G_ema samples (0.5 = indistinguishable)", xs,
                           {"C2ST": [e.get("c2st_accuracy", float("nan")) for e in log]},
                           "accuracy"),
        "losses": line_chart("losses of the minibatch before each snapshot", xs,
                             {"G": [e["loss_G"] for e in log], "D": [e["loss_D"] for e in log]},
                             "loss")}


def model_card(name: str, prov: dict, G) -> str:
    q, t = prov["quality"], prov["training"]
    n_params = sum(p.numel() for p in G.parameters())
    hours = prov["training_seconds"] / 3600
    fid = "".join(f"| {k} | {v:.5g} |\n" for k, v in q.items() if k.startswith(("fid", "kid")))
    history = f"\n{prov['history']}\n" if prov.get("history") else ""
    return f"""# `{name}`

{prov["summary"]}. Written by `scripts/publish_zoo.py` from the run's snapshot and log.

| | |
|---|---|
| generator | StyleGAN2, {G.img_resolution}×{G.img_resolution}, {n_params / 1e6:.2f} M parameters, z {G.z_dim}-d, w {G.w_dim}-d, {t["map"]}-layer mapping, {G.num_ws} ws |
| data | {prov["data_images"]} images (`{t["data"]}`), x-flips {"on" if t["xflip"] else "off"}, the last {min(500, prov["data_images"] // 10)} held out for the C2ST |
| training | {prov["kimg"]:.0f} kimg, batch {t["mb"]}, lr {t["lrate"]}, R1 γ {t["gamma"]}, path length {t["pl_weight"]}, style mixing {t["mixing"]}, EMA {t["ema"]} kimg, augmentation {t["aug"]} |
| time | {hours:.2f} h of training ({prov["training_seconds"] / prov["kimg"]:.0f} s/kimg) on {prov["hardware"]} |
| quality | C2ST accuracy {q["c2st_mean"]:.3f}, the mean over seeds 0-4 ({", ".join(f"{a:.3f}" for a in q["c2st_seeds"])}; 0.5 = indistinguishable; two sets of real training images score {q["c2st_floor_real_vs_real"]:.3f}) |
| published | {prov["published"]} |
{fid}
How quality was measured: {q["how"]}
{history}
Commands:

```sh
{prov["command"]}
```

What ships: `src/ganprior/zoo/{name}.safetensors` (G_ema and D at {prov["kimg"]:.0f} kimg) and
`{name}.json` (architecture, this provenance, the commands above). The run's training state
(`state.pt`: the non-averaged G, the optimisers' moments, the path-length mean, the counters)
does not ship, and `ganprior train stylegan2` has no option to start from given weights, so
this model cannot be trained further as it is: training more means running the commands above,
which resume only from a run folder of your own.

Samples (seeds 0-63, ψ 1):

![samples]({name}_samples.png)

Truncation ψ 0.7 (seeds 0-31):

![truncation]({name}_trunc07.png)

Style mixing (rows take W+ layers 0-3, the coarse ones, from the column seeds 5-9):

![style mixing]({name}_mixing.png)

Training curves (C2ST at each snapshot; losses of the last minibatch before it):

![c2st]({name}_c2st.svg) ![losses]({name}_losses.svg)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--command", required=True, help="the command lines that made the run")
    ap.add_argument("--snapshot", help="snapshot stem (default: the newest)")
    ap.add_argument("--hardware", help="what the run trained on, when its log does not say")
    ap.add_argument("--history", help="how the training code changed while the run went on "
                    "(shown on the model page)")
    ap.add_argument("--zoo-dir", type=Path, default=ROOT / "src" / "ganprior" / "zoo")
    ap.add_argument("--docs-dir", type=Path, default=ROOT / "docs" / "zoo")
    args = ap.parse_args()

    snaps = sorted(args.run.glob("network-snapshot-*.json"))
    if not snaps:
        sys.exit(f"error: no snapshots in {args.run}")
    stem = args.run / args.snapshot if args.snapshot else snaps[-1].with_suffix("")
    nets = load_networks(stem.with_suffix(".safetensors"))
    G, prov = nets["G"], nets["meta"]["provenance"]
    log = read_log(args.run)
    kimg = float(prov["kimg"])
    entry = next((e for e in log if abs(e["kimg"] - kimg) < 1e-6), None)
    if entry is None:
        sys.exit(f"error: {stem.name} ({kimg} kimg) has no entry in {args.run / 'log.jsonl'}")
    n_params = sum(p.numel() for p in G.parameters())
    quality = dict(prov.get("quality", {}))
    if "c2st_accuracy" in quality:  # the trainer's single seed-0 figure, kept as logged
        quality["c2st_logged"] = quality.pop("c2st_accuracy")
    quality["c2st_seeds"] = c2st_over_seeds(G, prov["training"]["data"])
    quality["c2st_mean"] = statistics.mean(quality["c2st_seeds"])
    quality["c2st_floor_real_vs_real"], n_data = c2st_floor(prov["training"]["data"],
                                                            G.img_resolution)
    quality["how"] = ("C2ST: a 3-layer CNN trained for 300 steps to tell G_ema samples (psi 1, "
                      "const noise) from held-out training images (the last 500 of the dataset, "
                      "never trained on); accuracy on a test half; both sets compared as saved "
                      "8-bit images. c2st_mean averages seeds 0-4 (c2st_seeds) of sampling and "
                      "classifier; c2st_logged is the trainer's seed-0 figure at the snapshot. "
                      "0.5 = indistinguishable. c2st_floor_real_vs_real = the same test between "
                      "two sets of training images.")
    if not any(k.startswith("fid") for k in quality):
        quality["how"] += (" FID/KID: not measured (NVIDIA's Inception detector was not in the "
                           "weights folder; it cannot be downloaded offline).")
    provenance = {
        "summary": (f"StyleGAN2 {G.img_resolution} px ({n_params / 1e6:.2f} M-parameter G) "
                    f"trained by ganprior on {Path(prov['training']['data']).name}, {kimg:.0f} kimg"),
        "data_images": n_data,
        "command": args.command,
        "kimg": kimg,
        "training_seconds": round(training_seconds(log, kimg)),
        "hardware": entry.get("hardware") or args.hardware or "unknown (not in the run's log)",
        "published": datetime.date.today().isoformat(),
        "quality": quality,
        "training": prov["training"],
        "history": args.history,
        "license": "weights trained here from samples of gan-face-generate 1.1.1 (MIT)",
    }
    save_native(args.zoo_dir / args.name, G, nets.get("D"), provenance=provenance)

    docs = args.docs_dir
    seeds = list(range(64))
    save_image(grid(generate(G, seeds)[0], cols=8), docs / f"{args.name}_samples.png")
    save_image(grid(generate(G, seeds[:32], truncation_psi=0.7)[0], cols=8),
               docs / f"{args.name}_trunc07.png")
    picture, _ = style_mixing_grid(G, [1, 2, 3, 4], [5, 6, 7, 8, 9], range(0, 4))
    save_image(picture, docs / f"{args.name}_mixing.png")
    for kind, svg in training_charts(log).items():
        atomic_write_text(docs / f"{args.name}_{kind}.svg", svg)
    atomic_write_text(docs / f"{args.name}.md", model_card(args.name, provenance, G))
    print(json.dumps(provenance, indent=1))


if __name__ == "__main__":
    main()
