"""`make demo`: the end-to-end showcase on the embedded models, written as an HTML report.

Each section is a function (out_dir, device, quick) -> HTML fragment; later features append
theirs to SECTIONS. `quick` cuts the optimisation budgets to a smoke test (`demo --quick`).
Images are written next to index.html and referenced relatively.
"""
from __future__ import annotations

import html
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .checkpoints import load_networks, zoo_entries
from .editing.mixing import style_mixing_grid
from .files import atomic_write_text
from .generate import generate
from .images import grid, save_image, to_uint8

LR = 0.03  # the inversions' Adam learning rate (the library's default), named in the report


def _img(path: Path, out: Path, caption: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return (f'<figure><img src="{path.relative_to(out).as_posix()}"{w} '
            f'style="image-rendering:pixelated"><figcaption>{html.escape(caption)}</figcaption></figure>')


def section_models(out: Path, device, quick: bool = False) -> str:
    rows = []
    for e in zoo_entries().values():
        rows.append(f"<tr><td>{e.name}</td><td>{e.arch}</td><td>{e.resolution}</td>"
                    f"<td>{', '.join(e.latent_spaces)}</td><td>{html.escape(e.availability())}</td>"
                    f"<td>{html.escape(e.source)}</td></tr>")
    return ("<h2>Embedded models</h2><table><tr><th>name</th><th>arch</th><th>res</th>"
            "<th>latent spaces</th><th>status</th><th>source</th></tr>" + "".join(rows) + "</table>")


def _latent_models() -> dict:
    """The zoo's generators of latent codes (not label-to-image models such as pix2pixHD)."""
    return {n: e for n, e in zoo_entries().items() if "z" in e.latent_spaces}


def section_generate(out: Path, device, quick: bool = False) -> str:
    parts = ["<h2>Generation from seeds</h2><p>Seeds map to z as in NVIDIA's generate.py; "
             "images are quantised the same way (x&middot;127.5+128).</p>"]
    for name, entry in _latent_models().items():
        if entry.availability() != "ok":
            parts.append(f"<p>{name}: not available ({html.escape(entry.availability())})</p>")
            continue
        G = load_networks(name, device)["G"]
        seeds = list(range(32))
        t0 = time.time()
        images, _, _ = generate(G, seeds, batch=16)
        dt = time.time() - t0
        path = save_image(grid(images, cols=8), out / f"{name}_seeds0-31.png")
        parts.append(_img(path, out, f"{name}: seeds 0-31, psi 1 ({len(seeds) / dt:.0f} img/s "
                          f"on {device})", width=8 * 2 * (G.img_resolution + 2)))
        psis = (1.0, 0.8, 0.6)
        trunc = [generate(G, list(range(8)), truncation_psi=psi)[0] for psi in psis]
        path = save_image(grid(torch.cat([torch.from_numpy(t) for t in trunc]).numpy(), cols=8),
                          out / f"{name}_truncation.png")
        toward = "w pulled towards w_avg" if "w" in G.latent_spaces else "z scaled towards 0"
        parts.append(_img(path, out, f"{name}: truncation psi {' / '.join(f'{p:.1f}' for p in psis)} "
                          f"(rows, {toward}), seeds 0-7", width=8 * 2 * (G.img_resolution + 2)))
        if G.num_ws > 1:
            layers = range(0, 4)  # the coarse ones
            picture, _ = style_mixing_grid(G, [1, 2, 3], [4, 5, 6, 7], layers)
            path = save_image(picture, out / f"{name}_mixing.png")
            parts.append(_img(path, out, f"{name}: style mixing, rows take the coarse W+ layers "
                              f"{layers[0]}-{layers[-1]} of {G.num_ws} from the column seeds",
                              width=2 * picture.shape[1]))
    return "\n".join(parts)


def _demo_targets(G):
    """(names, targets): an in-domain image (held-out seed) and, when scikit-image is present,
    a real photo (the astronaut's face, NASA, public domain)."""
    import tempfile

    from .images import load_image
    with torch.no_grad():
        names, imgs = ["in-domain (seed 1000)"], [G.synthesize(G.z_to_w(G.z_from_seed(1000))).cpu()]
    try:
        from PIL import Image
        from skimage import data
        with tempfile.TemporaryDirectory() as tmp:
            Image.fromarray(data.astronaut()[0:220, 120:340]).save(f"{tmp}/a.png")
            # quiet: the resize notice would name a temporary file the user never sees
            imgs.append(load_image(f"{tmp}/a.png", G.img_resolution, quiet=True))
            names.append("real photo (astronaut)")
    except ImportError:
        pass
    return names, torch.cat(imgs)


def _inversion_table(out: Path, name: str, G, methods: list, steps: int) -> str:
    """Targets down, methods across; each reconstruction captioned with its PSNR and time."""
    from .inversion import invert
    names, targets = _demo_targets(G)
    head = "<tr><th>target</th>" + "".join(f"<th>{html.escape(m)}</th>" for m, _ in methods) + "</tr>"
    results = [invert(G, targets, m, steps=steps, lr=LR, loss="mse") for _, m in methods]
    rows = []
    for i, tname in enumerate(names):
        path = save_image(to_uint8(targets[i:i + 1])[0], out / f"invert_{name}_target{i}.png")
        cells = [f'<td>{_img(path, out, tname, width=128)}</td>']
        for k, r in enumerate(results):
            path = save_image(to_uint8(r.images[i:i + 1])[0], out / f"invert_{name}_{i}_{k}.png")
            caption = f"{r.psnr[i]:.2f} dB, {r.seconds / len(names):.1f} s"
            cells.append(f'<td>{_img(path, out, caption, width=128)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    # the sentence under the table says what these numbers show, whatever they are
    i = len(names) - 1
    best = max(range(len(methods)), key=lambda k: results[k].psnr[i])
    ranking = "; ".join(f"{m} {r.psnr[i]:.2f} dB" for (m, _), r in zip(methods, results))
    summary = (f"<p>On the {html.escape(names[i])} target the best reconstruction here is "
               f"{html.escape(methods[best][0])} ({html.escape(ranking)}).</p>")
    return f"<table>{head}{''.join(rows)}</table>{summary}"


def section_inversion(out: Path, device, quick: bool = False) -> str:
    from .checkpoints.zoo import DEFAULT_STYLE_MODEL
    from .inversion import make_method
    from .nets.encoder_files import load_encoder, zoo_encoder

    name, steps = "dcgan-digiface64", 20 if quick else 200
    methods = [("(a) single z", make_method("z"))]
    if zoo_encoder(name):
        E = load_encoder(zoo_encoder(name))[0]
        methods += [("(b) encoder", make_method("encoder", encoder=E)),
                    ("(c) hybrid", make_method("hybrid", encoder=E))]
    methods.append(("(d) mGANprior N=20 @b16", make_method("mganprior", codes=20, layer="b16")))
    G = load_networks(name, device)["G"]
    parts = [f"<h2>GAN inversion ({name})</h2><p>{steps} Adam steps (lr {LR:g}, MSE) per method; "
             f"PSNR against the {G.img_resolution} px target; see BENCHMARKS.md for the full "
             "table.</p>", _inversion_table(out, name, G, methods, steps)]
    if DEFAULT_STYLE_MODEL in zoo_entries():
        methods = [("w", make_method("w")), ("w+", make_method("w+")),
                   ("PadInv (w+ and padding maps)", make_method("padinv")),
                   ("mGANprior N=20 @b16", make_method("mganprior", codes=20, layer="b16"))]
        parts += [f"<h2>GAN inversion ({DEFAULT_STYLE_MODEL})</h2><p>The same targets and "
                  f"budget ({steps} steps) in the StyleGAN2 spaces: a single w, one w per layer "
                  "(w+), w+ with PadInv's spatial padding maps, and multi-code.</p>",
                  _inversion_table(out, DEFAULT_STYLE_MODEL,
                                   load_networks(DEFAULT_STYLE_MODEL, device)["G"], methods, steps)]
    return "\n".join(parts)


def section_restoration(out: Path, device, quick: bool = False) -> str:
    """Every task on an in-domain image and the real photo, degraded here (--simulate): the
    classical baseline, the GAN prior with G fixed (w+) and with G tuned (w+ then PTI)."""
    import tempfile
    import warnings

    from .checkpoints.zoo import DEFAULT_STYLE_MODEL
    from .inversion import make_method
    from .inversion.files import invert_files
    from .restore.tasks import Task

    if DEFAULT_STYLE_MODEL not in zoo_entries():
        return ""
    nets = load_networks(DEFAULT_STYLE_MODEL, device)
    G, (steps, tune_steps) = nets["G"], (10, 5) if quick else (100, 60)
    names, targets = _demo_targets(G)
    factor, hole, sigma = 8, 24, 0.1
    # (task, its options, the classical baseline, how the clean image is degraded)
    setups = [("colorize", {}, "gray", "made gray"),
              ("super-resolve", {"factor": factor}, "bicubic",
               f"downsampled x{factor} to {G.img_resolution // factor} px"),
              ("inpaint", {"center_crop": hole}, "biharmonic", f"a {hole} px centre hole"),
              ("denoise", {"noise": "gaussian", "sigma": sigma}, "nlm",
               f"Gaussian noise of sigma {sigma:g} (0..1 intensity units)")]
    runs = [("baseline", None), ("GAN prior, G fixed (w+)", None),
            ("GAN prior + PTI tuning", {"kind": "pti", "steps": tune_steps})]
    head = ("<tr><th>task</th><th>clean</th><th>input</th>"
            + "".join(f"<th>{html.escape(r)}</th>" for r, _ in runs) + "</tr>")
    rows, losses = [], {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="--loss auto")
        files = [save_image(to_uint8(targets[i:i + 1])[0], Path(tmp) / f"target{i}.png")
                 for i in range(len(names))]
        for task_name, options, baseline, _ in setups:
            for i, (tname, f) in enumerate(zip(names, files)):
                clean = save_image(to_uint8(targets[i:i + 1])[0],
                                   out / f"restore_{task_name}_{i}_clean.png")
                cells = [f"<td>{task_name}<br>{html.escape(tname)}<br>baseline: {baseline}</td>",
                         f"<td>{_img(clean, out, 'clean', width=128)}</td>"]
                for k, (label, tune) in enumerate(runs):
                    folder = out / "restore" / task_name / str(k)
                    task = Task(task_name, dict(options), simulate=True,
                                baseline=baseline if k == 0 else None)
                    rec = invert_files(G, [f], folder, lambda: make_method("w+"), steps=steps,
                                       seed=i, task=task, tune=tune, progress=False,
                                       force=True).records[0]
                    if k > 0:  # the GAN runs' reconstruction loss, as each record states it
                        losses.setdefault(task_name, set()).add(rec["loss"])
                    if k == 0:
                        cells.append(f"<td>{_img(folder / f'{f.stem}_observed.png', out, 'observed', width=128)}</td>")
                    caption = f"{rec['psnr']:.2f} dB, {rec['seconds']:.1f} s"
                    cells.append(f"<td>{_img(folder / f'{f.stem}.png', out, caption, width=128)}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
    how = "; ".join(f"{task}: {what}" for task, _, _, what in setups)
    used = "; ".join(f"{task}: {', '.join(sorted(map(str, losses[task])))}" for task in losses)
    if "ms-ssim" in used:
        used += (" (MS-SSIM on images under 176 px uses fewer than the paper's five scales: "
                 "docs/metrics.md)")
    return (f"<h2>Restoration with the GAN prior ({DEFAULT_STYLE_MODEL})</h2><p>Each clean "
            f"image is degraded here ({html.escape(how)}), then restored by the task's "
            f"classical baseline, by a w+ inversion through the degradation ({steps} steps, "
            f"G fixed) and by the same inversion followed by PTI generator tuning "
            f"({tune_steps} steps). PSNR against the clean image. Reconstruction loss, as "
            f"recorded with each result: {html.escape(used)}. The full comparison (mGANprior, "
            "PadInv, DGP, and w+ given the time of w+ with tuning) is in BENCHMARKS.md.</p>"
            f"<table>{head}{''.join(rows)}</table>")


def section_editing(out: Path, device, quick: bool = False) -> str:
    """The shipped attribute directions of each zoo model, applied to one seed."""
    from .editing.directions import edit_frames, find_direction, shipped_directions
    from .inversion.methods import LatentW, LatentZ

    strengths, seed = [-3, -2, -1, 0, 1, 2, 3], 7
    parts = ["<h2>Semantic editing</h2><p>InterFaceGAN directions of attributes measured "
             "from pixels (the embedded models have no labels; docs/editing.md), and SeFa's "
             f"first closed-form direction; strength {strengths[0]}..{strengths[-1]}, the "
             "original in the centre.</p>"]
    for name, entry in _latent_models().items():
        if entry.availability() != "ok":
            continue
        G = load_networks(name, device)["G"]
        z = G.z_from_seed(seed)
        if "w" in G.latent_spaces:
            method, method_name, params = LatentW(plus=True), "w+", {"w": G.z_to_w(z)}
        else:
            method, method_name, params = LatentZ(), "z", {"z": z}
        strips = []
        for d_name in [n for n in ("brightness", "warmth", "asymmetry", "contrast", "sefa0")
                       if n in shipped_directions(G)]:
            images, _ = edit_frames(G, method, method_name, params, find_direction(d_name, G),
                                    strengths)
            strips.append((d_name, images))
        if not strips:
            continue
        picture = grid(np.concatenate([to_uint8(img) for _, img in strips]), cols=len(strengths))
        path = save_image(picture, out / f"edit_{name}.png")
        rows = ", ".join(n for n, _ in strips)
        parts.append(_img(path, out, f"{name}, seed {seed}; rows: {rows}", width=2 * picture.shape[1]))
    return "\n".join(parts)


def section_drag(out: Path, device, quick: bool = False) -> str:
    """One DragGAN edit on the embedded StyleGAN2: before/after with points, and the GIF."""
    from .checkpoints.zoo import DEFAULT_STYLE_MODEL
    from .editing.drag import DragSettings, drag_pictures
    if zoo_entries()[DEFAULT_STYLE_MODEL].availability() != "ok":
        return ""
    G = load_networks(DEFAULT_STYLE_MODEL, device)["G"]
    seed, psi, handles, targets = 3, 0.7, [(24, 40)], [(30, 36)]
    settings = DragSettings(max_steps=10 if quick else 100)
    ws = G.z_to_w(G.z_from_seed(seed), truncation_psi=psi)
    r = drag_pictures(G, ws, handles, targets, out, settings=settings)
    reached = "every handle reached its target" if r["steps"] < settings.max_steps else (
        f"the step budget ({settings.max_steps}) ran out first")
    text = (f"{DEFAULT_STYLE_MODEL}, seed {seed}, &psi; {psi}: handle {handles[0]} dragged "
            f"towards {targets[0]} (red: handle, blue: target). The mean handle-target distance "
            f"went from {r['initial']:.1f} px to {r['final']:.1f} px in {r['steps']} steps "
            f"({r['seconds']:.1f} s, {1000 * r['seconds'] / max(r['steps'], 1):.0f} ms per step); "
            f"{reached}.")
    return ("<h2>Dragging points (DragGAN)</h2><p>" + text + " The same edit runs from "
            "<code>ganprior drag</code> and in the studio (<code>ganprior serve</code>); "
            "docs/drag.md.</p>"
            + _img(r["before_after"], out, "start | result", width=2 * 256)
            + _img(r["animation"], out, "every step", width=256))


PIX2PIXHD_MODEL = "pix2pixhd-scenes128"
HELD_OUT_SCENES = 3_000_000  # scene seed never used for training (`data scenes --seed 0`)


def synthesis_pictures(model, n: int = 6, clusters: int = 6, size: int = 128):
    """(grid of rows label | synthesis | real render for `n` held-out procedural scenes, strip
    of the first scene's label map then its synthesis with every thing class that has
    clusters given cluster 0, 1, ... (the class's last one where it has fewer)) as uint8."""
    from .data import scenes
    from .synthesis import synthesize_scene

    def maps(i):
        sc = scenes.scene(HELD_OUT_SCENES, i, size)
        return sc, torch.from_numpy(sc.label.astype(np.int64)), torch.from_numpy(
            sc.inst.astype(np.int64))

    rows = []
    for i in range(n):
        sc, label, inst = maps(i)
        rows += [scenes.colourise(sc.label), to_uint8(synthesize_scene(model, label, inst)[0])[0],
                 sc.image]
    sc, label, inst = maps(0)
    n_of = {t: model.clusters.n(model.class_id(t)) if model.clusters else 0
            for t in model.info.get("things") or []}
    n_of = {t: k for t, k in n_of.items() if k}
    strip = [scenes.colourise(sc.label)] + [
        to_uint8(synthesize_scene(model, label, inst,
                                  clusters={t: min(k, m - 1) for t, m in n_of.items()})[0])[0]
        for k in range(clusters if n_of else 1)]
    return grid(np.stack(rows), cols=3), grid(np.stack(strip), cols=len(strip))


def section_synthesis(out: Path, device, quick: bool = False) -> str:
    """The embedded pix2pixHD: label maps of held-out scenes to images, and feature clusters."""
    if PIX2PIXHD_MODEL not in zoo_entries() or zoo_entries()[PIX2PIXHD_MODEL].availability() != "ok":
        return ""
    from .synthesis import load_pix2pixhd
    model = load_pix2pixhd(PIX2PIXHD_MODEL, device)
    if model.feat_num and model.clusters is None:
        return (f"<h2>Label maps to images (pix2pixHD)</h2><p>{PIX2PIXHD_MODEL} has no feature "
                "clusters file (run <code>ganprior encode-features</code>): skipped.</p>")
    t0 = time.perf_counter()
    n = 2 if quick else 6
    samples, strip = synthesis_pictures(model, n=n)
    seconds = time.perf_counter() - t0
    return ("<h2>Label maps to images (pix2pixHD)</h2><p>" + html.escape(
        f"{PIX2PIXHD_MODEL} on {n} procedural scenes it was not trained on (scene seed "
        f"{HELD_OUT_SCENES}); {seconds:.1f} s for these pictures.")
        + " The same runs from <code>ganprior synth</code> and in the studio's Paint tab; "
        f"docs/zoo/{PIX2PIXHD_MODEL}.md.</p>"
        + _img(save_image(samples, out / "synth_samples.png"), out,
               "label map | synthesis (every instance's cluster 0) | the real render",
               width=3 * 192)
        + _img(save_image(strip, out / "synth_clusters.png"), out,
               "the same label map with each thing class (buildings, trees, cars) given feature "
               "cluster 0, 1, ...: the instance features choose each object's look",
               width=strip.shape[1]))


SECTIONS = [section_models, section_generate, section_inversion, section_restoration,
            section_editing, section_drag, section_synthesis]

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
figure{display:inline-block;margin:8px}figcaption{font-size:90%;color:#555}"""


def run_demo(out: Path, device=torch.device("cpu"), quick: bool = False) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    body = [section(out, device, quick) for section in SECTIONS]
    footer = (f"<hr><p>Generated {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()} "
              f"({device}, torch {torch.__version__}, {torch.get_num_threads()} threads) in "
              f"{time.time() - t0:.1f} s.</p>")
    page = (f"<!doctype html><meta charset=utf-8><title>ganprior demo</title><style>{_STYLE}"
            f"</style><h1>ganprior demo</h1>" + "\n".join(body) + footer)
    return atomic_write_text(out / "index.html", page)
