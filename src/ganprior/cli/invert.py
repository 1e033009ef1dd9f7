"""`ganprior invert` and `ganprior analyze-layers`."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from .common import (DeviceOpt, ModelOpt, OutOpt, StepsOpt, StyleModelOpt, _default_model, _load,
                     console, finish_run, user_errors)


@user_errors
def invert(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    model: Optional[str] = StyleModelOpt,
    method: str = typer.Option("mganprior", help="z | w | w+ | mganprior | padinv | encoder | "
                               "hybrid (encoder + optimisation)."),
    encoder: Optional[Path] = typer.Option(None, help="encoder/hybrid: a file written by "
                                           "`ganprior train-encoder` (default: the zoo "
                                           "model's shipped encoder, if any)."),
    codes: int = typer.Option(20, help="mganprior: number of latent codes N."),
    layer: Optional[str] = typer.Option(None, help="mganprior: composition layer, e.g. b16 "
                                        "(default: the block at 1/4 of the resolution)."),
    pad_resolutions: int = typer.Option(4, help="padinv: how many resolutions get padding maps."),
    noise_maps: bool = typer.Option(False, help="w/w+: also optimise the per-pixel noise maps, "
                                    "regularised as in NVIDIA's projector (use with "
                                    "--schedule nvidia)."),
    noise_reg: float = typer.Option(1e5, help="w/w+ with --noise-maps: weight of the noise "
                                    "autocorrelation penalty."),
    steps: int = StepsOpt(300),
    lr: float = typer.Option(0.03, help="Adam learning rate."),
    loss: str = typer.Option("auto", help="auto | mse | l1 | terms joined by + with optional "
                             "weights, e.g. mse+ms-ssim:0.1 or mse+vgg:0.001."),
    schedule: str = typer.Option("constant", help="constant | nvidia (ramp-up, cosine ramp-down)."),
    patience: int = typer.Option(0, min=0, help="Stop early after this many steps without "
                                 "improvement (0 = never)."),
    seed: int = typer.Option(0, help="Seed of the initial codes: image i of the input list "
                             "starts from seed + i, whatever --batch or the process count."),
    batch: int = typer.Option(1, min=1, help="Images optimised together (same result, faster)."),
    force: bool = typer.Option(False, "--force", help="Redo results in OUT that were made from "
                               "another input, model or settings (default: refuse, saying what "
                               "differs)."),
    out: Path = OutOpt("out/invert", help="Output folder (not a folder of inputs)."),
    device: str = DeviceOpt,
):
    """Invert images into the generator: OUT/STEM.png (reconstruction), OUT/STEM_compare.png,
    OUT/STEM.safetensors (parameters), OUT/STEM.json (psnr, ssim, loss, history, seed, and
    what the result was made from), OUT/summary.json.

    A rerun skips the images already done from the same input file, model and settings (resume
    after a kill) and says how many; results made differently are refused (--force redoes
    them). An unreadable image is listed at the end (exit 1) and the others are done. Shard a
    folder across processes with `torchrun --nproc_per_node K -m ganprior.cli invert ...`.
    """
    from ..inputs import list_inputs
    from ..inversion import make_method
    from ..inversion.engine import check_settings, lr_at
    from ..inversion.files import invert_files, refuse_overwriting
    from ..inversion.losses import parse_spec
    from . import validate

    # every option is checked before the model is loaded and before any work
    check_settings(steps, lr, patience, 0.0)
    validate.integer(batch, "--batch", 1, validate.MAX_BATCH)
    validate.integer(steps, "--steps", 0, validate.MAX_STEPS)
    validate.finite(noise_reg, "--noise-reg", lo=0)
    validate.integer(codes, "--codes", 1, 1024)
    validate.integer(pad_resolutions, "--pad-resolutions", 1, 16)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED)
    validate.integer(patience, "--patience", 0, validate.MAX_STEPS)
    validate.device(device)
    lr_at(schedule, lr, 0.0)
    if loss != "auto":
        parse_spec(loss)
    refuse_overwriting(validate.out_dir(out), list_inputs(inputs))
    model = model or _default_model(needs_w=method in ("w", "w+", "padinv"))
    opts = dict(codes=codes, layer=layer, pad_resolutions=pad_resolutions,
                noise_maps=noise_maps, noise_reg=noise_reg)
    encoder_sha = None
    if method in ("encoder", "hybrid"):
        from ..inversion.files import model_fingerprint
        from ..nets.encoder_files import load_encoder, zoo_encoder
        encoder = encoder or zoo_encoder(model)
        if encoder is None:
            raise ValueError(f"--method {method} needs --encoder FILE (`ganprior train-encoder`)")
        opts["encoder"] = load_encoder(encoder)[0]  # once, not per image
        encoder_sha = model_fingerprint(opts["encoder"])
    make_method(method, **opts)  # validate options before loading the model
    G = _load(model, device)["G"]
    if layer is not None:
        G.check_layer(layer)
    record_opts = dict(opts, encoder=str(encoder) if encoder else None, encoder_sha256=encoder_sha)
    with warnings.catch_warnings():  # the fallback is said once, below, not as a warning
        warnings.filterwarnings("ignore", message="--loss auto")
        report = invert_files(G, inputs, out, lambda: make_method(method, **opts), steps=steps,
                              lr=lr, loss=loss, seed=seed, batch=batch, schedule=schedule,
                              patience=patience, force=force,
                              options=dict(model=model, **record_opts))
    finish_run(report, out, lambda r: f"{Path(r['input']).name}: psnr {r['psnr']:.2f} dB, "
                                      f"ssim {r['ssim']:.3f}, {r['seconds']:.1f} s")


@user_errors
def analyze_layers(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders."),
    model: str = ModelOpt,
    blocks: Optional[str] = typer.Option(None, "--blocks", show_default="all split points",
                                         help="Composition blocks to compare, e.g. b4,b8,b16 "
                                              "(`ganprior info MODEL` lists them)."),
    layers: Optional[str] = typer.Option(None, "--layers", hidden=True,
                                         help="Deprecated name of --blocks."),
    codes: str = typer.Option("1,5,10,20", help="Numbers of codes to compare."),
    fixed_codes: int = typer.Option(20, help="Codes used while varying the block."),
    fixed_block: Optional[str] = typer.Option(None, "--fixed-block", "--fixed-layer",
                                              show_default="the block at 1/4 resolution",
                                              help="Block used while varying the codes."),
    steps: int = StepsOpt(300, min=1),
    lr: float = typer.Option(0.03, help="Adam learning rate."),
    loss: str = typer.Option("mse", help="Reconstruction loss (see `invert --help`)."),
    out: Path = OutOpt("out/analyze-layers"),
    device: str = DeviceOpt,
):
    """mGANprior's layer-wise analysis: quality vs composition block and vs number of codes.
    Writes OUT/analysis.svg and OUT/analysis_codes.svg (plots; .png beside them),
    OUT/analysis.md (table), OUT/analysis.json and OUT/grid.png (targets, then one row per
    run, labelled)."""
    import numpy as np
    import torch

    from ..files import atomic_write_text, json_safe, write_json
    from ..images import load_image, save_image, to_uint8
    from ..inversion.analysis import layer_analysis
    from ..inputs import list_inputs
    from ..plots import labelled_grid, line_chart, save_line_chart
    from ..progress import on_terminal

    from ..inversion.engine import check_settings
    from ..inversion.losses import parse_spec
    from . import validate

    if layers is not None:
        if blocks is not None:
            raise ValueError("--layers is the old name of --blocks; give only --blocks")
        typer.echo("note: analyze-layers --layers is deprecated, use --blocks (--layers means "
                   "W+ indices in `mix`)", err=True)
        blocks = layers
    check_settings(steps, lr, 0, 0.0)
    validate.integer(fixed_codes, "--fixed-codes", 1, 1024)
    try:
        codes_list = [int(c) for c in codes.split(",")]
    except ValueError:
        raise ValueError(f"--codes must be integers joined by commas, not {codes!r}") from None
    for c in codes_list:
        validate.integer(c, "--codes", 1, 1024)
    if loss != "auto":
        parse_spec(loss)
    validate.out_dir(out)
    validate.device(device)
    files = list_inputs(inputs)
    G = _load(model, device)["G"]
    block_list = blocks.split(",") if blocks else None
    for name in (block_list or []) + ([fixed_block] if fixed_block else []):
        G.check_layer(name)
    targets = torch.cat([load_image(f, G.img_resolution, G.img_channels) for f in files])
    res = layer_analysis(G, targets, block_list, codes_list, fixed_codes, fixed_block, steps,
                         lr, loss, progress=on_terminal())
    by_l, by_c, st = res["by_layer"], res["by_codes"], res["settings"]
    charts = {"analysis": (f"PSNR vs composition block (N = {st['fixed_codes']})",
                           [r["layer"] for r in by_l], [r["psnr"] for r in by_l],
                           "composition block"),
              "analysis_codes": (f"PSNR vs number of codes (block {st['fixed_layer']})",
                                 [str(r["codes"]) for r in by_c], [r["psnr"] for r in by_c],
                                 "number of codes N")}
    for name, (title, xs, ys, x_label) in charts.items():
        atomic_write_text(out / f"{name}.svg", line_chart(title, xs, {"PSNR": ys}, "PSNR (dB)",
                                                          x_label=x_label))
        save_line_chart(out / f"{name}.png", title, xs, {"PSNR": ys}, "PSNR (dB)",
                        x_label=x_label)
    rows = ["| varied | layer | codes | PSNR | SSIM | s / image |", "|---|---|---|---|---|---|"]
    rows += [f"| layer | {r['layer']} | {r['codes']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
             f"{r['seconds']:.1f} |" for r in by_l]
    rows += [f"| codes | {r['layer']} | {r['codes']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
             f"{r['seconds']:.1f} |" for r in by_c]
    atomic_write_text(out / "analysis.md", "\n".join(rows) + "\n")
    write_json(out / "analysis.json", json_safe(
        {"settings": st, "inputs": [str(f) for f in files],
         "by_layer": [{k: v for k, v in r.items() if k != "images"} for r in by_l],
         "by_codes": [{k: v for k, v in r.items() if k != "images"} for r in by_c]}), indent=1)
    cells = [to_uint8(targets)] + [to_uint8(r["images"]) for r in by_l + by_c]
    row_labels = ["target"] + [f"{r['layer']}, N={r['codes']}" for r in by_l + by_c]
    save_image(labelled_grid(np.concatenate(cells), len(files), row_labels,
                             [f.name for f in files]), out / "grid.png")
    console.print("\n".join(rows))
    console.print(f"plots: {out / 'analysis.svg'}, {out / 'analysis_codes.svg'} (and .png)")
