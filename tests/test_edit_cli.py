"""`ganprior edit` and `ganprior directions` end to end on real files."""
import json

import numpy as np
import pytest
import torch
from conftest import run_cli as run, small_stylegan2
from PIL import Image
from safetensors.torch import load_file

from ganprior.checkpoints import load_networks, save_native
from ganprior.editing.directions import (Direction, load_direction, save_direction,
                                         shipped_directions)
from ganprior.images import to_uint8




def cells(path, steps, size):
    """The frames of a strip.png (grid with 2 px padding), [steps, size, size, 3]."""
    strip = np.asarray(Image.open(path))
    assert strip.shape == (size + 4, steps * (size + 2) + 2, 3)
    return np.stack([strip[2:2 + size, 2 + i * (size + 2): 2 + i * (size + 2) + size]
                     for i in range(steps)])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit")
    G = small_stylegan2(res=16)
    save_native(root / "sg2", G)
    return G, root / "sg2.safetensors", root


@pytest.fixture(scope="module")
def tiny_sefa(tiny):
    G, model, root = tiny
    run("directions", "sefa", "--model", model, "--k", "3", "--out", root / "sefa",
        "--device", "cpu")
    return root / "sefa"


@pytest.mark.parametrize("model,space", [("stylegan2-digiface64", "w"),
                                         ("dcgan-digiface64", "z")])
def test_shipped_brightness_edit_brightens_monotonically(model, space, tmp_path):
    out = tmp_path / "e"
    run("edit", "--model", model, "--seed", 3, "--direction", "brightness", "--strength", 3,
        "--steps", 5, "--out", out, "--device", "cpu")
    rec = json.loads((out / "edit.json").read_text())
    assert rec["attribute"] == "brightness" and rec["strengths"] == [-3, -1.5, 0, 1.5, 3]
    assert rec["direction_meta"]["space"] == space and rec["direction_meta"]["n"] == 4000
    b = rec["scores"]["brightness"]
    assert all(x < y for x, y in zip(b, b[1:])), b
    assert b[-1] - b[0] > 0.1  # at least a tenth of the pixel range brighter
    G = load_networks(model, torch.device("cpu"))["G"]
    with torch.no_grad():
        original = to_uint8(G.synthesize(G.z_to_w(G.z_from_seed(3))))[0]
    frames = cells(out / "strip.png", 5, 64)
    np.testing.assert_array_equal(frames[2], original)  # the centre frame is the original
    lat = load_file(str(out / "latents.safetensors"))
    d = load_direction(shipped_directions(G)["brightness"], G)
    key = "w" if space == "w" else "z"
    step = lat[key][4] - lat[key][2]
    torch.testing.assert_close(step, 3.0 * d.vector.expand_as(step), rtol=0, atol=1e-5)


def test_directions_list_names_the_shipped_ones():
    r = run("directions", "list", "--model", "stylegan2-digiface64", "--device", "cpu")
    for name in ("brightness", "warmth", "asymmetry", "contrast", "sefa0"):
        assert name in r.output


def test_directions_sefa_writes_orthonormal_directions_and_previews(tiny, tiny_sefa):
    G, _, _ = tiny
    V = torch.stack([load_direction(tiny_sefa / f"sefa{i}", G).vector for i in range(3)])
    torch.testing.assert_close(V @ V.T, torch.eye(3), atol=1e-5, rtol=0)
    meta = json.loads((tiny_sefa / "sefa1.json").read_text())
    assert meta["method"] == "sefa" and meta["index"] == 1 and "--k 3" in meta["made_with"]["command"]
    assert Image.open(tiny_sefa / "sefa.png").size == (5 * 18 + 2, 3 * 18 + 2)
    r = run("directions", "list", "--model", tiny[1], "--device", "cpu")
    assert "no shipped directions" in r.output


def test_directions_train_recovers_the_scored_direction(tiny, tmp_path):
    G, model, _ = tiny
    run("generate", "--model", model, "--seeds", "0-599", "--out", tmp_path / "g",
        "--device", "cpu")
    lat = load_file(str(tmp_path / "g" / "latents.safetensors"))
    v = torch.nn.functional.normalize(torch.randn(G.w_dim, generator=torch.Generator()
                                                  .manual_seed(0)), dim=0)
    scores = (lat["ws"][:, 0] - lat["ws"][:, 0].mean(0)) @ v
    lines = ["seed,score"] + [f"{i},{s:.6f}" for i, s in enumerate(scores.tolist())]
    (tmp_path / "scores.csv").write_text("\n".join(lines) + "\n")
    r = run("directions", "train", "--model", model, "--latents", tmp_path / "g" /
            "latents.safetensors", "--scores", tmp_path / "scores.csv", "--ratio", "0.25",
            "--attribute", "synthetic", "--out", tmp_path / "d" / "syn.json", "--device", "cpu")
    assert "accuracy" in r.output
    d = load_direction(tmp_path / "d" / "syn", G)
    assert float(d.vector @ v) > 0.9
    meta = json.loads((tmp_path / "d" / "syn.json").read_text())
    assert meta["attribute"] == "synthetic" and meta["accuracy"] > 0.9 and meta["n"] == 600


