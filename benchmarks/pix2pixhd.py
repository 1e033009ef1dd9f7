"""pix2pixHD on held-out procedural scenes: the paper's segmentation score, instance-edit
locality, diversity across feature clusters, training throughput (issue 15 item 9).

    python benchmarks/pix2pixhd.py --model RUN_FOLDER_OR_CHECKPOINT [--n-eval 200]
    python benchmarks/pix2pixhd.py --model ... --quick      # smoke run: small sets, writes
                                                            # only under out/bench/

1. Scenes: `--n-eval` scenes (label, instance map, real render) from seed `--eval-seed` and
   `--seg-train` scenes from seed `--seg-seed`, both refused if the model's training data
   (its scenes.json) used that seed.
2. Segmenter (ganprior.metrics.segmentation): a compact U-Net trained on the `--seg-train`
   real renders, cached under out/bench/segmenter/ (the file name holds a hash of its
   settings; a rerun loads it).
3. Segmentation score: the segmenter on the real renders (the oracle) and on the images the
   model synthesises from the same label and instance maps (`synthesize_scene`, the code of
   `ganprior synth`: every instance cluster 0, and every instance a random cluster); pixel
   accuracy and mean IoU against the labels, and the ratio to the oracle's.
4. Locality: in `--n-edit` scenes, the largest instance of each thing class with 2+ clusters
   changes from cluster 0 to another one (rotating through them); the share of the absolute
   pixel change (raw generator output, summed over RGB) inside the instance's mask, and
   inside the mask grown by 2 px.
5. Diversity: `--samples` images per label map with random clusters (seeds 0..K-1): mean
   pairwise L1 (and LPIPS when its weights are installed), next to the L1 between the
   synthesis and the real render.
6. Throughput: training images/s from the run's log.jsonl (when next to the checkpoint),
   and synthesis images/s measured here.

Writes docs/benchmarks/pix2pixhd_{eval,locality,diversity}.png and its section of
BENCHMARKS.md (not with --quick), and the main figures to out/bench/pix2pixhd.json (what
scripts/publish_pix2pixhd.py --quality quotes on the model page).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shlex
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from report import write_section  # noqa: E402  (benchmarks/report.py)

from ganprior.data import scenes  # noqa: E402
from ganprior.device import describe_device  # noqa: E402
from ganprior.files import atomic_write_text  # noqa: E402
from ganprior.images import as_saved_image, grid, save_image, to_uint8  # noqa: E402
from ganprior.metrics.segmentation import (SegmentationScore, edit_locality,  # noqa: E402
                                           load_segmenter, save_segmenter, segment,
                                           segmenter_paths, train_segmenter)
from ganprior.synthesis import encode_features, load_pix2pixhd, synthesize_scene  # noqa: E402
from ganprior.synthesis.model import resolve_model_path  # noqa: E402

EVAL_SEED, SEG_SEED = 1_000_000, 2_000_000
PAPER = {"real": (0.8429, 0.6857), "pix2pixHD": (0.8378, 0.6389)}  # Cityscapes, PSPNet
CACHE = ROOT / "out" / "bench" / "segmenter"
DOCS = ROOT / "docs" / "benchmarks"


# --- scenes and the segmenter ---------------------------------------------------------------
def render(seed: int, n: int, size: int) -> dict:
    """n scenes of `seed`: images [N, 3, S, S] in [-1, 1], labels and instance ids [N, S, S]."""
    sc = [scenes.scene(seed, i, size) for i in range(n)]
    image = torch.from_numpy(np.stack([s.image for s in sc])).permute(0, 3, 1, 2)
    return {"image": image.float() / 127.5 - 1,
            "label": torch.from_numpy(np.stack([s.label for s in sc])).long(),
            "inst": torch.from_numpy(np.stack([s.inst for s in sc]).astype(np.int64))}


def training_seeds(model) -> set[int] | None:
    """Seeds of the scenes the model trained on (its data folder's scenes.json), or None."""
    data = (model.provenance.get("training") or {}).get("data")
    path = Path(data) / "scenes.json" if data else None
    if path is None or not path.is_file():
        return None
    try:
        phases = json.loads(path.read_text()).get("phases", {})
        return {int(p["seed"]) for p in phases.values()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def get_segmenter(args, size: int):
    """The cached segmenter for these settings, or a new one trained and cached."""
    settings = {"seed": args.seg_seed, "n": args.seg_train, "size": size,
                "steps": args.seg_steps, "batch": args.seg_batch, "lr": args.seg_lr,
                "width": args.seg_width, "depth": args.seg_depth,
                "scenes_version": scenes.VERSION, "torch": torch.__version__.split("+")[0]}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    stem = CACHE / f"scenes{size}-{key}"
    if segmenter_paths(stem)[0].exists():
        net, meta = load_segmenter(stem)
        print(f"segmenter: loaded {stem}.safetensors (trained in {meta['log']['seconds']} s)")
        return net, meta
    print(f"segmenter: training on {args.seg_train} real renders (seed {args.seg_seed}), "
          f"{args.seg_steps} steps of {args.seg_batch} ...")
    data = render(args.seg_seed, args.seg_train, size)
    net, log = train_segmenter(data["image"], data["label"], scenes.LABEL_NC,
                               args.seg_steps, args.seg_batch, args.seg_lr, args.seg_seed,
                               args.seg_width, args.seg_depth)
    meta = {"settings": settings, "classes": list(scenes.CLASSES), "log": log,
            "hardware": describe_device("cpu")}
    save_segmenter(stem, net, meta)
    print(f"segmenter: {log['seconds']} s ({log['images_per_s']} images/s), saved {stem}")
    return net, meta


# --- synthesis ------------------------------------------------------------------------------
def synth(model, label, inst, **kw) -> torch.Tensor:
    """One image [1, 3, H, W] through the project's inference (`ganprior synth`'s code)."""
    return synthesize_scene(model, label, inst, **kw)[0].cpu()


def synthesise_set(model, data: dict, **kw) -> tuple[torch.Tensor, float]:
    """Images [N, 3, H, W] for every label map of `data`, and the images/s it took."""
    start = time.perf_counter()
    out = torch.cat([synth(model, data["label"][i], data["inst"][i], seed=i, **kw)
                     for i in range(len(data["label"]))])
    return out, len(out) / (time.perf_counter() - start)


def scores(net, images: torch.Tensor, labels: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Segmentation scores of images as saved (8-bit), and the predicted maps."""
    pred = segment(net, as_saved_image(images))
    return SegmentationScore(scenes.LABEL_NC).update(pred, labels).result(), pred


# --- locality and diversity -----------------------------------------------------------------
def edits_of(model, label: torch.Tensor, inst: torch.Tensor, turn: int, min_share: float):
    """[(class, instance id, mask, new cluster)]: the largest instance of each thing class
    with at least two clusters, if it covers `min_share` of the image."""
    out = []
    for name in model.info.get("things") or []:
        c = model.class_id(name)
        k = model.clusters.n(c)
        ids, counts = torch.unique(inst[label == c], return_counts=True)
        if k < 2 or len(ids) == 0:
            continue
        best = int(ids[counts.argmax()])
        mask = inst == best
        if float(mask.float().mean()) >= min_share:
            out.append((name, best, mask, 1 + turn % (k - 1)))
    return out


def locality(model, data: dict, n: int, min_share: float) -> tuple[dict, list]:
    """Per edit: share of the change inside the mask (strict and grown by 2 px)."""
    rows, shown = [], []
    for i in range(min(n, len(data["label"]))):
        label, inst = data["label"][i], data["inst"][i]
        before = synth(model, label, inst)
        for name, iid, mask, k in edits_of(model, label, inst, i, min_share):
            after = synth(model, label, inst, instance_clusters={iid: k})
            strict = edit_locality(before[0], after[0], mask)
            if strict != strict:  # the cluster change did not change the image at all
                continue
            rows.append({"class": name, "strict": strict,
                         "grown": edit_locality(before[0], after[0], mask, dilate=2),
                         "area": float(mask.float().mean()),
                         "change": float((after - before).abs().mean())})
            if len(shown) < 4 and name not in [s[0] for s in shown]:
                shown.append((name, before, after, mask))
    return summarise_locality(rows), shown


def summarise_locality(rows: list) -> dict:
    if not rows:
        return {}
    out = {"all": _stats(rows)}
    for name in sorted({r["class"] for r in rows}):
        out[name] = _stats([r for r in rows if r["class"] == name])
    return out


def _stats(rows):
    s = [r["strict"] for r in rows]
    return {"edits": len(rows), "mean": statistics.fmean(s), "median": statistics.median(s),
            "min": min(s), "grown": statistics.fmean(r["grown"] for r in rows),
            "area": statistics.fmean(r["area"] for r in rows),
            "change": statistics.fmean(r["change"] for r in rows)}


def diversity(model, data: dict, n: int, k: int, lpips) -> tuple[dict, list]:
    """Mean pairwise L1 (images in [0, 1]) and LPIPS between k random-cluster samples."""
    l1, lp, to_real, shown = [], [], [], []
    for i in range(min(n, len(data["label"]))):
        label, inst = data["label"][i], data["inst"][i]
        samples = [synth(model, label, inst, random_features=True, seed=s) for s in range(k)]
        for a, b in combinations(samples, 2):
            l1.append(float((a - b).abs().mean()) / 2)
            if lpips is not None:
                lp.append(float(lpips(a, b)))
        to_real.append(float((samples[0] - data["image"][i:i + 1]).abs().mean()) / 2)
        if len(shown) < 3:
            shown.append((label, samples))
    return {"pairwise_l1": statistics.fmean(l1),
            "pairwise_lpips": statistics.fmean(lp) if lp else None,
            "l1_to_real": statistics.fmean(to_real), "pairs": len(l1)}, shown


def throughput(model_spec: str, model) -> dict:
    """Training images/s from the run's log.jsonl (next to the checkpoint), else provenance."""
    weights = Path(resolve_model_path(model_spec))
    log = weights.parent / "log.jsonl"
    prov = model.provenance
    out = {"hardware": prov.get("hardware"), "train_seconds": prov.get("train_seconds"),
           "epochs": prov.get("epoch"), "processes": prov.get("processes")}
    if log.is_file():
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        speeds = [x["img_per_s"] for x in lines if "img_per_s" in x]
        if speeds:
            out.update(img_per_s=statistics.median(speeds), log_epochs=len(speeds),
                       hardware=lines[-1].get("hardware", out["hardware"]))
    n_images = (prov.get("training") or {}).get("n_images")
    if "img_per_s" not in out and n_images and out["epochs"] and out["train_seconds"]:
        out["img_per_s"] = n_images * out["epochs"] / out["train_seconds"]
    return out


# --- pictures -------------------------------------------------------------------------------
def colours(labels: torch.Tensor) -> np.ndarray:
    return scenes.colourise(labels.numpy().astype(np.uint8))


def eval_grid(data, fake, pred, rows=6) -> np.ndarray:
    """Rows: label | real | synthesised | segmentation of the synthesised image."""
    cells = []
    for i in range(min(rows, len(fake))):
        cells += [colours(data["label"][i]), to_uint8(data["image"][i:i + 1])[0],
                  to_uint8(fake[i:i + 1])[0], colours(pred[i])]
    return grid(np.stack(cells), cols=4)


def locality_grid(shown) -> np.ndarray:
    """Rows: before | after | |change| (brightest = largest) | the edited instance."""
    cells = []
    for _, before, after, mask in shown:
        change = (after - before).abs().sum(1)[0]
        heat = (255 * (change / change.max().clamp_min(1e-12)).sqrt()).byte().numpy()
        cells += [to_uint8(before)[0], to_uint8(after)[0], np.repeat(heat[..., None], 3, 2),
                  np.repeat((mask.numpy() * 255).astype(np.uint8)[..., None], 3, 2)]
    return grid(np.stack(cells), cols=4)


def diversity_grid(shown) -> np.ndarray:
    cells = [c for label, samples in shown
             for c in [colours(label)] + [to_uint8(s)[0] for s in samples]]
    return grid(np.stack(cells), cols=1 + len(shown[0][1]))


# --- report ---------------------------------------------------------------------------------
def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f} %"


def score_rows(results: dict, oracle_miou: float) -> list[str]:
    lines = ["| images segmented | pixel accuracy | mIoU | mIoU / real |", "|---|---|---|---|"]
    for name, (s, _) in results.items():
        lines.append(f"| {name} | {pct(s['pixel_accuracy'])} | {s['mean_iou']:.4f} | "
                     f"{s['mean_iou'] / oracle_miou:.3f} |")
    for name, (acc, miou) in PAPER.items():
        lines.append(f"| paper, Cityscapes: {name} (PSPNet) | {pct(acc)} | {miou:.4f} | "
                     f"{miou / PAPER['real'][1]:.3f} |")
    return lines


def class_rows(results: dict) -> list[str]:
    names = list(results)
    lines = ["| class | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for c, cls in enumerate(scenes.CLASSES):
        cells = [("-" if s["iou"][c] is None else f"{s['iou'][c]:.3f}")
                 for s, _ in results.values()]
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    return lines


def locality_rows(loc: dict) -> list[str]:
    lines = ["| edited class | edits | share inside (mean) | median | min | "
             "inside + 2 px (mean) | instance's share of the image (mean) | mean abs change |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in loc.items():
        lines.append(f"| {name} | {s['edits']} | {pct(s['mean'])} | {pct(s['median'])} | "
                     f"{pct(s['min'])} | {pct(s['grown'])} | {pct(s['area'])} | "
                     f"{s['change']:.4f} |")
    return lines


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pix2pixhd-scenes128",
                    help="zoo name, checkpoint or `train pix2pixhd` run folder")
    ap.add_argument("--data", help="training data, to run encode-features when the model "
                                   "has no clusters yet (default: its provenance's)")
    ap.add_argument("--n-eval", type=int, default=200, help="held-out scenes scored")
    ap.add_argument("--eval-seed", type=int, default=EVAL_SEED)
    ap.add_argument("--seg-train", type=int, default=1000, help="segmenter training scenes")
    ap.add_argument("--seg-seed", type=int, default=SEG_SEED)
    ap.add_argument("--seg-steps", type=int, default=1000)
    ap.add_argument("--seg-batch", type=int, default=8)
    ap.add_argument("--seg-lr", type=float, default=2e-3)
    ap.add_argument("--seg-width", type=int, default=8)
    ap.add_argument("--seg-depth", type=int, default=4)
    ap.add_argument("--n-edit", type=int, default=50, help="scenes with instance edits")
    ap.add_argument("--n-div", type=int, default=30, help="scenes for diversity")
    ap.add_argument("--samples", type=int, default=4, help="random-cluster samples per scene")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (one is fastest on a shared machine)")
    ap.add_argument("--note", default="", help="a sentence for the report (which model "
                                                  "this is, how the machine was loaded)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: small sets, nothing written outside out/bench/")
    args = ap.parse_args()
    for name in ("n_eval", "seg_train", "seg_steps", "seg_batch", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.samples < 2 or args.n_edit < 0 or args.n_div < 0:
        ap.error("--samples must be at least 2 (pairs), --n-edit and --n-div at least 0")
    if args.quick:
        args.n_eval, args.seg_train, args.seg_steps = 12, 48, 60
        args.n_edit, args.n_div, args.samples = 4, 3, 3
    return args


def prepare_model(args):
    model = load_pix2pixhd(args.model, "cpu")
    res = model.info.get("resolution") or [128, 128]
    if res[0] != res[1] or res[0] % scenes.SIZE_MULTIPLE:
        sys.exit(f"error: {args.model} was trained at {res[0]}x{res[1]}; the benchmark "
                 f"renders square scenes of a multiple of {scenes.SIZE_MULTIPLE}")
    used = training_seeds(model)
    for what, seed in (("--eval-seed", args.eval_seed), ("--seg-seed", args.seg_seed)):
        if used is not None and seed in used:
            sys.exit(f"error: {what} {seed} is a seed of the model's training scenes")
    if used is None:
        print(f"note: the model's training seeds are unknown (no scenes.json at its training "
              f"data); held-out means seeds {args.eval_seed} and {args.seg_seed}")
    if model.feat_num and model.clusters is None:
        data = args.data or (model.provenance.get("training") or {}).get("data")
        if not data or not Path(data).is_dir():
            sys.exit(f"error: {args.model} has no feature clusters; run `ganprior "
                     f"encode-features` or pass --data TRAINING_DATA")
        print(f"encode-features: clustering the instance features of {data} ...")
        encode_features(model, data, progress=False)
    return model, res[0], used


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    model, size, used = prepare_model(args)
    data = render(args.eval_seed, args.n_eval, size)
    net, seg_meta = get_segmenter(args, size)

    results = {"real renders (oracle)": scores(net, data["image"], data["label"])}
    fake0, speed = synthesise_set(model, data)
    plain = "synthesised, cluster 0" if model.feat_num else "synthesised"
    results[plain] = scores(net, fake0, data["label"])
    if model.feat_num:
        fake_r, _ = synthesise_set(model, data, random_features=True)
        results["synthesised, random clusters"] = scores(net, fake_r, data["label"])
    oracle = results["real renders (oracle)"][0]["mean_iou"]

    loc, shown_loc, div, shown_div = {}, [], None, []
    if model.feat_num:
        from ganprior.nets.vgg import load_lpips
        if args.n_edit:
            loc, shown_loc = locality(model, data, args.n_edit, 1 / 256)
        if args.n_div:
            div, shown_div = diversity(model, data, args.n_div, args.samples,
                                       load_lpips("cpu"))
    thr = throughput(args.model, model)

    lines = describe(args, model, size, used, seg_meta, speed, thr)
    lines += ["", f"Segmentation score, {args.n_eval} held-out scenes:", ""]
    lines += score_rows(results, oracle)
    lines += ["", "IoU per class:", ""] + class_rows(results)
    if loc:
        lines += ["", "Instance-edit locality (one instance from cluster 0 to another; "
                      "share of the absolute pixel change inside its mask):", ""]
        lines += locality_rows(loc)
    elif model.feat_num and args.n_edit:
        lines += ["", "Locality: no instance of a class with 2+ clusters was large enough."]
    if not model.feat_num:
        lines += ["", "The model has no instance features (trained without --features): no "
                      "edit locality or diversity across clusters to measure."]
    if div:
        lp = "n/a (LPIPS weights not installed)" if div["pairwise_lpips"] is None \
            else f"{div['pairwise_lpips']:.4f}"
        lines += ["", f"Diversity: {args.samples} random-cluster samples per label map, "
                      f"{min(args.n_div, args.n_eval)} maps: mean pairwise L1 "
                      f"{div['pairwise_l1']:.4f}, LPIPS {lp} ({div['pairs']} pairs); "
                      f"L1 synthesis vs real render {div['l1_to_real']:.4f} "
                      f"(images in [0, 1])."]
    lines += ["", f"({time.time() - t0:.0f} s; command: python benchmarks/pix2pixhd.py "
                  f"{command_line(sys.argv[1:])})"]
    print("\n".join(lines))
    out_dir = ROOT / "out" / "bench" / "pix2pixhd-quick" if args.quick else DOCS
    save_image(eval_grid(data, fake0, results[plain][1]),
               out_dir / "pix2pixhd_eval.png")
    if shown_loc:
        save_image(locality_grid(shown_loc), out_dir / "pix2pixhd_locality.png")
    if shown_div:
        save_image(diversity_grid(shown_div), out_dir / "pix2pixhd_diversity.png")
    print(f"pictures in {out_dir}")
    summary = {"model": args.model, "command": "python benchmarks/pix2pixhd.py "
               + command_line(sys.argv[1:]), "date": datetime.date.today().isoformat(),
               "n_eval": args.n_eval,
               "scores": {name: {k: s[k] for k in ("pixel_accuracy", "mean_iou")}
                          for name, (s, _) in results.items()},
               "miou_ratio": {name: s["mean_iou"] / oracle for name, (s, _) in results.items()},
               "locality": {name: {k: v[k] for k in ("edits", "mean", "grown")}
                            for name, v in loc.items()},
               "diversity_l1": div["pairwise_l1"] if div else None,
               "synthesis_img_per_s": speed}
    # for scripts/publish_pix2pixhd.py --quality (the model card quotes these figures)
    result = out_dir / "pix2pixhd.json" if args.quick else ROOT / "out" / "bench" / "pix2pixhd.json"
    atomic_write_text(result, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    if not args.quick:
        write_section("pix2pixhd", "pix2pixHD: segmentation score, edit locality, diversity "
                                   "(issue 15)", "\n".join(lines) + PICTURES)


PICTURES = ("\n\n![label | real | synthesised | its segmentation]"
            "(docs/benchmarks/pix2pixhd_eval.png)\n"
            "![before | after | change (square root, brightest = largest) | edited instance]"
            "(docs/benchmarks/pix2pixhd_locality.png)\n"
            "![label | random-cluster samples](docs/benchmarks/pix2pixhd_diversity.png)")


def command_line(argv: list[str]) -> str:
    """The arguments to repeat the run (--note, which only annotates it, left out)."""
    kept, skip = [], False
    for a in argv:
        if skip or a.startswith("--note="):
            skip = False
            continue
        if a == "--note":
            skip = True
            continue
        kept.append(a)
    return shlex.join(kept)


def describe(args, model, size, used, seg_meta, speed, thr) -> list[str]:
    g_params = sum(p.numel() for p in model.G.parameters())
    log = seg_meta["log"]
    train = (f"training: {thr['img_per_s']:.2f} images/s ({thr.get('hardware')}, "
             f"{thr.get('processes') or 1} process(es)"
             + (f", median of {thr['log_epochs']} epochs of log.jsonl" if "log_epochs" in thr
                else "") + ")") if thr.get("img_per_s") else "training: no log or timing found"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return ([args.note] if args.note else []) + [
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores ({args.threads} "
        f"torch thread(s); load average {load:.1f} at the end), torch {torch.__version__}. "
        f"Model: {args.model} "
        f"({type(model.G).__name__}, {g_params:,} parameters, {model.provenance.get('epoch')} "
        f"epochs, {model.provenance.get('train_seconds')} s of training; training scene "
        f"seeds {sorted(used) if used else 'unknown'}).",
        f"Held-out scenes: seed {args.eval_seed}, {size} px. Segmenter: U-Net width "
        f"{args.seg_width}, depth {args.seg_depth}, trained on {args.seg_train} real renders "
        f"of seed {args.seg_seed} ({args.seg_steps} steps of {args.seg_batch}, "
        f"{log['seconds']} s, {log['images_per_s']} images/s on {seg_meta.get('hardware')}).",
        f"Throughput: {train}; synthesis here {speed:.1f} images/s (one image at a time).",
    ]


if __name__ == "__main__":
    main()
