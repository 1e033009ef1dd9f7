"""`ganprior edit` and the `ganprior directions` commands (sefa, train, attributes, list)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from . import validate
from .common import (DeviceOpt, ModelOpt, OutOpt, StyleModelOpt, TruncOpt, _default_model, _load,
                     console, user_errors)

MAX_STRENGTH = 30.0   # latent-norm units; the zoo models' latents lie ~8-10 from the centre
MAX_STEPS = 41        # frames of a strip, all rendered and held in memory
MAX_K = 64            # SeFa directions per run
MAX_SAMPLES = 200_000  # `directions attributes` latents, all held in memory

directions_app = typer.Typer(help="Find, train and list semantic directions for `ganprior edit`.",
                             no_args_is_help=True)

DirectionOpt = typer.Option(..., "--direction", "-d",
                            help="A shipped direction's name (see `ganprior directions list`) "
                                 "or a direction file NAME.json.")


def _count_sources(seed, latent, result) -> None:
    given = [n for n, v in (("--seed", seed), ("--latent", latent), ("--result", result))
             if v is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of --seed, --latent, --result"
                         + (f" (got {', '.join(given)})" if given else ""))


def _check_tensor(t, shape: tuple, what: str, path):
    import torch
    if (not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.ndim != len(shape)
            or tuple(t.shape[1:]) != shape[1:] or t.shape[0] < 1):
        want = "[N, " + ", ".join(map(str, shape[1:])) + "]"
        raise ValueError(f"{path}: {what} must be {want} floats, got "
                         f"{list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{path}: {what} holds NaN or infinite values")


def _read_latents(path: Path, G):
    """(z, ws) of generate's latents.safetensors, shapes and values checked."""
    from safetensors.torch import load_file
    try:
        raw = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from None
    if set(raw) != {"z", "ws"}:
        raise ValueError(f"{path} holds {', '.join(sorted(raw)) or 'nothing'}: expected "
                         "generate's latents (z, ws) or an inversion result")
    z, ws = raw["z"], raw["ws"]
    _check_tensor(z, (0, G.z_dim), "z", path)
    _check_tensor(ws, (0, G.num_ws, G.w_dim), "ws", path)
    if z.shape[0] != ws.shape[0]:
        raise ValueError(f"{path}: z has {z.shape[0]} rows but ws {ws.shape[0]}")
    return z, ws


def _from_latents(path: Path, index: int, G, space: str):
    """(method name, params) of row `index` of generate's latents.safetensors (z, ws)."""
    import torch
    z, ws = _read_latents(path, G)
    if not 0 <= index < z.shape[0]:
        raise ValueError(f"--index {index} out of range: {path} holds {z.shape[0]} latents "
                         f"(0..{z.shape[0] - 1})")
    like = next(G.parameters())
    if space == "z":
        # without a mapping network ws = psi * z: the ws keep generate's truncation
        if "w" not in G.latent_spaces:
            return "z", {"z": ws[index:index + 1, 0].to(like)}
        row = z[index:index + 1].to(like)
        with torch.no_grad():
            untruncated = G.z_to_w(row, G.class_vector(1, None))
        if not torch.allclose(untruncated, ws[index:index + 1].to(like), atol=1e-4):
            raise ValueError(f"{path}: row {index} was made with truncation; a z-space "
                             "direction edits z before the mapping network and would lose it "
                             "(use a w direction, or latents made with --trunc 1)")
        return "z", {"z": row}
    return "w+", {"w": ws[index:index + 1].to(like)}


def _source(G, space, seed, trunc, latent, index, result):
    """(generator, method name, method, params with batch 1, description) of the edit's start."""
    import torch

    from ..inversion.methods import make_method
    from ..inversion.results import load_result
    result_path = result
    if latent is not None:
        if set(_safetensor_keys(latent)) != {"z", "ws"}:
            result_path = latent  # an inversion result's STEM.safetensors
        else:
            name, params = _from_latents(latent, index or 0, G, space)
            return G, name, make_method(name), params, dict(latent=str(latent), index=index or 0)
    if result_path is not None:
        if index not in (None, 0):
            raise ValueError("--index applies to generate's latents; a result holds one image")
        r = load_result(result_path, G)
        return (r.G, r.record["method"], r.method, r.params,
                dict(result=str(r.stem), method=r.record["method"], tuned=r.G is not G))
    with torch.no_grad():
        z = G.z_from_seed(seed)
        if space == "z":
            if trunc != 1 and "w" in G.latent_spaces:
                raise ValueError("--trunc acts in W; a z-space direction edits z before the "
                                 "mapping network (leave --trunc at 1)")
            return G, "z", make_method("z"), {"z": z * trunc}, dict(seed=seed, trunc=trunc)
        ws = G.z_to_w(z, G.class_vector(1, None), truncation_psi=trunc)
    return G, "w+", make_method("w+"), {"w": ws}, dict(seed=seed, trunc=trunc)


