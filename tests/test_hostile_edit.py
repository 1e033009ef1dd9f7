"""Hostile inputs of `ganprior edit` and `ganprior directions`: each gives exactly one `error:`
line, a non-zero exit, no traceback, unchanged inputs and nothing written (test_hostile.py's
harness, run in-process)."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import small_stylegan2
from safetensors.torch import save_file
from test_hostile import Case, check_refused_in_process

from ganprior.checkpoints import save_native
from ganprior.editing.directions import save_direction, sefa


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_edit")
    G = small_stylegan2(res=16)
    save_native(root / "tiny", G)
    d = sefa(G, k=1)[0]
    save_direction(root / "dir", d, G)
    other = small_stylegan2(res=16, seed=1)
    save_direction(root / "other", sefa(other, k=1)[0], other)
    save_direction(root / "corrupt", d, G)
    (root / "corrupt.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    save_direction(root / "badjson", d, G)
    (root / "badjson.json").write_text("{not json")
    save_direction(root / "notdir", d, G)
    (root / "notdir.json").write_text('{"format": "something-else"}')
    save_file({"z": torch.zeros(3, G.z_dim), "ws": torch.zeros(3, G.num_ws, G.w_dim)},
              str(root / "good_latents.safetensors"))
    save_file({"z": torch.zeros(2, 5), "ws": torch.zeros(2, G.num_ws, G.w_dim)},
              str(root / "wrong_z.safetensors"))
    save_file({"z": torch.zeros(2, G.z_dim), "ws": torch.zeros(2, 3, G.w_dim)},
              str(root / "wrong_ws.safetensors"))
    save_file({"z": torch.full((1, G.z_dim), float("nan")), "ws": torch.zeros(1, G.num_ws,
                                                                          G.w_dim)},
              str(root / "nan_latents.safetensors"))
    (root / "notst.safetensors").write_bytes(b"not a safetensors file")
    save_direction(root / "badattr", d, G)
    meta = json.loads((root / "badattr.json").read_text())
    (root / "badattr.json").write_text(json.dumps(dict(meta, attribute=[1])))
    save_direction(root / "layered", sefa(G, k=1, layers=[0, 1])[0], G)
    (root / "scores_short.csv").write_text("1\n2\n")
    (root / "scores_text.csv").write_text("score\n1\nabc\n3\n")
    return dict(root=root, model=root / "tiny.safetensors")


M = ["--model", "{model}", "--device", "cpu"]
EDIT = ["edit", *M, "--seed", "0", "--direction", "{root}/dir.json", "--out", "{out}"]
EDIT_NO_SOURCE = ["edit", *M, "--direction", "{root}/dir.json", "--out", "{out}"]
LAT = "{root}/good_latents.safetensors"
TRAIN = ["directions", "train", *M, "--latents", LAT, "--out", "{out}/d.json"]

CASES = [
    Case("strength-nan", [*EDIT, "--strength", "nan"], r"--strength must be a finite number"),
    Case("strength-inf", [*EDIT, "--strength", "inf"], r"--strength must be a finite number"),
    Case("strength-huge", [*EDIT, "--strength", "1e9"], r"--strength must be <= 30"),
    Case("strength-zero", [*EDIT, "--strength", "0"], r"--strength must be > 0"),
    Case("steps-zero", [*EDIT, "--steps", "0"], r"--steps must be an integer from 3 to 41"),
    Case("steps-huge", [*EDIT, "--steps", "1000000000"], r"--steps must be an integer from 3"),
    Case("steps-even", [*EDIT, "--steps", "4"], r"--steps must be odd"),
    Case("direction-unknown", [*EDIT[:-4], "--direction", "nosuch", "--out", "{out}"],
         r"unknown direction 'nosuch'; this model ships: none"),
    Case("direction-other-model", [*EDIT[:-4], "--direction", "{root}/other.json", "--out",
                                   "{out}"], r"made for another model"),
    Case("direction-corrupt", [*EDIT[:-4], "--direction", "{root}/corrupt.json", "--out",
                               "{out}"], r"corrupt.safetensors is not a readable safetensors"),
    Case("direction-bad-json", [*EDIT[:-4], "--direction", "{root}/badjson.json", "--out",
                                "{out}"], r"badjson.json is not a readable direction file"),
    Case("direction-not-a-direction", [*EDIT[:-4], "--direction", "{root}/notdir", "--out",
                                       "{out}"], r"not a ganprior direction file"),
    Case("direction-missing-file", [*EDIT[:-4], "--direction", "{root}/gone.json", "--out",
                                    "{out}"], r"gone.safetensors not found"),
    Case("condition-is-the-direction", [*EDIT, "--condition", "{root}/dir.json"],
         r"lies in the span of its conditions"),
    Case("latent-wrong-z", [*EDIT_NO_SOURCE, "--latent", "{root}/wrong_z.safetensors"],
         r"z must be \[N, 16\] floats, got \[2, 5\]"),
    Case("latent-wrong-ws", [*EDIT_NO_SOURCE, "--latent", "{root}/wrong_ws.safetensors"],
         r"ws must be \[N, \d+, 24\] floats, got \[2, 3, 24\]"),
    Case("latent-nan", [*EDIT_NO_SOURCE, "--latent", "{root}/nan_latents.safetensors"],
         r"z holds NaN or infinite values"),
    Case("latent-not-safetensors", [*EDIT_NO_SOURCE, "--latent", "{root}/notst.safetensors"],
         r"notst.safetensors is not a readable safetensors file"),
    Case("latent-missing", [*EDIT_NO_SOURCE, "--latent", "{root}/gone.safetensors"],
         r"--latent .*gone.safetensors not found"),
    Case("index-out-of-range", [*EDIT_NO_SOURCE, "--latent", LAT, "--index", "3"],
         r"--index 3 out of range: .* holds 3 latents \(0..2\)"),
    Case("index-negative", [*EDIT_NO_SOURCE, "--latent", LAT, "--index", "-1"],
         r"--index must be an integer from 0"),
    Case("result-missing", [*EDIT_NO_SOURCE, "--result", "{root}/nothere"],
         r"nothere.json not found"),
    Case("sources-none", EDIT_NO_SOURCE, r"give exactly one of --seed, --latent, --result$"),
    Case("sources-two", [*EDIT, "--latent", LAT], r"give exactly one of .*\(got --seed, "
                                                  r"--latent\)"),
    Case("sources-three", [*EDIT, "--latent", LAT, "--result", "{root}/x"],
         r"got --seed, --latent, --result"),
    Case("seed-negative", [*EDIT_NO_SOURCE, "--seed", "-5"], r"--seed must be an integer"),
    Case("out-is-a-file", [*EDIT[:-1], "{root}/dir.json"], r"is an existing file"),
    Case("train-scores-count", [*TRAIN, "--scores", "{root}/scores_short.csv"],
         r"has 2 scores for 3 latents"),
    Case("train-scores-text", [*TRAIN, "--scores", "{root}/scores_text.csv"],
         r"line 3: 'abc' is not a number"),
    Case("train-scores-missing", [*TRAIN, "--scores", "{root}/gone.csv"], r"gone.csv not found"),
    Case("train-bad-space", [*TRAIN, "--scores", "{root}/scores_short.csv", "--space", "q"],
         r"--space must be z, w or w\+"),
    Case("train-bad-ratio", [*TRAIN, "--scores", "{root}/scores_short.csv", "--ratio", "0.9"],
         r"--ratio must be <= 0.5"),
    Case("sefa-k-zero", ["directions", "sefa", *M, "--k", "0", "--out", "{out}"],
         r"--k must be an integer from 1 to 64"),
    Case("sefa-layers-out-of-range", ["directions", "sefa", *M, "--layers", "99", "--out",
                                      "{out}"], r"layers \[99\] out of range"),
    Case("attributes-too-few", ["directions", "attributes", *M, "--n", "10", "--out", "{out}"],
         r"--n must be an integer from 50"),
    Case("attributes-too-few-at-ratio", ["directions", "attributes", *M, "--n", "100",
                                         "--out", "{out}"], r"100 latents at ratio 0.02 give 2"),
    Case("direction-attribute-not-text", [*EDIT[:-4], "--direction", "{root}/badattr.json",
                                          "--out", "{out}"], r"attribute must be a string"),
    Case("condition-other-layers", [*EDIT, "--condition", "{root}/layered.json"],
         r"condition moving layers \[0, 1\] cannot condition a direction moving layers all"),
    Case("attributes-bad-method", ["directions", "attributes", *M, "--n", "100", "--method",
                                   "tree", "--out", "{out}"], r"--method must be svm or logistic"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_edit(case, fx, tmp_path):
    out = tmp_path / "out"
    check_refused_in_process(case, fx, out)
