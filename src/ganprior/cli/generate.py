"""`ganprior generate` and `ganprior mix`."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from . import validate
from .common import (ClassOpt, CutoffOpt, DeviceOpt, NoiseOpt, OutOpt, StepsOpt,
                     StyleModelOpt, TruncOpt, _default_model, _load, console, say_loss_note,
                     user_errors)


GRID_MAX = 256  # images in grid.png
DEFAULT_SEEDS = "0-15"


def _save_latents(path: Path, tensors: dict):
    from safetensors.torch import save_file

    from ..files import atomic_write
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))


def _no_seed_options(seeds, trunc, trunc_cutoff, class_idx, what: str):
    """A saved latent is drawn as saved: the options that make latents from seeds do not
    apply (refused rather than silently ignored, as NVIDIA's script does)."""
    given = [name for name, v, unset in (("--seeds", seeds, None), ("--trunc", trunc, 1.0),
                                         ("--trunc-cutoff", trunc_cutoff, None),
                                         ("--class", class_idx, None)) if v != unset]
    if given:
        raise ValueError(f"{', '.join(given)} make latents from seeds; {what} is drawn as "
                         "saved (leave them out)")


@user_errors
def generate(
    model: Optional[str] = StyleModelOpt,
    seeds: Optional[str] = typer.Option(None, show_default=DEFAULT_SEEDS,
                                        help="Seeds, e.g. 0-15 or 1,5,9-12."),
    projected_w: Optional[Path] = typer.Option(
        None, "--projected-w", show_default="none",
        help="Draw saved latents instead of seeds: NVIDIA's projected_w.npz, a "
             "latents.safetensors of generate/mix, or an inversion result OUT/STEM "
             "(see docs/cli.md)."),
    trunc: float = TruncOpt,
    trunc_cutoff: Optional[int] = CutoffOpt,
    class_idx: Optional[int] = ClassOpt,
    noise_mode: str = NoiseOpt,
    out: Path = OutOpt("out/generate"),
    batch: int = typer.Option(16, min=1, help="Images per forward pass."),
    device: str = DeviceOpt,
):
    """Generate one PNG per seed (OUT/seed0000.png ...), OUT/grid.png and OUT/generate.json.

    Seeds map to z as in NVIDIA's generate.py (RandomState(seed).randn(1, z_dim)) and images are
    quantised the same way, so an NVIDIA checkpoint gives the same PNG for the same seed.
    Images are written as each batch is made (a long run keeps what it wrote); grid.png shows
    the first 256. The latents (z and ws) are saved to OUT/latents.safetensors for later editing.
    With --projected-w FILE the saved latents are drawn instead (OUT/LABEL.png: proj00 for
    NVIDIA's file, STEM for an inversion result, seedNNNN for generate's latents).
    """
    validate.truncation(trunc, trunc_cutoff)
    validate.integer(class_idx, "--class", optional=True)
    validate.integer(batch, "--batch", 1, validate.MAX_BATCH)
    validate.noise_mode(noise_mode)
    validate.out_dir(out)
    validate.device(device)
    # saved latents are W+ (NVIDIA's projector, inversions): the StyleGAN2 model by default
    model = model or _default_model(needs_w=projected_w is not None)
    if projected_w is not None:
        _no_seed_options(seeds, trunc, trunc_cutoff, class_idx, "--projected-w")
        return _generate_projected(model, projected_w, noise_mode, out, device)
    seed_list = validate.seed_list(seeds or DEFAULT_SEEDS)  # counted before it is expanded
    _generate_seeds(model, seed_list, trunc, trunc_cutoff, class_idx, noise_mode, out, batch,
                    device)


def _generate_seeds(model, seed_list, trunc, trunc_cutoff, class_idx, noise_mode, out, batch,
                    device):
    import numpy as np
    import torch

    from ..files import write_json
    from ..generate import generate_batches
    from ..images import grid, save_image
    from ..progress import on_terminal

    G = _load(model, device)["G"]
    t0, shown, zs, wss = time.time(), [], [], []
    for chunk, images, z, ws in generate_batches(G, seed_list, trunc, trunc_cutoff, class_idx,
                                                 noise_mode, batch, progress=on_terminal()):
        for s, img in zip(chunk, images):
            save_image(img, out / f"seed{s:04d}.png")
        shown += list(images[: max(0, GRID_MAX - len(shown))])
        zs.append(z)
        wss.append(ws)
    seconds = time.time() - t0
    save_image(grid(np.stack(shown)), out / "grid.png")
    z, ws = torch.cat(zs), torch.cat(wss)
    _save_latents(out / "latents.safetensors", {"z": z, "ws": ws})
    write_json(out / "generate.json", dict(
        model=model, seeds=seed_list, trunc=trunc, trunc_cutoff=trunc_cutoff,
        class_idx=class_idx, noise_mode=noise_mode, seconds=round(seconds, 3), z=z.tolist(),
        latents="latents.safetensors"))
    console.print(f"wrote {len(seed_list)} images, grid.png and generate.json to {out} "
                  f"({len(seed_list) / max(seconds, 1e-9):.1f} img/s)")


def _not_reserved(name: str, reserved: tuple[str, ...]) -> str:
    """An image's file name that does not collide with the command's own outputs."""
    return f"{name}_image" if name in reserved else name


def _generate_projected(model, path: Path, noise_mode, out, device):
    import numpy as np

    from ..files import write_json
    from ..images import grid, save_image, to_uint8
    from ..latent_files import read_latents

    G = _load(model, device)["G"]
    lat = read_latents(path, G)
    shown = []
    names = [_not_reserved(label, ("grid",)) for label in lat.labels]  # grid.png is the grid
    for i, label in enumerate(names):
        img = to_uint8(lat.render(i, noise_mode=noise_mode))[0]
        save_image(img, out / f"{label}.png")
        if len(shown) < GRID_MAX:
            shown.append(img)
    save_image(grid(np.stack(shown)), out / "grid.png")
    if lat.ws is not None:
        _save_latents(out / "latents.safetensors", {"ws": lat.ws})
    write_json(out / "generate.json", dict(
        model=model, projected_w=str(path), kind=lat.kind, labels=names,
        noise_mode=noise_mode, latents="latents.safetensors" if lat.ws is not None else None))
    console.print(f"wrote {len(lat)} images from {path}, grid.png and generate.json to {out}")


@user_errors
def mix(
    model: Optional[str] = StyleModelOpt,
    rows: Optional[str] = typer.Option(None, show_default="none",
                                       help="Row seeds (they keep the other layers), e.g. 1,2."),
    cols: Optional[str] = typer.Option(None, show_default="none",
                                       help="Column seeds (they give --layers), e.g. 3,4."),
    row_latents: Optional[Path] = typer.Option(
        None, "--row-latents", show_default="none",
        help="Rows from a latent file instead of seeds (any file `generate --projected-w` "
             "takes: projected_w.npz, latents.safetensors, an inversion result OUT/STEM)."),
    col_latents: Optional[Path] = typer.Option(
        None, "--col-latents", show_default="none",
        help="Columns from a latent file instead of seeds (as --row-latents)."),
    images: Optional[tuple[Path, Path]] = typer.Option(
        None, "--images", show_default="none",
        help="Two photos A B: both are inverted (--method), then A takes --layers from B "
             "and B from A."),
    layers: str = typer.Option("0-3", "--layers", "--styles",
                               help="W+ layer indices taken from the columns: low = "
                                    "pose/shape, high = colour/texture (--styles: NVIDIA's "
                                    "spelling)."),
    method: str = typer.Option("w+", help="--images: inversion into W+, w+ or padinv."),
    steps: int = StepsOpt(300, help="--images: optimisation steps per photo."),
    loss: str = typer.Option("auto", help="--images: reconstruction loss (see `invert --help`)."),
    seed: int = typer.Option(0, help="--images: seed of the initial codes (photo B: seed + 1)."),
    trunc: float = TruncOpt,
    trunc_cutoff: Optional[int] = CutoffOpt,
    class_idx: Optional[int] = ClassOpt,
    noise_mode: str = NoiseOpt,
    out: Path = OutOpt("out/mix"),
    device: str = DeviceOpt,
):
    """Style mixing. Rows keep their latent and take the W+ layers --layers from the columns.

    Rows and columns are seeds (--rows/--cols), latent files (--row-latents/--col-latents)
    or two photos (--images A B, inverted with --method). Writes OUT/mix.png (labelled grid:
    column sources on top, row sources on the left), OUT/ROW-COL.png for every pair,
    OUT/mix.json (sources, layers, files; for photos the PSNR of each reconstruction) and
    OUT/latents.safetensors ("ws": the mixed W+ codes in grid order, for `generate
    --projected-w`; "row_ws", "col_ws": the sources'). Photos also give OUT/A.png, OUT/B.png
    (their reconstructions).
    """
    layer_list = validate.seed_list(layers, "--layers", limit=1024)
    validate.truncation(trunc, trunc_cutoff)
    validate.integer(class_idx, "--class", optional=True)
    validate.noise_mode(noise_mode)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED)
    validate.integer(steps, "--steps", 0, validate.MAX_STEPS)
    validate.out_dir(out)
    validate.device(device)
    if images is not None:
        if any(v is not None for v in (rows, cols, row_latents, col_latents)):
            raise ValueError("--images A B mixes the two photos; leave out --rows/--cols and "
                             "--row-latents/--col-latents")
        return _mix_photos(model, list(images), layer_list, method, steps, loss, seed,
                           noise_mode, out, device)
    for seeds, file, side in ((rows, row_latents, "row"), (cols, col_latents, "col")):
        if (seeds is None) == (file is None):
            raise ValueError(f"give the {side}s as seeds (--{side}s) or a latent file "
                             f"(--{side}-latents), exactly one of them (or --images A B)")
    if rows is not None and cols is not None:
        validate.mix_grid(rows, cols)
    row_seeds, col_seeds = (None if text is None else
                            validate.seed_list(text, option, limit=validate.MAX_MIX_CELLS)
                            for text, option in ((rows, "--rows"), (cols, "--cols")))
    G = _load(model or _default_model(needs_w=True), device)["G"]
    from ..editing.mixing import check_mixable, mix_latents, seed_latents
    from ..latent_files import read_latents
    check_mixable(G, layer_list)

    def side(seeds, file):
        if seeds is not None:
            return seed_latents(G, seeds, trunc, trunc_cutoff, class_idx)
        return read_latents(file, G)
    r, c = side(row_seeds, row_latents), side(col_seeds, col_latents)
    if len(r) * len(c) > validate.MAX_MIX_CELLS:
        raise ValueError(f"a {len(r)} x {len(c)} mixing grid is {len(r) * len(c):,} images; "
                         f"at most {validate.MAX_MIX_CELLS:,}")
    result = mix_latents(r, c, layer_list, noise_mode)
    record = dict(model=model or _default_model(needs_w=True), layers=layer_list,
                  noise_mode=noise_mode, rows=_describe(r, row_seeds, row_latents),
                  cols=_describe(c, col_seeds, col_latents), trunc=trunc,
                  trunc_cutoff=trunc_cutoff, class_idx=class_idx)
    _write_mix(out, result, _names(r, row_seeds), _names(c, col_seeds), r.labels, c.labels,
               record)