def _safetensor_keys(path: Path) -> list[str]:
    from safetensors import safe_open
    if not Path(path).is_file():
        raise FileNotFoundError(f"--latent {path} not found")
    try:
        with safe_open(str(path), "pt") as f:
            return list(f.keys())
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from None


@user_errors
def edit(
    model: Optional[str] = StyleModelOpt,
    seed: Optional[int] = typer.Option(None, show_default="none",
                                       help="Edit the image of this seed."),
    trunc: float = TruncOpt,
    latent: Optional[Path] = typer.Option(None, show_default="none",
                                          help="Edit a latent: generate's "
                                          "latents.safetensors (z, ws; pick the row with "
                                          "--index) or an inversion result's STEM.safetensors."),
    index: Optional[int] = typer.Option(None, show_default="0",
                                        help="Row of --latent's latents."),
    result: Optional[Path] = typer.Option(None, show_default="none",
                                          help="Edit an inverted photo: OUT/STEM of "
                                          "`ganprior invert` or a restoration command "
                                          "(mGANprior: every code moves, alpha frozen; tuned "
                                          "results use their tuned generator)."),
    direction: str = DirectionOpt,
    condition: Optional[List[str]] = typer.Option(None, show_default="none",
                                                  help="Directions to keep unchanged "
                                                  "(projected out of --direction; repeatable)."),
    strength: float = typer.Option(3.0, help="The strip goes from -STRENGTH to +STRENGTH along "
                                   "the unit direction (latent-norm units)."),
    steps: int = typer.Option(7, help="Frames of the strip (odd: the centre one is the "
                              "original)."),
    out: Path = OutOpt("out/edit"),
    device: str = DeviceOpt,
):
    """Move a latent along a semantic direction: OUT/strip.png (from -STRENGTH to +STRENGTH,
    the original in the centre), OUT/latents.safetensors (the moved parameters of every frame
    and their strengths) and OUT/edit.json (settings, the direction's metadata and every
    attribute's score per frame)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from ..editing.attributes import ATTRIBUTES, score_all
    from ..editing.directions import conditional, edit_frames, find_direction
    from ..files import atomic_write, json_safe, write_json
    from ..images import grid, save_image, to_uint8

    _count_sources(seed, latent, result)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED, optional=True)
    validate.finite(trunc, "--trunc")
    validate.integer(index, "--index", 0, validate.MAX_SIZE, optional=True)
    validate.finite(strength, "--strength", 0, MAX_STRENGTH, lo_open=True)
    validate.integer(steps, "--steps", 3, MAX_STEPS)
    if steps % 2 == 0:
        raise ValueError(f"--steps must be odd so that the centre frame is the original, "
                         f"not {steps}")
    if len(condition or []) > 16:
        raise ValueError("at most 16 --condition directions")
    validate.out_dir(out)
    validate.device(device)
    G = _load(model or _default_model(needs_w=True), device)["G"]
    d = find_direction(direction, G)
    if condition:
        d = conditional(d, [find_direction(c, G) for c in condition])
    G_used, name, method, params, source = _source(G, d.space, seed, trunc, latent, index, result)
    strengths = np.linspace(-strength, strength, steps)
    t0 = time.time()
    images, moved = edit_frames(G_used, method, name, params, d, strengths)
    scores = ({k: [round(float(v), 6) for v in s] for k, s in score_all(images).items()}
              if images.shape[1] == 3 else None)  # the pixel attributes are defined on RGB
    moved = {k: v.detach().float().cpu().contiguous() for k, v in moved.items()}
    moved["strength"] = torch.tensor(strengths, dtype=torch.float32)
    save_image(grid(to_uint8(images), cols=steps), out / "strip.png")
    atomic_write(out / "latents.safetensors", lambda tmp: save_file(moved, tmp))
    attribute = d.meta.get("attribute")
    record = dict(model=model or _default_model(needs_w=True), source=source, method=name,
                  direction=direction, conditions=list(condition or []), strength=strength,
                  steps=steps, strengths=[float(s) for s in strengths],
                  direction_meta={k: v for k, v in d.meta.items() if k != "made_with"},
                  attribute=attribute if isinstance(attribute, str) and attribute in ATTRIBUTES
                  else None, scores=scores,
                  seconds=round(time.time() - t0, 3))
    write_json(out / "edit.json", json_safe(record))
    console.print(f"wrote strip.png ({steps} frames), latents.safetensors and edit.json to {out}")


# --- directions ------------------------------------------------------------------------------

def _command_line(args: dict) -> str:
    parts = []
    for k, v in args.items():
        if v is not None:
            parts.append(f"--{k.replace('_', '-')} {v}")
    return " ".join(parts)


@directions_app.command("sefa")
@user_errors
def sefa_cmd(
    model: str = ModelOpt,
    out: Path = OutOpt("out/directions", "Output folder: sefa0.json ... and sefa.png (one "
                       "row of strips per direction)."),
    k: int = typer.Option(5, "--k", help="How many directions (largest eigenvalues first)."),
    layers: Optional[str] = typer.Option(None, show_default="all",
                                         help="W+ layers whose styles are factorised, e.g. "
                                         "0-3; the directions then move only those layers."),
    strength: float = typer.Option(3.0, help="Strength of the preview strips in sefa.png."),
    seed: int = typer.Option(0, help="Seed of the preview image."),
    device: str = DeviceOpt,
):
    """SeFa (closed-form factorisation): the eigenvectors of A^T A, A = the stacked, row-
    normalised modulation weights (DCGAN: the first layer's weight). Needs no labels."""
    import numpy as np

    from ..editing.directions import edit_frames, save_direction, sefa
    from ..images import grid, save_image, to_uint8
    from ..inversion.methods import make_method

    validate.integer(k, "--k", 1, MAX_K)
    layer_list = validate.seed_list(layers, "--layers", limit=1024) if layers else None
    validate.finite(strength, "--strength", 0, MAX_STRENGTH, lo_open=True)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED)
    validate.out_dir(out)
    validate.device(device)
    G = _load(model, device)["G"]
    dirs = sefa(G, min(k, G.w_dim), layer_list)
    command = f"ganprior directions sefa --model {model} --k {k}" + (
        f" --layers {layers}" if layers else "")
    z = G.z_from_seed(seed)
    name, params = ("w+", {"w": G.z_to_w(z)}) if dirs[0].space != "z" else ("z", {"z": z})
    rows = []
    for i, d in enumerate(dirs):
        save_direction(out / f"sefa{i}", d, G, name=f"sefa{i}", model=model,
                       made_with=dict(command=command))
        rows.append(to_uint8(edit_frames(G, make_method(name), name, params, d,
                                         np.linspace(-strength, strength, 5))[0]))
    save_image(grid(np.concatenate(rows), cols=5), out / "sefa.png")
    console.print(f"wrote {len(dirs)} SeFa directions (sefa0 ... sefa{len(dirs) - 1}) and "
                  f"sefa.png to {out}")


