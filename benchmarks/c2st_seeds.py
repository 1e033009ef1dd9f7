"""How much a snapshot's C2ST moves with the seed: re-measure training snapshots on fresh seeds.

    python benchmarks/c2st_seeds.py --data out/sg2/faces.zip --run out/sg2/run --kimg 170 180 190

The trainer logs one C2ST per snapshot (seed 0 for both the samples and the classifier). This
repeats the same test (`metrics.c2st.generator_c2st`: the last 500 images of the dataset, which
training never sees, against 500 G_ema samples, psi 1, const noise) over several seeds, so a
single figure can be read with its spread. Needs the run folder, so it is a maintainer's check, not part of `make bench`.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from report import write_section  # noqa: E402  (benchmarks/report.py)

from ganprior.checkpoints import load_generator  # noqa: E402
from ganprior.data.images import ImageDataset  # noqa: E402
from ganprior.metrics.c2st import generator_c2st  # noqa: E402
from ganprior.train.stylegan2 import holdout_images  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the run's training set")
    ap.add_argument("--run", type=Path, required=True, help="the run folder (snapshots)")
    ap.add_argument("--kimg", type=int, nargs="+", required=True, help="snapshots to measure")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = ap.parse_args()
    torch.set_num_threads(2)

    snapshots = {k: load_generator(args.run / f"network-snapshot-{k:06d}.safetensors")
                 for k in args.kimg}
    real = holdout_images(ImageDataset(args.data, snapshots[args.kimg[0]].img_resolution))
    rows = ["| kimg | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean | sd |",
            "|---" * (len(args.seeds) + 3) + "|"]
    for kimg in args.kimg:
        accs = [generator_c2st(snapshots[kimg], real, seed) for seed in args.seeds]
        rows.append(f"| {kimg} | " + " | ".join(f"{a:.3f}" for a in accs)
                    + f" | **{statistics.mean(accs):.3f}** | {statistics.pstdev(accs):.3f} |")
        print(rows[-1], flush=True)

    head = (f"Measured {datetime.date.today()}: {len(real)} held-out images against as many "
            f"samples, classifier 300 steps, images compared as saved 8-bit files; 0.5 = "
            f"indistinguishable. Command: `python benchmarks/c2st_seeds.py --data {args.data} "
            f"--run {args.run} --kimg {' '.join(map(str, args.kimg))} --seeds "
            f"{' '.join(map(str, args.seeds))}`.\n\n")
    write_section("c2st-seeds", "C2ST spread across seeds", head + "\n".join(rows))


if __name__ == "__main__":
    main()