def _names(lat, seeds) -> list[str]:
    """File-name parts: the seed (as before: OUT/1-3.png) or the latent's label."""
    return [str(s) for s in seeds] if seeds is not None else list(lat.labels)


def _describe(lat, seeds, file) -> dict:
    if seeds is not None:
        return {"seeds": seeds}
    return {"latents": str(file), "kind": lat.kind, "labels": lat.labels}


def _write_mix(out: Path, result, row_names, col_names, row_labels, col_labels, record,
               skip_diagonal: bool = False):
    from ..editing.mixing import mix_cells
    from ..files import write_json
    from ..images import save_image
    from ..plots import labelled_grid

    files = {}
    for i, rn in enumerate(row_names):
        for j, cn in enumerate(col_names):
            if skip_diagonal and i == j:
                continue
            name = f"{rn}-{cn}.png"
            save_image(result.mixed[i, j], out / name)
            files[name] = {"row": row_labels[i], "col": col_labels[j], "index": i * len(col_names) + j}
    picture = labelled_grid(mix_cells(result), len(col_names) + 1,
                            ["", *row_labels], ["", *col_labels])
    save_image(picture, out / "mix.png")
    ws = result.ws
    _save_latents(out / "latents.safetensors", {
        "ws": ws.reshape(-1, *ws.shape[2:]),
        "row_ws": result.row_ws, "col_ws": result.col_ws})
    write_json(out / "mix.json", dict(record, files=files, latents="latents.safetensors",
                                      ws_order="row-major: index = row * columns + column"))
    console.print(f"wrote mix.png, {len(files)} mixed images, mix.json and latents.safetensors "
                  f"to {out}")