def _read_scores(path: Path, n: int):
    """One score per latent: the last column of each CSV row (a header row is allowed)."""
    import csv

    import numpy as np
    if not path.is_file():
        raise FileNotFoundError(f"--scores {path} not found")
    if path.stat().st_size > 64 << 20:
        raise ValueError(f"--scores {path} is larger than 64 MiB")
    values = []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for i, row in enumerate(csv.reader(f)):
            if not row or not "".join(row).strip():
                continue
            try:
                values.append(float(row[-1]))
            except ValueError:
                if i == 0 and not values:
                    continue  # a header
                raise ValueError(f"--scores {path} line {i + 1}: {row[-1]!r} is not a number")
    if len(values) != n:
        raise ValueError(f"--scores {path} has {len(values)} scores for {n} latents")
    return np.asarray(values)


@directions_app.command("train")
@user_errors
def train_cmd(
    model: str = ModelOpt,
    latents: Path = typer.Option(..., help="generate's latents.safetensors (z, ws)."),
    scores: Path = typer.Option(..., help="CSV with one score per latent, in the same order "
                                "(the last column of each row; a header row is allowed)."),
    space: str = typer.Option("w", help="z | w | w+ (DCGAN: z)."),
    method: str = typer.Option("svm", help="svm (linear SVM) | logistic (logistic regression)."),
    ratio: float = typer.Option(0.02, help="Fraction of latents taken as positives (top "
                                "scores) and as negatives (bottom scores); InterFaceGAN's 0.02."),
    attribute: Optional[str] = typer.Option(None, show_default="none",
                                     help="Name of what the scores measure "
                                            "(recorded in the JSON)."),
    out: Path = OutOpt("out/directions/boundary.json", "Direction file to write (NAME.json "
                       "+ NAME.safetensors).", file=True),
    device: str = DeviceOpt,
):
    """InterFaceGAN: a linear boundary between the latents with the highest and lowest scores;
    its unit normal (towards higher scores) is the direction. Prints the held-out accuracy."""
    from ..editing.directions import (boundary_direction, latents_in_space, save_direction,
                                      train_boundary)

    if space not in ("z", "w", "w+"):
        raise ValueError(f"--space must be z, w or w+, not {space!r}")
    if method not in ("svm", "logistic"):
        raise ValueError(f"--method must be svm or logistic, not {method!r}")
    validate.finite(ratio, "--ratio", 0, 0.5, lo_open=True)
    validate.out_file(out)
    validate.device(device)
    G = _load(model, device)["G"]
    if "w" not in G.latent_spaces and space != "z":
        raise ValueError(f"{G.arch} has no W space: use --space z")
    z, ws = _read_latents(latents, G)
    X = latents_in_space(z, ws, space).double().numpy()
    y = _read_scores(scores, X.shape[0])
    normal, accuracy = train_boundary(X, y, method=method, ratio=ratio)
    meta = dict(method=f"interfacegan-{method}", attribute=attribute, accuracy=accuracy,
                ratio=ratio, n=int(X.shape[0]))
    d = boundary_direction(G, normal, space, meta)
    cmd = "ganprior directions train " + _command_line(dict(
        model=model, latents=latents, scores=scores, space=space, method=method, ratio=ratio,
        attribute=attribute))
    tensors, meta_path = save_direction(out, d, G, name=meta_path_name(out), model=model,
                                        made_with=dict(command=cmd))
    console.print(f"wrote {meta_path} and {tensors.name}: held-out accuracy {accuracy:.3f}")


