"""`ganprior synth` (label map -> images with pix2pixHD) and `ganprior encode-features`."""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from . import validate
from .common import DeviceOpt, OutOpt, user_errors

DEFAULT_P2P_MODEL = "pix2pixhd-scenes128"
MAX_SAMPLES = 1000

P2PModelOpt = typer.Option(DEFAULT_P2P_MODEL, "--model", "--network", "-m",
                           help="pix2pixHD model: zoo name, checkpoint (.safetensors) or a "
                                "`train pix2pixhd` run folder (its newest snapshot) "
                                "(--network: NVIDIA's spelling).")


def _load_model(model: str, device: str, clusters: bool = True):
    from ..checkpoints import zoo_entries
    from ..device import pick_device
    from ..synthesis import load_pix2pixhd
    if model == DEFAULT_P2P_MODEL and model not in zoo_entries() and not Path(model).exists():
        raise ValueError(f"the default model {model} is not installed; pass --model with a "
                         "checkpoint or a `ganprior train pix2pixhd` run folder")
    return load_pix2pixhd(model, pick_device(device), clusters=clusters)


def _pairs(values: list[str], option: str) -> dict[str, int]:
    """['car=3', '6=0'] -> {'car': 3, '6': 0}; ValueError naming the bad one."""
    out = {}
    for text in values or []:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip().isdigit():
            raise ValueError(f"{option} {text!r}: expected NAME=K with K a cluster index "
                             f"(e.g. {option} car=3)")
        out[key.strip()] = int(value)
    return out


def _read_map(path: Path, what: str):
    from ..data.paired import read_ids
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file ({what})")
    return read_ids(path, what)


def _min_area(text: str) -> float:
    """'1/64' or '0.015625' -> a share of the image in [0, 1)."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"--min-area {text!r}: expected a fraction such as 1/64 or 0.0156")
    return validate.finite(value, "--min-area", 0, 1)


@user_errors
def synth(
    label: Path = typer.Option(..., help="Label map: one class id per pixel (8/16-bit gray "
                               "or palette PNG), the size the model takes (multiples of its "
                               "size multiple)."),
    inst: Optional[Path] = typer.Option(None, show_default="from the labels",
                                        help="Instance map of the same size (ids; "
                                             "default: connected regions of thing classes)."),
    model: str = P2PModelOpt,
    cluster: Optional[List[str]] = typer.Option(None, show_default="cluster 0",
                                                help="CLASS=K: instances of CLASS (name or "
                                                     "id) take feature cluster K; repeatable."),
    instance_cluster: Optional[List[str]] = typer.Option(
        None, show_default="none", help="ID=K: the instance with id ID takes cluster K "
                                        "(overrides --cluster); repeatable."),
    random_features: bool = typer.Option(False, "--random-features",
                                         help="Instances not fixed by --cluster draw a "
                                              "random cluster of their class."),
    image: Optional[Path] = typer.Option(None, show_default="none",
                                         help="Take the instance features from this real "
                                              "image (through the encoder) instead."),
    samples: int = typer.Option(1, help="Images to make; with more than one, unfixed "
                                "instances draw random clusters (seeds seed..seed+K-1)."),
    seed: int = typer.Option(0, help="Seed of the random cluster draws."),
    out: Path = OutOpt("out/synth", "Output folder: STEM.png (STEM_k.png for --samples K) "
                       "and synth.json."),
    device: str = DeviceOpt,
):
    """Synthesise images from a label map with a pix2pixHD model, choosing each instance's
    appearance among the feature clusters found by `ganprior encode-features`."""
    from ..data.paired import check_labels
    from ..files import write_json
    from ..images import load_image, save_image
    from ..synthesis import synthesize_scene
    validate.integer(samples, "--samples", 1, MAX_SAMPLES)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED)
    classes, instances = _pairs(cluster, "--cluster"), _pairs(instance_cluster,
                                                              "--instance-cluster")
    if any(not k.isdigit() for k in instances):
        raise ValueError("--instance-cluster takes ID=K with ID an instance id (a number)")
    validate.out_dir(out)
    validate.device(device)
    label_ids = _read_map(label, "label map")
    inst_ids = _read_map(inst, "instance map") if inst is not None else None
    m = _load_model(model, device)
    check_labels(label_ids, m.label_nc, label)  # names the file, the value and where it is
    if samples > 1 and not m.feat_num:
        raise ValueError(f"{m.name} has no instance features: its output is the same for "
                         "every sample; use --samples 1")
    real = load_image(image) if image is not None else None
    start = time.perf_counter()
    records = []
    for k in range(samples):
        try:
            img, rec = synthesize_scene(m, label_ids, inst_ids, classes,
                                        {int(i): c for i, c in instances.items()},
                                        random_features or samples > 1, seed + k, real)
        except ValueError as e:
            raise ValueError(f"{label}: {e}")
        name = f"{label.stem}.png" if samples == 1 else f"{label.stem}_{k}.png"
        save_image(img[0].cpu(), out / name)
        records.append({"file": name, **rec})
    write_json(out / "synth.json", {
        "model": m.name, "label": str(label), "inst": str(inst) if inst else None,
        "image": str(image) if image else None, "clusters": classes,
        "instance_clusters": instances, "samples": records,
        "seconds": round(time.perf_counter() - start, 3)}, indent=1)
    typer.echo(f"{samples} image{'s' if samples > 1 else ''} in {out}")


@user_errors
def encode_features(
    model: str = typer.Option(..., "--model", "--network", "-m",
                              help="The trained model: a `train pix2pixhd` run folder (its "
                                   "newest snapshot) or checkpoint (--network: NVIDIA's "
                                   "spelling)."),
    data: Path = typer.Option(..., help="The training data (pix2pixHD layout)."),
    clusters: int = typer.Option(10, help="k-means clusters per class."),
    min_area: str = typer.Option("1/64", help="Only instances larger than this share of the "
                                 "image are clustered."),
    seed: int = typer.Option(0, help="Seed of k-means."),
    device: str = DeviceOpt,
):
    """Cluster the instance features of the training set (the model's encoder, one mean
    feature per instance, k-means per class) and store the centres beside the model
    (NAME.clusters.safetensors), for `ganprior synth --cluster`."""
    from ..synthesis import encode_features as run
    validate.integer(clusters, "--clusters", 1, 1000)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED)
    area = _min_area(min_area)
    if area >= 1:
        raise ValueError("--min-area must be below 1 (a share of the image)")
    validate.device(device)
    m = _load_model(model, device, clusters=False)
    path, table = run(m, data, clusters, area, seed)
    counts = ", ".join(f"{name} {n}" for name, n in table.meta["clusters"].items()) or "none"
    typer.echo(f"clusters: {path} ({counts}; from {table.meta['images']} images)")
