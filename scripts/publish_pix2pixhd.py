"""Publish a `train pix2pixhd` run's snapshot as an embedded zoo model (a maintainer's tool).

    python scripts/publish_pix2pixhd.py out/train/pix2pixhd-scenes128 --name pix2pixhd-scenes128 \
        --script scripts/train_pix2pixhd_scenes128.sh [--snapshot pix2pixhd-epoch0020] \
        [--quality out/bench/pix2pixhd.json]

Writes
- src/ganprior/zoo/NAME.{safetensors,json}: the generator and the feature encoder (the
  discriminators are for training only and stay in the run), with the provenance: the
  commands, epochs, training time, hardware and, with --quality, the figures of
  `benchmarks/pix2pixhd.py --model NAME` (run it after a first publish: it needs the model);
- src/ganprior/zoo/NAME.clusters.safetensors: `encode-features` on the training data;
- docs/zoo/NAME_samples.png (held-out scenes: label | synthesis | real render),
  NAME_clusters.png (one label map, several feature clusters), NAME_losses.svg, NAME.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ganprior.checkpoints import load_networks, save_native  # noqa: E402
from ganprior.demo import synthesis_pictures  # noqa: E402
from ganprior.files import atomic_write_text  # noqa: E402
from ganprior.images import save_image  # noqa: E402
from ganprior.plots import line_chart  # noqa: E402
from ganprior.synthesis import encode_features, load_pix2pixhd  # noqa: E402
from ganprior.train.pix2pixhd import latest_snapshot  # noqa: E402


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line]


def model_card(name: str, prov: dict, G, E, card_quality: str) -> str:
    t = prov["training"]
    n_g = sum(p.numel() for p in G.parameters())
    n_e = sum(p.numel() for p in E.parameters()) if E is not None else 0
    hours = prov["train_seconds"] / 3600
    return f"""# `{name}`

{prov["summary"]}. Written by `scripts/publish_pix2pixhd.py` from the run's snapshot and log.

| | |
|---|---|
| generator | pix2pixHD global generator, {n_g / 1e6:.2f} M parameters (ngf {t["ngf"]}, {t["n_downsample"]} downsamplings, {t["n_blocks"]} residual blocks), input: {t["label_nc"]} one-hot classes + instance boundaries + {t["feat_num"]} feature channels |
| encoder | instance-wise average pooled features, {n_e / 1e6:.2f} M parameters (nef {t["nef"]}); k-means clusters per class in `{name}.clusters.safetensors` |
| data | {t["n_images"]} procedural scenes of 128×128 (`ganprior data scenes --seed 0`), x-flips {"on" if t["flip"] else "off"} |
| training | {prov["epoch"]} epochs ({t["niter"]} at lr {t["lr"]} + {t["niter_decay"]} decaying to 0), batch {t["batch"]}, {t["num_D"]} discriminators (ndf {t["ndf"]}), {t["gan_mode"].upper()} + feature matching λ {t["lambda_feat"]}, VGG19 loss {"on" if t["vgg"] else "off (VGG19 weights not installed here)"} |
| time | {hours:.2f} h of training on {prov["hardware"]} |
| published | {prov["published"]} |

Quality (`benchmarks/pix2pixhd.py`, held-out scenes, a segmenter trained on real renders):
{card_quality}

Commands:

```sh
{prov["command"]}
```

What ships: `src/ganprior/zoo/{name}.safetensors` (G and E), `{name}.json` (architecture,
classes and palette, this provenance) and `{name}.clusters.safetensors` (the feature
clusters). The discriminators and the training state stay in the run folder; rerunning the
script above resumes it there.

Held-out scenes (label | synthesis with every instance's cluster 0 | the real render):

![samples]({name}_samples.png)

One label map (left), then every thing class that has clusters given cluster 0, 1, ..., 5:

![clusters]({name}_clusters.png)

Training losses (mean over each epoch):

![losses]({name}_losses.svg)
"""


def quality_text(q: dict | None) -> str:
    if not q:
        return "not measured yet (run `python benchmarks/pix2pixhd.py --model NAME`, then " \
               "publish again with --quality out/bench/pix2pixhd.json)."
    real = q["scores"]["real renders (oracle)"]
    lines = [f"- real renders (the oracle): pixel accuracy {real['pixel_accuracy']:.1%}, "
             f"mIoU {real['mean_iou']:.4f};"]
    for key, s in q["scores"].items():
        if key != "real renders (oracle)":
            lines.append(f"- {key}: pixel accuracy {s['pixel_accuracy']:.1%}, mIoU "
                         f"{s['mean_iou']:.4f} ({q['miou_ratio'][key]:.2f} of the oracle's);")
    for cls, v in q["locality"].items():
        what = "instance's (any class)" if cls == "all" else f"{cls}'s"
        lines.append(f"- changing one {what} cluster: {v['mean']:.0%} of the absolute pixel "
                     f"change inside it ({v['grown']:.0%} within 2 px), {v['edits']} edits;")
    lines.append(f"- {q['n_eval']} scenes; `{q['command']}` ({q['date']}); BENCHMARKS.md has "
                 "the tables and pictures.")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--script", type=Path, required=True,
                    help="the shell script whose commands made the run (shown on the page)")
    ap.add_argument("--snapshot", help="snapshot stem (default: the newest)")
    ap.add_argument("--data", help="the training data, for encode-features (default: the "
                                   "provenance's)")
    ap.add_argument("--quality", type=Path, help="benchmarks/pix2pixhd.py's result file")
    ap.add_argument("--zoo-dir", type=Path, default=ROOT / "src" / "ganprior" / "zoo")
    ap.add_argument("--docs-dir", type=Path, default=ROOT / "docs" / "zoo")
    args = ap.parse_args()

    snap = (args.run / args.snapshot).with_suffix(".safetensors") if args.snapshot \
        else latest_snapshot(args.run)
    nets = load_networks(snap)
    G, E, prov = nets["G"], nets.get("E"), dict(nets["meta"]["provenance"])
    commands = [line for line in args.script.read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd ", "BIN="))]
    quality = json.loads(args.quality.read_text()) if args.quality else None
    prov.update(
        summary=(f"pix2pixHD 128 px (global generator with instance features) trained by "
                 f"ganprior on {prov['training']['n_images']} procedural scenes, "
                 f"{prov['epoch']} epochs"),
        command="\n".join(commands).replace("$BIN/", ""),
        published=datetime.date.today().isoformat(),
        snapshot=snap.name, quality=quality,
        license="weights trained here on procedural scenes drawn by ganprior")
    weights, _ = save_native(args.zoo_dir / args.name, G, None, provenance=prov,
                             more={"E": E} if E is not None else None)
    model = load_pix2pixhd(weights, clusters=False)
    if E is not None:
        encode_features(model, args.data or prov["training"]["data"], progress=False)
        model = load_pix2pixhd(weights)

    docs = args.docs_dir
    samples, variants = synthesis_pictures(model)
    save_image(samples, docs / f"{args.name}_samples.png")
    save_image(variants, docs / f"{args.name}_clusters.png")
    log = read_log(args.run)
    xs = [str(e["epoch"]) for e in log]
    atomic_write_text(docs / f"{args.name}_losses.svg", line_chart(
        "losses per epoch", xs, {"G (GAN + feature matching)": [e["loss_G"] for e in log],
                                 "D": [e["loss_D"] for e in log]}, "loss"))
    atomic_write_text(docs / f"{args.name}.md", model_card(args.name, prov, G, E,
                                                           quality_text(quality)))
    print(f"wrote {weights} and docs/zoo/{args.name}.md")


if __name__ == "__main__":
    main()
