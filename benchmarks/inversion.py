"""mGANprior's Table 1 on our embedded models: single code vs encoder vs hybrid vs multi-code.

    ganprior train-encoder --model dcgan-digiface64 --steps 1500 --out out/bench/encoder-dcgan
    python benchmarks/inversion.py --encoder out/bench/encoder-dcgan

Two target sets at the model's resolution:
- in-domain: images the generator made from held-out seeds 1000.. (a perfect inversion exists);
- out-of-domain: real photos from scikit-image (astronaut face and full, chelsea, coffee,
  camera, rocket), centre-cropped and resized.
Every optimising method gets the same number of steps, Adam, lr 0.03, plain MSE (the loss of
the reference figures of the official code; no perceptual weights exist here). Reports mean PSNR /
SSIM per set and seconds per image; writes the image grids to docs/benchmarks/ and the table
into BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from report import write_section  # noqa: E402  (benchmarks/report.py)

from ganprior.checkpoints import load_generator  # noqa: E402
from ganprior.images import grid, load_image, save_image, to_uint8  # noqa: E402
from ganprior.inversion import invert, make_method  # noqa: E402


def real_photos(resolution: int) -> tuple[list[str], torch.Tensor]:
    from skimage import data
    crops = {"astronaut_face": data.astronaut()[0:220, 120:340], "astronaut": data.astronaut(),
             "chelsea": data.chelsea(), "coffee": data.coffee(), "camera": data.camera(),
             "rocket": data.rocket()}
    names, imgs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, arr in crops.items():
            path = Path(tmp) / f"{name}.png"
            Image.fromarray(arr).save(path)
            imgs.append(load_image(path, resolution))  # same loader as the CLI
            names.append(name)
    return names, torch.cat(imgs)


def in_domain(G, n: int) -> tuple[list[str], torch.Tensor]:
    seeds = list(range(1000, 1000 + n))
    with torch.no_grad():
        z = torch.cat([G.z_from_seed(s) for s in seeds])
        imgs = G.synthesize(G.z_to_w(z))
    # quantise like a saved PNG, so both sets are 8-bit targets
    imgs = torch.from_numpy(to_uint8(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return [f"seed{s}" for s in seeds], imgs


def run(G, methods, targets, steps, lr):
    rows, pictures = {}, {}
    for label, make in methods:
        res = invert(G, targets, make(), steps=steps, lr=lr, loss="mse", seed=0)
        rows[label] = dict(psnr=float(np.mean(res.psnr)), ssim=float(np.mean(res.ssim)),
                           seconds=res.seconds / len(targets), psnr_each=res.psnr)
        pictures[label] = to_uint8(res.images)
        print(f"  {label:28s} psnr {rows[label]['psnr']:6.2f}  ssim {rows[label]['ssim']:.3f}  "
              f"{rows[label]['seconds']:.2f} s/img", flush=True)
    return rows, pictures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="dcgan-digiface64")
    ap.add_argument("--encoder", help="encoder file stem (default: out/bench/encoder-dcgan for "
                    "dcgan-digiface64, else out/bench/encoder-MODEL)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--codes", type=int, default=20)
    ap.add_argument("--layer", default="b16")
    ap.add_argument("--n-in-domain", type=int, default=6)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    G = load_generator(args.model)
    if args.encoder is None:
        short = "dcgan" if args.model == "dcgan-digiface64" else args.model
        args.encoder = str(ROOT / "out" / "bench" / f"encoder-{short}")
    methods = [("(a) single z", lambda: make_method("z"))]
    has_encoder = Path(args.encoder + ".safetensors").exists()
    if has_encoder:
        methods += [("(b) encoder", lambda: make_method("encoder", encoder=args.encoder)),
                    ("(c) hybrid (encoder + opt.)", lambda: make_method("hybrid", encoder=args.encoder))]
    else:
        print(f"no encoder at {args.encoder}: rows (b), (c) skipped", file=sys.stderr)
    methods.append((f"(d) mGANprior N={args.codes} @{args.layer}",
                    lambda: make_method("mganprior", codes=args.codes, layer=args.layer)))
    if "w" in G.latent_spaces:
        methods += [("w", lambda: make_method("w")), ("w+", lambda: make_method("w+")),
                    ("PadInv (opt.)", lambda: make_method("padinv"))]

    sets = {"in-domain": in_domain(G, args.n_in_domain), "real photos": real_photos(G.img_resolution)}
    results, figures = {}, []
    out_dir = ROOT / "docs" / "benchmarks"
    for set_name, (names, targets) in sets.items():
        print(f"{set_name}: {len(names)} images", flush=True)
        rows, pictures = run(G, methods, targets, args.steps, args.lr)
        results[set_name] = rows
        # grid: first row targets, then one row per method
        cells = [to_uint8(targets)] + [pictures[m] for m, _ in methods]
        picture = grid(np.concatenate(cells), cols=len(names))
        path = save_image(picture, out_dir / f"inversion_{args.model}_{set_name.replace(' ', '_')}.png")
        figures.append((set_name, path))
    table = render(results, methods, args, figures, has_encoder)
    print(table)
    if not args.no_write:
        key = "inversion" if args.model == "dcgan-digiface64" else f"inversion-{args.model}"
        write_section(key, f"GAN inversion on `{args.model}` (`benchmarks/inversion.py`)", table)


def render(results, methods, args, figures, has_encoder):
    when = datetime.date.today().isoformat()
    command = "python benchmarks/inversion.py"
    if args.model != "dcgan-digiface64":
        command += f" --model {args.model}"
    encoder = ""
    if has_encoder:
        command += f" --encoder {os.path.relpath(args.encoder, ROOT)}"
        encoder = (f" Encoder rows: `{os.path.relpath(args.encoder, ROOT)}`, trained by "
                   f"`ganprior train-encoder --model {args.model} --steps 1500`.")
    lines = [f"Measured {when} on {os.cpu_count()} CPU cores, torch {torch.__version__}, 2 threads. "
             f"Model `{args.model}`; {args.steps} Adam steps (lr {args.lr}) for every optimising "
             "method, plain MSE loss, all images of a set in one batch, image i starting from "
             f"seed i (each image is optimised independently).{encoder} Command: `{command}`.", "",
             "| method | in-domain PSNR | in-domain SSIM | real photos PSNR | real photos SSIM | s / image |",
             "|---|---|---|---|---|---|"]
    for label, _ in methods:
        a, b = results["in-domain"][label], results["real photos"][label]
        lines.append(f"| {label} | {a['psnr']:.2f} | {a['ssim']:.3f} | {b['psnr']:.2f} | "
                     f"{b['ssim']:.3f} | {(a['seconds'] + b['seconds']) / 2:.2f} |")
    lines.append("")
    for set_name, path in figures:
        lines.append(f"![{set_name}]({path.relative_to(ROOT).as_posix()}) "
                     f"({set_name}: top row targets, then one row per method in table order)")
        lines.append("")
    if not has_encoder:
        lines.append(f"Rows (b) encoder and (c) hybrid need an encoder for this model: "
                     f"`ganprior train-encoder --model {args.model} --steps 1500 --out "
                     f"{os.path.relpath(args.encoder, ROOT)}` before the benchmark.")
    return "\n".join(lines)

if __name__ == "__main__":
    main()
