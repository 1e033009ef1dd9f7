"""Hostile inputs of `ganprior drag`: each gives exactly one `error:` line, exit 1 (2 for
usage errors), no traceback, unchanged inputs and nothing written (test_hostile.py's harness,
run in-process)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import small_stylegan2
from PIL import Image
from safetensors.torch import save_file
from test_hostile import Case, check_refused_in_process

from ganprior.checkpoints import save_native


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_drag")
    G = small_stylegan2(res=16)
    save_native(root / "tiny", G)
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(root / "free.png")
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(root / "small.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "fixed.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(root / "photo.png")
    save_file({"ws": torch.zeros(2, 3, G.w_dim)}, str(root / "wrong_ws.safetensors"))
    save_file({"ws": torch.zeros(1, G.num_ws, G.w_dim)}, str(root / "one.safetensors"))
    return dict(root=root, model=root / "tiny.safetensors")


M = ["--model", "{model}", "--device", "cpu"]
DRAG = ["drag", *M, "--seed", "0", "--out", "{out}"]
NO_SOURCE = ["drag", *M, "--points", "4,4>8,8", "--out", "{out}"]
OK = ["--points", "4,4>8,8"]

CASES = [
    Case("point-outside", [*DRAG, "--points", "4,4>16,8"], r"target 1 \(16, 8\) is outside "
                                                           r"the 16x16 image"),
    Case("handle-negative", [*DRAG, "--points", "-1,4>8,8"], r"handle 1 \(-1, 4\) is outside"),
    Case("points-malformed", [*DRAG, "--points", "4,4>8"], r"--points: pair 1 '4,4>8' is not "
                                                           r"'x,y>x,y'"),
    Case("points-words", [*DRAG, "--points", "here>there"], r"pair 1 'here>there' is not"),
    Case("points-second-bad", [*DRAG, "--points", "4,4>8,8 ; 1,2"], r"pair 2 '1,2' is not"),
    Case("points-empty", [*DRAG, "--points", " "], r"--points is empty"),
    Case("points-nan", [*DRAG, "--points", "nan,4>8,8"], r"pair 1 'nan,4>8,8' is not finite"),
    Case("points-missing", DRAG, r"Missing option '--points'", status=2),
    Case("mask-wrong-size", [*DRAG, *OK, "--mask", "{root}/small.png"],
         r"--mask .*small.png is 8x8; the model draws 16x16"),
    Case("handle-in-fixed-area", [*DRAG, *OK, "--mask", "{root}/fixed.png"],
         r"handle 1 \(4, 4\) is in the fixed area"),
    Case("mask-broken", [*DRAG, *OK, "--mask", "{root}/broken.png"], r"broken.png"),
    Case("mask-missing", [*DRAG, *OK, "--mask", "{root}/gone.png"], r"gone.png"),
    Case("tracking-unknown", [*DRAG, *OK, "--tracking", "kcf"], r"unknown tracking 'kcf'"),
    Case("space-unknown", [*DRAG, *OK, "--space", "z"], r"unknown space 'z'"),
    Case("layer-unknown", [*DRAG, *OK, "--layer", "b5"], r"unknown layer 'b5'"),
    Case("lr-zero", [*DRAG, *OK, "--lr", "0"], r"--lr must be > 0"),
    Case("lambda-negative", [*DRAG, *OK, "--lambda", "-1"], r"--lambda must be >= 0"),
    Case("lambda-nan", [*DRAG, *OK, "--lambda", "nan"], r"--lambda must be a finite number"),
    Case("steps-negative", [*DRAG, *OK, "--steps", "-3"], r"--steps must be an integer"),
    Case("animation-unknown", [*DRAG, *OK, "--animation", "avi"], r"--animation must be gif"),
    Case("sources-none", NO_SOURCE, r"give exactly one of --seed, --latent, --image$"),
    Case("sources-two", [*NO_SOURCE, "--seed", "1", "--image", "{root}/photo.png"],
         r"\(got --seed, --image\)"),
    Case("latent-wrong-shape", [*NO_SOURCE, "--latent", "{root}/wrong_ws.safetensors"],
         r"wrong_ws.safetensors"),
    Case("latent-index", [*NO_SOURCE, "--latent", "{root}/one.safetensors", "--index", "1"],
         r"--index 1 out of range"),
    Case("tune-without-image", [*DRAG, *OK, "--tune"], r"--tune applies to --image"),
    Case("image-broken", [*NO_SOURCE, "--image", "{root}/broken.png"], r"broken.png"),
    Case("out-is-a-file", [*DRAG[:-1], "{root}/free.png", *OK], r"is an existing file"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_drag(case, fx, tmp_path):
    out = tmp_path / "out"
    check_refused_in_process(case, fx, out)