def test_edit_a_generated_latent_by_index_and_with_a_condition(tiny, tiny_sefa, tmp_path):
    G, model, _ = tiny
    run("generate", "--model", model, "--seeds", "4-6", "--out", tmp_path / "g",
        "--device", "cpu")
    # a condition correlated with the primal: c = (d0 + d1) / sqrt(2), so projecting it out
    # of d0 leaves (d0 - d1) / sqrt(2) by hand (d0, d1 are orthonormal SeFa directions)
    d0, d1 = (load_direction(tiny_sefa / f"sefa{k}", G) for k in (0, 1))
    both = Direction((d0.vector + d1.vector) / 2 ** 0.5, "w", G.num_ws)
    save_direction(tmp_path / "both", both, G)
    out = tmp_path / "e"
    run("edit", "--model", model, "--latent", tmp_path / "g" / "latents.safetensors",
        "--index", 2, "--direction", tiny_sefa / "sefa0.json", "--condition",
        tmp_path / "both.json", "--steps", 3, "--out", out, "--device", "cpu")
    frames = cells(out / "strip.png", 3, 16)
    np.testing.assert_array_equal(frames[1], np.asarray(Image.open(tmp_path / "g" /
                                                                   "seed0006.png")))
    rec = json.loads((out / "edit.json").read_text())
    assert rec["conditions"] == [str(tmp_path / "both.json")] and rec["source"]["index"] == 2
    w = load_file(str(out / "latents.safetensors"))["w"]
    want = 3.0 * (d0.vector - d1.vector) / 2 ** 0.5
    torch.testing.assert_close(w[2] - w[1], want.expand_as(w[1]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", ["w+", "mganprior"])
def test_edit_an_inversion_result(method, tiny, tiny_sefa, tmp_path):
    G, model, _ = tiny
    with torch.no_grad():
        target = to_uint8(G.synthesize(G.z_to_w(G.z_from_seed(9))))[0]
    Image.fromarray(target).save(tmp_path / "photo.png")
    extra = ["--codes", "2"] if method == "mganprior" else []
    run("invert", tmp_path / "photo.png", "--model", model, "--method", method, "--steps", 2,
        *extra, "--out", tmp_path / "inv", "--device", "cpu")
    out = tmp_path / "e"
    run("edit", "--model", model, "--result", tmp_path / "inv" / "photo", "--direction",
        tiny_sefa / "sefa0", "--steps", 3, "--out", out, "--device", "cpu")
    frames = cells(out / "strip.png", 3, 16)
    np.testing.assert_array_equal(frames[1], np.asarray(Image.open(tmp_path / "inv" /
                                                                   "photo.png")))
    saved = load_file(str(tmp_path / "inv" / "photo.safetensors"))
    lat = load_file(str(out / "latents.safetensors"))
    d = load_direction(tiny_sefa / "sefa0", G).vector
    key = "codes" if method == "mganprior" else "w"
    torch.testing.assert_close(lat[key][2] - saved[key], 3.0 * d.expand_as(saved[key]),
                               atol=1e-4, rtol=0)
    if method == "mganprior":
        assert torch.equal(lat["alpha"][0], saved["alpha"]) and torch.equal(lat["alpha"][2],
                                                                          saved["alpha"])
    # the same file through --latent STEM.safetensors
    run("edit", "--model", model, "--latent", tmp_path / "inv" / "photo.safetensors",
        "--direction", tiny_sefa / "sefa0", "--steps", 3, "--out", tmp_path / "e2",
        "--device", "cpu")
    assert (tmp_path / "e2" / "strip.png").read_bytes() == (out / "strip.png").read_bytes()


def test_edit_a_tuned_result_uses_the_tuned_generator(tiny, tiny_sefa, tmp_path):
    from ganprior.inversion.files import invert_files
    from ganprior.inversion.methods import make_method
    G, model, _ = tiny
    with torch.no_grad():
        target = to_uint8(G.synthesize(G.z_to_w(G.z_from_seed(9))))[0]
    Image.fromarray(target).save(tmp_path / "photo.png")
    invert_files(G, [tmp_path / "photo.png"], tmp_path / "inv", lambda: make_method("w+"),
                 steps=2, loss="mse", tune={"kind": "pti", "steps": 3}, progress=False)
    out = tmp_path / "e"
    run("edit", "--model", model, "--result", tmp_path / "inv" / "photo", "--direction",
        tiny_sefa / "sefa0", "--steps", 3, "--out", out, "--device", "cpu")
    assert json.loads((out / "edit.json").read_text())["source"]["tuned"] is True
    centre = cells(out / "strip.png", 3, 16)[1]
    np.testing.assert_array_equal(centre, np.asarray(Image.open(tmp_path / "inv" / "photo.png")))
    w = load_file(str(tmp_path / "inv" / "photo.safetensors"))["w"][None]
    with torch.no_grad():
        untuned = to_uint8(G.synthesize(w.expand(-1, G.num_ws, -1)))[0]
    assert np.abs(centre.astype(int) - untuned).max() > 0  # the base generator draws otherwise


def test_edit_a_truncated_dcgan_latent_keeps_its_truncation(tmp_path):
    run("generate", "--model", "dcgan-digiface64", "--seeds", "5", "--trunc", "0.7", "--out",
        tmp_path / "g", "--device", "cpu")
    run("edit", "--model", "dcgan-digiface64", "--latent", tmp_path / "g" / "latents.safetensors",
        "--direction", "warmth", "--steps", 3, "--out", tmp_path / "e", "--device", "cpu")
    np.testing.assert_array_equal(cells(tmp_path / "e" / "strip.png", 3, 64)[1],
                                  np.asarray(Image.open(tmp_path / "g" / "seed0005.png")))
