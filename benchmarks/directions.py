"""How much each shipped attribute direction moves its own attribute vs the others.

    python benchmarks/directions.py [--n 200] [--strength 3] [--models stylegan2-digiface64,...]

For every shipped InterFaceGAN direction of the zoo models (made from seeds 0-3999), on `n`
held-out seeds (1,000,000 on): the change of every attribute between the edits at -strength
and +strength, halved (= the move of an edit of `strength` from the original, to first
order), in units of that attribute's std over the held-out originals. "plain" is the shipped
direction; "conditional" has the other three attributes' directions projected out
(InterFaceGAN's conditional manipulation). "leak" = mean |other moves| / |own move|: lower is
more disentangled. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from report import write_section  # noqa: E402  (benchmarks/report.py)

from ganprior.checkpoints import load_networks  # noqa: E402
from ganprior.editing.attributes import ATTRIBUTES, score_all  # noqa: E402
from ganprior.editing.directions import (apply_direction, conditional, load_direction,  # noqa: E402
                                         shipped_directions)
from ganprior.generate import seeds_to_ws  # noqa: E402
from ganprior.inversion.methods import make_method  # noqa: E402

HELD_OUT = 1_000_000


@torch.no_grad()
def scores_of(G, method, name, params, d=None, strength=0.0, batch=50):
    p = params if d is None else apply_direction(name, params, d, strength)
    key = next(iter(p))
    out = {k: [] for k in ATTRIBUTES}
    for i in range(0, p[key].shape[0], batch):
        chunk = {k: v[i:i + batch] for k, v in p.items()}
        for k, s in score_all(method.render(G, chunk)).items():
            out[k].append(s)
    return {k: torch.cat(v) for k, v in out.items()}


def moves(G, method, name, params, d, strength, std):
    up = scores_of(G, method, name, params, d, strength)
    down = scores_of(G, method, name, params, d, -strength)
    return {k: float((up[k] - down[k]).mean() / 2 / std[k]) for k in ATTRIBUTES}


def rows_for(model: str, n: int, strength: float) -> list[str]:
    G = load_networks(model, torch.device("cpu"))["G"]
    shipped = shipped_directions(G)
    dirs = {a: load_direction(shipped[a], G) for a in ATTRIBUTES if a in shipped}
    z, ws = seeds_to_ws(G, list(range(HELD_OUT, HELD_OUT + n)))
    space = next(iter(dirs.values())).space
    name, params = ("z", {"z": z}) if space == "z" else ("w+", {"w": ws})
    method = make_method(name)
    std = {k: float(v.std()) for k, v in scores_of(G, method, name, params).items()}
    rows = []
    for attr, d in dirs.items():
        variants = {"plain": d,
                    "conditional": conditional(d, [o for a, o in dirs.items() if a != attr])}
        for variant, direction in variants.items():
            m = moves(G, method, name, params, direction, strength, std)
            others = [abs(m[k]) for k in ATTRIBUTES if k != attr]
            leak = sum(others) / len(others) / max(abs(m[attr]), 1e-9)
            cells = " | ".join(f"**{m[k]:+.2f}**" if k == attr else f"{m[k]:+.2f}"
                               for k in ATTRIBUTES)
            rows.append(f"| {model} ({space}) | {attr} | {variant} | {cells} | {leak:.2f} |")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="held-out seeds")
    ap.add_argument("--strength", type=float, default=3.0, help="edit strength")
    ap.add_argument("--models", default="stylegan2-digiface64,dcgan-digiface64")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    header = " | ".join(ATTRIBUTES)
    lines = [f"Attribute moves (std units) of an edit of strength {args.strength:g}, "
             f"{args.n} held-out seeds:", "",
             f"| model (space) | direction | variant | {header} | leak |",
             "|" + "---|" * (len(ATTRIBUTES) + 4)]
    for model in args.models.split(","):
        lines += rows_for(model, args.n, args.strength)
    lines += ["", f"({time.time() - t0:.0f} s; command: python benchmarks/directions.py "
              f"--n {args.n} --strength {args.strength:g})"]
    print("\n".join(lines))
    write_section("directions", "Semantic directions: own attribute vs the others (issue 13)",
                  f"{datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores, torch "
                  f"{torch.__version__}. Leak = mean |move of the other attributes| / |own move|; "
                  "conditional = the other attributes' directions projected out.\n\n"
                  + "\n".join(lines))


if __name__ == "__main__":
    main()
