"""`ganprior drag` end to end on a tiny model: every output, its record, and the three sources
(seed, latent file, photo with PTI tuning)."""
import json

import numpy as np
import pytest
import torch
from conftest import run_cli, small_stylegan2
from PIL import Image
from safetensors.torch import load_file

from ganprior.checkpoints import save_native


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("drag_cli")
    save_native(root / "tiny", small_stylegan2(res=16))
    return root


def test_drag_a_seed_writes_every_output(tiny, tmp_path):
    mask = np.full((16, 16), 255, np.uint8)
    mask[:, 12:] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out"
    r = run_cli("drag", "--model", tiny / "tiny.safetensors", "--seed", "1", "--points",
                "4,5>8,5 ; 6,10>6,7", "--mask", tmp_path / "mask.png", "--steps", "3",
                "--tracking", "robust", "--out", out)
    assert "results in" in r.output
    for name in ("start.png", "final.png", "before_after.png", "drag.gif", "drag.json",
                 "latents.safetensors"):
        assert (out / name).is_file(), name
    rec = json.loads((out / "drag.json").read_text())
    assert rec["handles"] == [[4, 5], [6, 10]] and rec["targets"] == [[8, 5], [6, 7]]
    assert [h["step"] for h in rec["history"]] == [0, 1, 2, 3] and rec["steps"] == 3
    assert rec["initial_mean_distance"] == pytest.approx(3.5)
    assert rec["settings"]["tracking"] == "robust" and rec["settings"]["layer"] == "b8"
    assert rec["settings"]["r1"] == 3 and rec["settings"]["d"] == 1
    assert rec["final_mean_distance"] == pytest.approx(np.mean(rec["history"][-1]["distances"]))
    ws = load_file(str(out / "latents.safetensors"))
    assert ws["ws"].shape == ws["ws_start"].shape and not torch.equal(ws["ws"], ws["ws_start"])
    with Image.open(out / "drag.gif") as gif:
        assert gif.n_frames == 4
    assert Image.open(out / "start.png").size == (16, 16)


def test_drag_continues_from_its_own_latent(tiny, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    run_cli("drag", "--model", tiny / "tiny.safetensors", "--seed", "2", "--points", "4,4>9,4",
            "--steps", "2", "--out", first)
    run_cli("drag", "--model", tiny / "tiny.safetensors", "--latent",
            first / "latents.safetensors", "--points", "4,4>9,4", "--steps", "1",
            "--space", "w", "--animation", "webp", "--out", second)
    a = np.asarray(Image.open(first / "final.png"))
    b = np.asarray(Image.open(second / "start.png"))
    assert np.array_equal(a, b)  # the second drag starts where the first ended
    assert (second / "drag.webp").is_file()


def test_drag_a_photo_with_pti_tuning(tiny, tmp_path):
    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 255, (20, 24, 3), np.uint8)).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    run_cli("drag", "--model", tiny / "tiny.safetensors", "--image", tmp_path / "photo.png",
            "--invert-steps", "2", "--tune", "--tune-steps", "2", "--points", "4,4>7,4",
            "--steps", "1", "--out", out)
    rec = json.loads((out / "drag.json").read_text())
    assert rec["source"]["method"] == "w+" and rec["source"]["tuned"] is True
    assert (out / "tuned.safetensors").is_file()
