"""`ganprior drag`: a DragGAN edit without a UI (ganprior.editing.drag does the work)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import validate
from .common import (DeviceOpt, OutOpt, StyleModelOpt, _default_model, _load, console,
                     say_loss_note, user_errors)

MAX_POINTS = 64
MAX_DRAG_STEPS = 100_000
ANIMATIONS = ("gif", "webp")


def _count_sources(seed, latent, image) -> None:
    given = [n for n, v in (("--seed", seed), ("--latent", latent), ("--image", image))
             if v is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of --seed, --latent, --image"
                         + (f" (got {', '.join(given)})" if given else ""))


def _read_mask(path: Path, resolution: int):
    """A mask image at the model's resolution: light (>= mid gray) = flexible, dark = fixed."""
    from ..images import load_image
    m = load_image(path, channels=1, name=f"--mask {path}")
    if tuple(m.shape[-2:]) != (resolution, resolution):
        raise ValueError(f"--mask {path} is {m.shape[-1]}x{m.shape[-2]}; the model draws "
                         f"{resolution}x{resolution} images")
    return (m[0, 0] >= 0).float()


def _latent_start(G, path: Path, index: int):
    """(generator, ws [1, num_ws, w_dim]) of row `index` of a latent file; refuses latents
    whose image is not drawn by their W+ code alone (PadInv, mGANprior)."""
    import torch

    from ..latent_files import read_latents
    latents = read_latents(path, G)
    if latents.ws is None:
        raise ValueError(f"--latent {path}: a {latents.kind} latent without W+ codes; drag "
                         "needs a w or w+ latent")
    if not 0 <= index < len(latents):
        raise ValueError(f"--index {index} out of range: {path} holds {len(latents)} latents")
    ws = latents.ws[index:index + 1]
    with torch.no_grad():
        own = latents.render(index)
        plain = latents.G.synthesize(ws.to(next(latents.G.parameters())))
    if not torch.allclose(own, plain, atol=1e-4):
        raise ValueError(f"--latent {path}: its image is not drawn by its W+ code alone "
                         "(PadInv or another method with extra parameters); drag needs a w or "
                         "w+ latent")
    return latents.G, ws