def _mix_photos(model, paths, layer_list, method, steps, loss, seed, noise_mode, out, device):
    import warnings

    import torch

    from ..editing.mixing import MIX_METHODS, check_mixable, inverted_latents, mix_latents
    from ..images import check_image, load_image, save_image, to_uint8
    from ..inversion.engine import check_settings
    from ..inversion.losses import parse_spec
    from ..progress import on_terminal

    if method not in MIX_METHODS:
        raise ValueError(f"--method must be {' or '.join(MIX_METHODS)} for --images (a W+ "
                         f"code to mix), not {method!r}")
    check_settings(steps, 0.03, 0, 0.0)
    if loss != "auto":
        parse_spec(loss)
    from ..inversion.files import refuse_overwriting
    for p in paths:
        check_image(p)  # a missing or broken photo fails before the model is loaded
    refuse_overwriting(out, paths)  # OUT/STEM.png must not land on a photo
    stems = [_not_reserved(p.stem, ("mix",)) for p in paths]  # mix.png is the grid
    if stems[0] == stems[1]:
        stems = [f"{stems[0]}_a", f"{stems[1]}_b"]
    model = model or _default_model(needs_w=True)
    G = _load(model, device)["G"]
    check_mixable(G, layer_list)
    targets = torch.cat([load_image(p, G.img_resolution, G.img_channels) for p in paths])
    with warnings.catch_warnings():  # the loss fallback is said once, below, in one line
        warnings.filterwarnings("ignore", message="--loss auto")
        lat, inv = inverted_latents(G, targets.to(G.device), stems, method=method, steps=steps,
                                    loss=loss, seed=seed, progress=on_terminal())
    say_loss_note(inv.loss_info)
    result = mix_latents(lat, lat, layer_list, noise_mode)
    for i, stem in enumerate(stems):
        save_image(to_uint8(inv.images[i:i + 1])[0], out / f"{stem}.png")
    record = dict(model=model, layers=layer_list, method=method, steps=steps, seed=seed,
                  inputs=[str(p) for p in paths], **inv.loss_info,
                  reconstructions={stem: dict(file=f"{stem}.png", psnr=inv.psnr[i],
                                              ssim=inv.ssim[i], seed=seed + i)
                                   for i, stem in enumerate(stems)})
    # the diagonal (a photo with its own layers) is its reconstruction: not written twice
    _write_mix(out, result, stems, stems, stems, stems, record, skip_diagonal=True)
    for i, stem in enumerate(stems):
        console.print(f"{stem}: psnr {inv.psnr[i]:.2f} dB, ssim {inv.ssim[i]:.3f}")
