"""`ganprior colorize | super-resolve | inpaint | denoise`: restoration with the GAN prior.

Each command is an inversion through the task's degradation (restore/tasks.py), run over files
by the same folder runner as `invert` (progress, resume, JSON); `--method` picks any inversion
method or the task's classical baseline, `--tune pti|dgp` fine-tunes the generator on each
image afterwards.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from .common import (DeviceOpt, OutOpt, StyleModelOpt, _default_model, _load, finish_run,
                     user_errors)

InputsArg = typer.Argument(..., help="Image files and/or folders of images.")
MethodOpt = typer.Option("mganprior", help="A GAN-prior method (z | w | w+ | mganprior | padinv "
                         "| encoder | hybrid) or the task's classical baseline (colorize: gray; "
                         "super-resolve: bicubic; inpaint: biharmonic; denoise: nlm | tv).")
CodesOpt = typer.Option(None, help="mganprior: number of codes [default: the task's, "
                        "docs/restoration.md].", show_default=False)
LayerOpt = typer.Option(None, help="mganprior: composition layer, e.g. b8 [default: the task's].",
                        show_default=False)
PadOpt = typer.Option(4, help="padinv: how many resolutions get padding maps.")
EncoderOpt = typer.Option(None, help="encoder/hybrid: a `ganprior train-encoder` file "
                          "(default: the zoo model's shipped encoder).")
StepsOpt = typer.Option(None, "--steps", "--num-steps", min=0, show_default=False,
                        help="Optimisation steps per image [default: the task's, 300] "
                        "(--num-steps: NVIDIA's spelling).")
LrOpt = typer.Option(0.03, help="Adam learning rate of the inversion.")
LossOpt = typer.Option("auto", help="Reconstruction loss on the observation (see `invert --help`).")
TuneOpt = typer.Option("none", help="Fine-tune the generator on each image after the inversion: "
                       "none | pti (pivotal tuning) | dgp (progressive, with D features when the "
                       "checkpoint has a D). Saved as OUT/STEM_tuned.safetensors.")
TuneStepsOpt = typer.Option(None, help="Tuning steps [default: the tuning's own, docs/tuning.md].",
                            show_default=False)
KeepOpt = typer.Option(True, "--keep-observed/--no-keep-observed",
                       help="Keep what was observed in the output (colorize: the input's "
                       "luminance; inpaint: the known pixels).")
SimulateOpt = typer.Option(False, "--simulate", help="The inputs are clean images: degrade them "
                           "here (image i with seed + i) and score the result against them.")
SeedOpt = typer.Option(0, help="Seed of the initial codes (and of random masks / noise): image "
                       "i of the input list uses seed + i.")
BatchOpt = typer.Option(1, min=1, help="Images restored together (same result, faster).")
ForceOpt = typer.Option(False, "--force", help="Redo results in OUT made differently.")


def _out(task: str):
    return OutOpt(f"out/{task}", help="Output folder (not a folder of inputs).")


def _run(task_name: str, task_options: dict, inputs, model, method, codes, layer,
         pad_resolutions, encoder, steps, lr, loss, tune, tune_steps, keep_observed, simulate,
         seed, batch, force, out, device):
    from ..inputs import list_inputs
    from ..inversion import make_method
    from ..inversion.engine import check_settings
    from ..inversion.files import invert_files, refuse_overwriting
    from ..inversion.losses import parse_spec
    from ..inversion.methods import METHODS
    from ..restore.baselines import BASELINES
    from ..restore.tasks import TASK_DEFAULTS, Task, default_layer
    from . import validate

    defaults = TASK_DEFAULTS[task_name]
    steps = defaults["steps"] if steps is None else steps
    codes = defaults["codes"] if codes is None else codes
    baseline = method if method in BASELINES[task_name] else None
    other = [t for t, names in BASELINES.items() if method in names]
    if baseline is None and other:
        raise ValueError(f"--method {method} is a {other[0]} baseline, not a {task_name} "
                         f"baseline; use {' or '.join(BASELINES[task_name])} or a GAN-prior method")
    if baseline is None and method not in METHODS:
        raise ValueError(f"unknown --method {method!r}; choose from {', '.join(METHODS)} or "
                         f"the baseline {' | '.join(BASELINES[task_name])}")
    if tune not in ("none", "pti", "dgp"):
        raise ValueError(f"--tune must be none, pti or dgp, not {tune!r}")
    if baseline and tune != "none":
        raise ValueError(f"--tune needs a GAN-prior --method; {baseline} is a classical baseline")
    check_settings(steps, lr, 0, 0.0)
    validate.integer(steps, "--steps", 0, validate.MAX_STEPS)
    validate.integer(tune_steps, "--tune-steps", 0, validate.MAX_STEPS, optional=True)
    validate.integer(batch, "--batch", 1, validate.MAX_BATCH)
    validate.integer(codes, "--codes", 1, 1024)
    validate.integer(pad_resolutions, "--pad-resolutions", 1, 16)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED)
    validate.device(device)
    if loss != "auto":
        parse_spec(loss)
    task = Task(task_name, task_options, baseline=baseline, simulate=simulate,
                keep_observed=keep_observed)
    refuse_overwriting(validate.out_dir(out), list_inputs(inputs))
    model = model or _default_model(needs_w=method in ("w", "w+", "padinv"))
    opts = dict(codes=codes, layer=layer, pad_resolutions=pad_resolutions)
    if method in ("encoder", "hybrid"):
        from ..nets.encoder_files import load_encoder, zoo_encoder
        encoder = encoder or zoo_encoder(model)
        if encoder is None:
            raise ValueError(f"--method {method} needs --encoder FILE (`ganprior train-encoder`)")
        opts["encoder"] = load_encoder(encoder)[0]
    if baseline is None:
        make_method(method, **opts)  # validate the options before loading the model
    nets = _load(model, device)
    G = nets["G"]
    task.degradation(G.img_resolution, [seed])  # a bad factor / mask size: one line, now
    if baseline is None and method == "mganprior":
        opts["layer"] = layer = layer or default_layer(task_name, G.img_resolution)
        G.check_layer(layer)
    tuning = None if tune == "none" else {"kind": tune, **({"steps": tune_steps}
                                                            if tune_steps is not None else {})}
    record_opts = {k: v for k, v in opts.items() if k != "encoder"}
    if method in ("encoder", "hybrid"):
        record_opts["encoder"] = str(encoder)
    if baseline is not None:
        record_opts = {}
    with warnings.catch_warnings():  # the fallback is said once, below, not as a warning
        warnings.filterwarnings("ignore", message="--loss auto")
        report = invert_files(G, inputs, out, lambda: make_method(method, **opts), steps=steps,
                              lr=lr, loss=loss, seed=seed, batch=batch, force=force, task=task,
                              tune=tuning, D=nets.get("D") if tune == "dgp" else None,
                              options=dict(model=model, **record_opts))
    finish_run(report, out, _describe)


def _describe(r: dict) -> str:
    against = "vs clean" if r.get("scored_against") == "clean" else "fit to the input"
    ssim = f", ssim {r['ssim']:.3f}" if r.get("ssim") is not None else ""
    return (f"{Path(r['input']).name}: psnr {r['psnr']:.2f} dB{ssim} ({against}), "
            f"{r['seconds']:.1f} s")


_DOC_OUTPUTS = """

    Writes OUT/STEM.png (the result), OUT/STEM_observed.png (what the method saw),
    OUT/STEM_compare.png (observation | result [| clean, with --simulate]), OUT/STEM.safetensors
    (latents; not for baselines), OUT/STEM_tuned.safetensors (with --tune), OUT/STEM.json
    (psnr/ssim, settings, history) and OUT/summary.json; reruns resume as `invert` does.
    """


@user_errors
def colorize(inputs: list[Path] = InputsArg, model: Optional[str] = StyleModelOpt,
             method: str = MethodOpt, codes: Optional[int] = CodesOpt,
             layer: Optional[str] = LayerOpt, pad_resolutions: int = PadOpt,
             encoder: Optional[Path] = EncoderOpt, steps: Optional[int] = StepsOpt,
             lr: float = LrOpt, loss: str = LossOpt, tune: str = TuneOpt,
             tune_steps: Optional[int] = TuneStepsOpt, keep_observed: bool = KeepOpt,
             simulate: bool = SimulateOpt, seed: int = SeedOpt, batch: int = BatchOpt,
             force: bool = ForceOpt, out: Path = _out("colorize"), device: str = DeviceOpt):
    """Colorize gray photos (colour inputs are made gray first): the generator's colours, the
    input's luminance."""
    _run("colorize", {}, inputs, model, method, codes, layer, pad_resolutions, encoder, steps,
         lr, loss, tune, tune_steps, keep_observed, simulate, seed, batch, force, out, device)


