"""Hostile inputs of the restoration commands (colorize, super-resolve, inpaint, denoise): one
`error:` line each, non-zero exit, nothing written, inputs unchanged (harness: test_hostile)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_hostile import M, Case, env, fx  # noqa: F401  (fixtures used by the harness)
from test_hostile import test_hostile_cli as check_case

SR = ["super-resolve", "{good}", *M, "--steps", "1", "--out", "{out}"]
INP = ["inpaint", "{good}", *M, "--steps", "1", "--out", "{out}"]
COL = ["colorize", "{good}", *M, "--steps", "1", "--out", "{out}"]
DEN = ["denoise", "{good}", *M, "--steps", "1", "--out", "{out}"]

CASES = [
    Case("sr-factor-not-dividing", [*SR, "--factor", "3"], r"factor 3 does not divide"),
    Case("sr-factor-zero", [*SR, "--factor", "0"], r"--factor must be an integer from 1"),
    Case("sr-factor-huge", [*SR, "--factor", "99999"], r"--factor must be an integer"),
    Case("sr-bad-downsample", [*SR, "--downsample", "nearest"], r"area or bicubic"),
    Case("sr-wrong-baseline", [*SR, "--method", "biharmonic"], r"not a super-resolve baseline"),
    Case("inpaint-no-mask", INP, r"exactly one of --mask, --center-crop, --random"),
    Case("inpaint-two-masks", [*INP, "--center-crop", "4", "--random", "0.5"],
         r"exactly one of .*got --center-crop, --random"),
    Case("inpaint-mask-wrong-size", [*INP, "--mask", "{root}/mask8.png"], r"8x8|16x16"),
    Case("inpaint-mask-missing", [*INP, "--mask", "{root}/nomask.png"], r"not found"),
    Case("inpaint-mask-not-image", [*INP, "--mask", "{img}/notimage.png"], r"cannot read image"),
    Case("inpaint-mask-all-known", [*INP, "--mask", "{root}/maskwhite.png"], r"missing|known"),
    Case("inpaint-crop-too-big", [*INP, "--center-crop", "40"], r"center|square|size|40"),
    Case("inpaint-random-nan", [*INP, "--random", "nan"], r"finite|fraction|nan"),
    Case("inpaint-random-one", [*INP, "--random", "1.5"], r"fraction|1.5"),
    Case("colorize-unknown-method", [*COL, "--method", "magic"], r"unknown --method 'magic'"),
    Case("colorize-tune-baseline", [*COL, "--method", "gray", "--tune", "pti"],
         r"--tune needs a GAN-prior --method"),
    Case("colorize-bad-tune", [*COL, "--tune", "fast"], r"--tune must be none, pti or dgp"),
    Case("denoise-bad-noise", [*DEN, "--noise", "pink"], r"gaussian or sp"),
    Case("denoise-sigma-nan", [*DEN, "--noise", "gaussian", "--sigma", "nan"], r"--sigma"),
    Case("denoise-sigma-negative", [*DEN, "--noise", "gaussian", "--sigma", "-1"], r"--sigma"),
    Case("denoise-out-is-input-folder", ["denoise", "{folder}", *M, "--out", "{folder}"],
         r"holds input images"),
    Case("restore-corrupt-model", [*COL[:2], "--model", "{ck}/random.pkl", "--out", "{out}"],
         r"pkl"),
]


@pytest.fixture(scope="module", autouse=True)
def masks(fx):  # noqa: F811
    root = fx["root"]
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(root / "mask8.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(root / "maskwhite.png")
    fx.setdefault("root", root)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_restore(case, fx, env, tmp_path, request):  # noqa: F811
    check_case(case, fx, env, tmp_path, request)