@user_errors
def drag(
    model: Optional[str] = StyleModelOpt,
    seed: Optional[int] = typer.Option(None, show_default="none",
                                       help="Drag the image of this seed."),
    trunc: float = typer.Option(0.7, "--trunc", help="Truncation psi for --seed (the official "
                                "DragGAN default 0.7; 1 = none)."),
    latent: Optional[Path] = typer.Option(None, show_default="none",
                                          help="Drag a latent: generate's latents.safetensors "
                                          "(row --index), NVIDIA's projected_w.npz, or a w/w+ "
                                          "inversion result OUT/STEM (tuned ones with their "
                                          "tuned generator)."),
    index: int = typer.Option(0, help="Row of --latent's latents."),
    image: Optional[Path] = typer.Option(None, show_default="none",
                                         help="Drag a photo: inverted into W+ first (centre "
                                         "square, resized to the model's resolution)."),
    invert_steps: int = typer.Option(300, help="--image: inversion steps (w+, Adam)."),
    tune: bool = typer.Option(False, "--tune/--no-tune", help="--image: tune a copy of the "
                              "generator on the photo (PTI) before dragging."),
    tune_steps: Optional[int] = typer.Option(None, show_default="PTI's 350",
                                             help="--image --tune: PTI steps."),
    points: str = typer.Option(..., "--points", help="Handle>target pairs in pixels of the "
                               "image, x to the right, y down: \"x1,y1>x2,y2 ; x3,y3>x4,y4\"."),
    mask: Optional[Path] = typer.Option(None, show_default="none",
                                        help="Image of the model's size: light = may move, "
                                        "dark = keep fixed (default: everything may move)."),
    steps: int = typer.Option(300, "--steps", help="Stop after this many optimisation steps "
                              "if the handles have not reached their targets."),
    tracking: str = typer.Option("paper", help="paper (nearest neighbour to the clicked "
                                 "feature) | robust (matches the clicked patch of features and "
                                 "pixels; docs/drag.md)."),
    space: str = typer.Option("w+", help="w+ (the first --n-ws rows of W+) | w (one w for "
                              "every layer). DCGAN: both optimise z."),
    n_ws: int = typer.Option(6, help="w+: how many W+ rows (from the first) move."),
    lr: float = typer.Option(2e-3, help="Adam learning rate."),
    lambda_mask: float = typer.Option(20.0, "--lambda", help="Weight of the fixed-area term."),
    layer: Optional[str] = typer.Option(None, show_default="the 6th block, b32 at 64 px",
                                        help="Block whose features drive the edit, e.g. b32."),
    frames: int = typer.Option(60, help="At most this many frames in the animation."),
    animation: str = typer.Option("gif", help="gif | webp."),
    out: Path = OutOpt("out/drag"),
    device: str = DeviceOpt,
):
    """Drag handle points to targets (DragGAN): OUT/start.png, OUT/final.png,
    OUT/before_after.png and OUT/drag.gif (points drawn: handles red, targets blue),
    OUT/drag.json (settings, per-step points, distances, loss, seconds; final mean distance)
    and OUT/latents.safetensors (start and final ws); with --tune also
    OUT/tuned.safetensors (the tuned generator as a delta to --model)."""
    import time
    from dataclasses import asdict

    import torch
    from safetensors.torch import save_file

    from ..editing.drag import (DragSession, DragSettings, FrameKeeper, animation_frames,
                                before_after, format_points, invert_photo, parse_points,
                                write_animation)
    from ..files import atomic_write, json_safe, write_json
    from ..images import load_image, save_image
    from ..progress import progress_bar

    _count_sources(seed, latent, image)
    validate.integer(seed, "--seed", 0, validate.MAX_SEED, optional=True)
    validate.finite(trunc, "--trunc")
    validate.integer(index, "--index", 0, validate.MAX_SIZE)
    validate.integer(invert_steps, "--invert-steps", 0, validate.MAX_STEPS)
    validate.integer(tune_steps, "--tune-steps", 0, validate.MAX_STEPS, optional=True)
    validate.integer(steps, "--steps", 0, MAX_DRAG_STEPS)
    validate.integer(n_ws, "--n-ws", 1, validate.MAX_SIZE)
    validate.finite(lr, "--lr", 0, lo_open=True)
    validate.finite(lambda_mask, "--lambda", 0)
    validate.integer(frames, "--frames", 2, 1000)
    if animation not in ANIMATIONS:
        raise ValueError(f"--animation must be gif or webp, not {animation!r}")
    handles, targets = parse_points(points)
    if len(handles) > MAX_POINTS:
        raise ValueError(f"--points: {len(handles)} pairs; at most {MAX_POINTS}")
    settings = DragSettings(layer=layer, lr=lr, lambda_mask=lambda_mask, n_ws=n_ws, space=space,
                            tracking=tracking, max_steps=steps).check()
    if image is not None:
        from ..images import check_image
        check_image(image, f"--image {image}")
    validate.out_dir(out)
    validate.device(device)
    model_name = model or _default_model(needs_w=True)
    G = _load(model_name, device)["G"]
    R = G.img_resolution
    mask_t = _read_mask(mask, R) if mask is not None else None
    # points, mask and layer checked on the model before any inversion or tuning runs
    DragSession.check_inputs(G, handles, targets, mask_t, settings)

    photo_start, source = None, {}
    if image is not None:
        photo = load_image(image, R, G.img_channels, name=f"--image {image}")
        photo_start = invert_photo(G, photo, steps=invert_steps, tune=tune,
                                   tune_steps=tune_steps, progress=True)
        G_drag, ws = photo_start.G, photo_start.ws
        say_loss_note(photo_start.inversion.loss_info)
        source = dict(image=str(image), method=photo_start.method, invert_steps=invert_steps,
                      invert_psnr=photo_start.inversion.psnr[0], tuned=tune,
                      tune_psnr=photo_start.tuning.psnr if tune else None)
    elif latent is not None:
        if tune:
            raise ValueError("--tune applies to --image")
        G_drag, ws = _latent_start(G, latent, index)
        source = dict(latent=str(latent), index=index, tuned=G_drag is not G)
    else:
        if tune:
            raise ValueError("--tune applies to --image")
        with torch.no_grad():
            ws = G.z_to_w(G.z_from_seed(seed), G.class_vector(1, None), truncation_psi=trunc)
        G_drag, source = G, dict(seed=seed, trunc=trunc)

    session = DragSession(G_drag, ws, handles, targets, mask=mask_t, settings=settings)
    keeper = FrameKeeper(frames)
    history = []
    bar = progress_bar(total=steps + 1, desc="drag", unit="step", leave=False)
    t0 = time.time()
    try:
        while not session.done:
            r = session.step()
            keeper.add(r)
            history.append({k: r[k] for k in ("step", "points", "distances", "loss", "seconds")})
            bar.update(1)
            if not bar.disable:
                bar.set_postfix(distance=f"{max(r['distances']):.1f}px")
    finally:
        bar.close()
    seconds = time.time() - t0
    kept = keeper.records()
    save_image(kept[0]["image"], out / "start.png")
    save_image(session.image(), out / "final.png")
    save_image(before_after(kept), out / "before_after.png")
    write_animation(out / f"drag.{animation}", animation_frames(kept, frames))
    tensors = {"ws": session.ws().cpu().contiguous(), "ws_start": ws.detach().cpu().contiguous()}
    atomic_write(out / "latents.safetensors", lambda tmp: save_file(tensors, tmp))
    if photo_start is not None and photo_start.tuning is not None:
        from ..inversion.tuning import save_delta
        save_delta(out / "tuned.safetensors", photo_start.G, G, meta=photo_start.tuning.settings)
    final = history[-1]
    reached = all(d <= session.radii["d"] for d in final["distances"])
    record = dict(model=model_name, source=source, points=format_points(handles, targets),
                  handles=handles, targets=targets, mask=str(mask) if mask else None,
                  settings=dict(asdict(settings), layer=session.layer, **session.radii),
                  steps=session.step_count, reached=reached, seconds=seconds,
                  initial_mean_distance=_mean(history[0]["distances"]),
                  final_mean_distance=_mean(final["distances"]),
                  final_points=final["points"], history=history)
    write_json(out / "drag.json", json_safe(record))
    console.print(f"{'reached' if reached else 'stopped at --steps'} after {session.step_count} "
                  f"steps ({seconds:.1f} s): mean distance {record['initial_mean_distance']:.2f}"
                  f" -> {record['final_mean_distance']:.2f} px")
    console.print(f"results in {out}")


def _mean(values) -> float:
    return sum(values) / len(values)
