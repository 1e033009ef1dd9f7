"""A pix2pixHD model among the latent generators: the zoo lists it with its trained size and
"label map" as its input, `info` describes it, and the latent commands refuse it in one line."""
import shutil

import pytest
import torch
from conftest import run_cli
from test_synth import tiny_run
from test_train_pix2pixhd import write_pairs

from ganprior.checkpoints import zoo
from ganprior.train.pix2pixhd import latest_snapshot


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    root = write_pairs(tmp_path_factory.mktemp("p2pzoo") / "data", n=4)
    return latest_snapshot(tiny_run(root))


@pytest.fixture
def in_zoo(snapshot, tmp_path, monkeypatch):
    for f in ("stylegan2-digiface64.json", "stylegan2-digiface64.safetensors"):
        shutil.copy(zoo.ZOO_DIR / f, tmp_path / f)
    shutil.copy(snapshot, tmp_path / "tiny-p2p.safetensors")
    shutil.copy(snapshot.with_suffix(".json"), tmp_path / "tiny-p2p.json")
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    return "tiny-p2p"


def test_the_zoo_lists_a_label_to_image_model(in_zoo, snapshot):
    e = zoo.zoo_entries()[in_zoo]
    assert e.arch.startswith("pix2pixhd") and e.latent_spaces == ("label map",)
    assert e.resolution == 16  # the size write_pairs draws
    assert zoo.zoo_entries()["stylegan2-digiface64"].latent_spaces == ("z", "w", "w+")
    out = run_cli("models").stdout
    assert "tiny-p2p" in out and "label map" in out


def test_info_describes_it(in_zoo):
    out = run_cli("info", in_zoo).stdout
    assert "trained at 16x16 px" in out and "label map of" in out
    assert "G " in out and "D " in out and "zoo" in out


@pytest.mark.parametrize("argv", [["generate", "--seeds", "0"], ["invert", "IMG"],
                                  ["edit", "--seed", "0", "--direction", "x"]])
def test_latent_commands_refuse_it_in_one_line(snapshot, tmp_path, argv):
    img = tmp_path / "a.png"
    from PIL import Image
    Image.new("RGB", (16, 16)).save(img)
    argv = [str(img) if a == "IMG" else a for a in argv]
    r = run_cli(*argv, "--model", snapshot, "--out", tmp_path / "o", ok=False)
    assert r.exit_code == 1, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "label-to-image" in lines[-1]
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()