@user_errors
def super_resolve(inputs: list[Path] = InputsArg,
                  factor: int = typer.Option(8, help="Upscaling factor; it must divide the "
                                             "model's resolution (the input is resolution / F "
                                             "px, resized with a notice if not)."),
                  downsample: str = typer.Option("area", help="How the loss downsamples the "
                                                 "generator's image: area | bicubic."),
                  model: Optional[str] = StyleModelOpt,
                  method: str = MethodOpt, codes: Optional[int] = CodesOpt,
                  layer: Optional[str] = LayerOpt, pad_resolutions: int = PadOpt,
                  encoder: Optional[Path] = EncoderOpt, steps: Optional[int] = StepsOpt,
                  lr: float = LrOpt, loss: str = LossOpt, tune: str = TuneOpt,
                  tune_steps: Optional[int] = TuneStepsOpt,
                  simulate: bool = SimulateOpt, seed: int = SeedOpt, batch: int = BatchOpt,
                  force: bool = ForceOpt, out: Path = _out("super-resolve"),
                  device: str = DeviceOpt):
    """Super-resolve low-resolution images by FACTOR to the model's resolution."""
    from . import validate
    validate.integer(factor, "--factor", 1, 1024)
    if downsample not in ("area", "bicubic"):
        raise ValueError(f"--downsample must be area or bicubic, not {downsample!r}")
    _run("super-resolve", {"factor": factor, "mode": downsample}, inputs, model, method, codes,
         layer, pad_resolutions, encoder, steps, lr, loss, tune, tune_steps, True, simulate,
         seed, batch, force, out, device)