def meta_path_name(out: Path) -> str:
    from ..editing.directions import direction_paths
    return direction_paths(out)[1].stem


@directions_app.command("attributes")
@user_errors
def attributes_cmd(
    model: str = ModelOpt,
    n: int = typer.Option(4000, help="Seeds sampled and scored."),
    seed_start: int = typer.Option(0, help="First seed (seeds SEED_START .. SEED_START+N-1)."),
    space: Optional[str] = typer.Option(None, show_default="w, or z without a W space",
                                        help="z | w | w+."),
    method: str = typer.Option("svm", help="svm | logistic."),
    ratio: float = typer.Option(0.02, help="Fraction of the samples taken as positives and as "
                                "negatives (InterFaceGAN's 0.02)."),
    out: Path = OutOpt("out/directions", "Output folder: ATTRIBUTE.json + .safetensors for "
                       "each pixel attribute."),
    batch: int = typer.Option(64, min=1, help="Images per forward pass."),
    device: str = DeviceOpt,
):
    """InterFaceGAN directions for the pixel attributes (brightness, warmth, asymmetry,
    contrast; see docs/editing.md) from N sampled images, no labels needed."""
    from ..editing.attributes import attribute_directions
    from ..editing.directions import check_sample_count, save_direction

    validate.integer(n, "--n", 50, MAX_SAMPLES)
    validate.integer(seed_start, "--seed-start", 0, validate.MAX_SEED - n)
    if method not in ("svm", "logistic"):
        raise ValueError(f"--method must be svm or logistic, not {method!r}")
    validate.finite(ratio, "--ratio", 0, 0.5, lo_open=True)
    validate.integer(batch, "--batch", 1, validate.MAX_BATCH)
    check_sample_count(n, ratio)
    validate.out_dir(out)
    validate.device(device)
    G = _load(model, device)["G"]
    space = space or ("w" if "w" in G.latent_spaces else "z")
    if space not in ("z", "w", "w+"):
        raise ValueError(f"--space must be z, w or w+, not {space!r}")
    if "w" not in G.latent_spaces and space != "z":
        raise ValueError(f"{G.arch} has no W space: use --space z")
    seeds = list(range(seed_start, seed_start + n))
    t0 = time.time()
    dirs = attribute_directions(G, seeds, space, method, ratio, batch, progress=True)
    cmd = "ganprior directions attributes " + _command_line(dict(
        model=model, n=n, seed_start=seed_start, space=space, method=method, ratio=ratio))
    for name, d in dirs.items():
        save_direction(out / name, d, G, name=name, model=model,
                       made_with=dict(command=cmd, seconds=round(time.time() - t0, 1)))
        console.print(f"{name:11s} held-out accuracy {d.meta['accuracy']:.3f}")
    console.print(f"wrote {len(dirs)} directions to {out}")


@directions_app.command("list")
@user_errors
def list_cmd(model: Optional[str] = StyleModelOpt, device: str = DeviceOpt):
    """The directions shipped for a model: name, space, method, attribute, accuracy."""
    import json

    from rich.table import Table

    from ..editing.directions import shipped_directions
    validate.device(device)
    G = _load(model or _default_model(needs_w=True), device)["G"]
    shipped = shipped_directions(G)
    if not shipped:
        console.print("no shipped directions for this model; make some with "
                      "`ganprior directions sefa` or `ganprior directions attributes`")
        return
    table = Table("name", "space", "method", "attribute", "accuracy")
    for name, path in shipped.items():
        meta = json.loads(path.with_suffix(".json").read_text())
        acc = meta.get("accuracy")
        table.add_row(name, meta.get("space", "?"), meta.get("method", "?"),
                      str(meta.get("attribute") or "-"), "-" if acc is None else f"{acc:.3f}")
    console.print(table)