@user_errors
def inpaint(inputs: list[Path] = InputsArg,
            mask: Optional[Path] = typer.Option(None, show_default="none",
                                                help="Mask image at the model's "
                                                "resolution: white = known, black = missing."),
            center_crop: Optional[int] = typer.Option(None, show_default="none",
                                                      help="Missing centre square of "
                                                      "this many pixels."),
            random: Optional[float] = typer.Option(None, show_default="none",
                                                   help="Fraction of pixels missing at "
                                                   "random, e.g. 0.8 (one mask per image)."),
            model: Optional[str] = StyleModelOpt,
            method: str = MethodOpt, codes: Optional[int] = CodesOpt,
            layer: Optional[str] = LayerOpt, pad_resolutions: int = PadOpt,
            encoder: Optional[Path] = EncoderOpt, steps: Optional[int] = StepsOpt,
            lr: float = LrOpt, loss: str = LossOpt, tune: str = TuneOpt,
            tune_steps: Optional[int] = TuneStepsOpt, keep_observed: bool = KeepOpt,
            simulate: bool = SimulateOpt, seed: int = SeedOpt, batch: int = BatchOpt,
            force: bool = ForceOpt, out: Path = _out("inpaint"), device: str = DeviceOpt):
    """Fill the missing pixels of photos: give exactly one of --mask, --center-crop, --random
    (the pixels under the mask's black part are ignored, whatever they hold)."""
    given = [n for n, v in (("--mask", mask), ("--center-crop", center_crop),
                            ("--random", random)) if v is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of --mask, --center-crop, --random"
                         + (f" (got {', '.join(given)})" if given else ""))
    options = {"mask": mask, "center_crop": center_crop, "random": random}
    if mask is not None:
        from ..weights import sha256
        if not Path(mask).is_file():
            raise FileNotFoundError(f"--mask {mask} not found")
        options["mask_sha256"] = sha256(mask)
    _run("inpaint", {k: v for k, v in options.items() if v is not None}, inputs, model, method,
         codes, layer, pad_resolutions, encoder, steps, lr, loss, tune, tune_steps,
         keep_observed, simulate, seed, batch, force, out, device)


@user_errors
def denoise(inputs: list[Path] = InputsArg,
            noise: Optional[str] = typer.Option(None, show_default="none (noisy photos)",
                                                help="Add this noise to the (clean) "
                                                "inputs first and score against them: gaussian "
                                                "| sp (salt and pepper). Without it the inputs "
                                                "are the noisy photos."),
            sigma: float = typer.Option(0.1, help="With --noise: Gaussian std in units of the "
                                        "0..1 intensity range, or the salt-and-pepper fraction."),
            model: Optional[str] = StyleModelOpt,
            method: str = MethodOpt, codes: Optional[int] = CodesOpt,
            layer: Optional[str] = LayerOpt, pad_resolutions: int = PadOpt,
            encoder: Optional[Path] = EncoderOpt, steps: Optional[int] = StepsOpt,
            lr: float = LrOpt, loss: str = LossOpt, tune: str = TuneOpt,
            tune_steps: Optional[int] = TuneStepsOpt, seed: int = SeedOpt,
            batch: int = BatchOpt, force: bool = ForceOpt, out: Path = _out("denoise"),
            device: str = DeviceOpt):
    """Denoise photos: the generator can only make clean images, so its reconstruction of the
    noisy input is the denoised image."""
    from . import validate
    if noise not in (None, "gaussian", "sp"):
        raise ValueError(f"--noise must be gaussian or sp, not {noise!r}")
    validate.finite(sigma, "--sigma", lo=0, hi=1)
    options = {"noise": noise or "gaussian", "sigma": sigma}
    _run("denoise", options, inputs, model, method, codes, layer, pad_resolutions, encoder,
         steps, lr, loss, tune, tune_steps, True, noise is not None, seed, batch, force, out,
         device)


for _command in (colorize, super_resolve, inpaint, denoise):
    _command.__doc__ += _DOC_OUTPUTS
