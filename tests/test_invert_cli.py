"""`ganprior invert` on folders: outputs, resume after a kill, torchrun sharding, metrics CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_stylegan2
from PIL import Image
from typer.testing import CliRunner

from ganprior.checkpoints import save_native
from ganprior.cli import app
from ganprior.images import to_uint8
from ganprior.metrics import psnr

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("inv")
    G = small_stylegan2(res=32)
    save_native(root / "g", G)
    with torch.no_grad():
        imgs = to_uint8(G(torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(9))))
    (root / "in").mkdir()
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(root / "in" / f"img{i}.png")
    (root / "in" / "notes.txt").write_text("not an image, ignored")
    return root, root / "g.safetensors"


def copy_inputs(root, folder, n=2, prefix="img"):
    """The first n test images in a new folder, as PREFIX0.png ..."""
    folder.mkdir()
    for i in range(n):
        (folder / f"{prefix}{i}.png").write_bytes((root / "in" / f"img{i}.png").read_bytes())
    return folder


def invoke(*args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output + repr(r.exception)
    return r


def test_outputs_and_json(setup, tmp_path):
    root, model = setup
    invoke("invert", root / "in" / "img0.png", root / "in" / "img1.png", "--model", model,
           "--method", "w+", "--steps", 30, "--loss", "mse", "--out", tmp_path)
    rec = json.loads((tmp_path / "img0.json").read_text())
    for key in ("method", "steps", "seconds", "loss", "psnr", "ssim", "history"):
        assert key in rec
    assert rec["method"] == "w+" and rec["steps"] == 30 and len(rec["history"]) == 30
    # the JSON's PSNR is the PSNR of the written reconstruction (up to 8-bit quantisation)
    load = lambda p: torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1)[None] / 255.0  # noqa: E731
    measured = psnr(load(tmp_path / "img0.png"), load(root / "in" / "img0.png")).item()
    assert measured == pytest.approx(rec["psnr"], abs=0.3)
    assert Image.open(tmp_path / "img0_compare.png").size == (2 * 34 + 2, 34 + 2)
    from safetensors.torch import load_file
    assert load_file(tmp_path / "img0.safetensors")["w"].shape == (8, 24)  # num_ws = 2*log2(32) - 2
    assert json.loads((tmp_path / "summary.json").read_text())["images"] == 2


def test_resume_skips_finished_and_redoes_unfinished(setup, tmp_path):
    root, model = setup
    args = ("invert", root / "in", "--model", model, "--method", "z", "--steps", 5,
            "--loss", "mse", "--out", tmp_path)
    invoke(*args)
    done_before = (tmp_path / "img1.json").stat().st_mtime_ns
    # a kill after the PNG but before the JSON: that image must be redone
    (tmp_path / "img2.json").unlink()
    r = invoke(*args)
    assert "img2.png" in r.output and "img1.png" not in r.output
    assert (tmp_path / "img1.json").stat().st_mtime_ns == done_before
    assert (tmp_path / "img2.json").exists()


def test_torchrun_shards_across_two_processes(setup, tmp_path):
    root, model = setup
    torchrun = Path(sys.executable).parent / "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29517",
                        "-m", "ganprior.cli", "invert", str(root / "in"), "--model", str(model),
                        "--method", "z", "--steps", "5", "--loss", "mse", "--device", "cpu",
                        "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = {json.loads((tmp_path / f"img{i}.json").read_text())["rank"] for i in range(4)}
    assert ranks == {0, 1}
    assert json.loads((tmp_path / "summary.json").read_text())["images"] == 4


def test_bad_inputs(setup, tmp_path):
    root, model = setup
    (tmp_path / "broken.png").write_bytes(b"garbage")
    for args, msg in [((tmp_path / "broken.png",), "cannot read image"),
                      ((tmp_path / "missing.png",), "no such file"),
                      ((root / "in" / "img0.png", "--method", "nope"), "unknown method"),
                      ((root / "in" / "img0.png", "--loss", "mse+x"), "unknown loss term")]:
        r = runner.invoke(app, ["invert", *map(str, args), "--model", str(model), "--steps", "1",
                                "--out", str(tmp_path / "o")])
        assert r.exit_code == 1 and msg in r.output, r.output


def test_metrics_cli(setup):
    root, _ = setup
    r = invoke("metrics", root / "in", root / "in", "--json")
    rows = json.loads(r.output)
    assert len(rows) == 4 and rows[0]["ssim"] == pytest.approx(1.0)


def test_weights_list_and_verify(tmp_path, monkeypatch):
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path))
    r = invoke("weights", "list")
    assert "vgg16" in r.output and "missing" in r.output
    (tmp_path / "vgg16-397923af.pth").write_bytes(b"corrupt")
    r = runner.invoke(app, ["weights", "verify"])
    assert r.exit_code == 1 and "hash mismatch" in r.output


def test_analyze_layers(setup, tmp_path):
    import xml.etree.ElementTree as ET
    root, model = setup
    invoke("analyze-layers", root / "in" / "img0.png", "--model", model, "--steps", 3,
           "--codes", "1,2", "--fixed-codes", 2, "--out", tmp_path)
    res = json.loads((tmp_path / "analysis.json").read_text())
    assert [r["layer"] for r in res["by_layer"]] == ["b4", "b8", "b16"]
    assert [r["codes"] for r in res["by_codes"]] == [1, 2]
    for svg in ("analysis.svg", "analysis_codes.svg"):
        assert ET.parse(tmp_path / svg).getroot().tag.endswith("svg")
    assert "| codes | b8 | 2 |" in (tmp_path / "analysis.md").read_text()
    from ganprior.plots import label_height  # targets + 5 runs, file names on top
    assert Image.open(tmp_path / "grid.png").size[1] == 6 * 34 + 2 + label_height()


def test_out_may_not_be_or_overwrite_an_input(setup, tmp_path):
    root, model = setup
    photos = copy_inputs(root, tmp_path / "photos", prefix="p")
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    (tmp_path / "link").symlink_to(photos)  # the same folder under another name
    cases = [(photos, photos, "holds input images"),
             (photos / "p0.png", photos, "holds input images"),
             (photos / "p0.png", tmp_path / "link", "holds input images"),
             (photos / "p0.png", photos / "p1.png", "existing file")]
    for inputs, out, msg in cases:
        r = runner.invoke(app, ["invert", str(inputs), "--model", str(model),
                                "--method", "z", "--steps", "1", "--out", str(out)])
        assert r.exit_code == 1 and msg in r.output, r.output
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before


def test_rerun_skips_only_what_matches(setup, tmp_path):
    root, model = setup
    base = ("invert", root / "in" / "img0.png", root / "in" / "img1.png", "--model", model,
            "--method", "z", "--loss", "mse", "--out", tmp_path)
    invoke(*base, "--steps", 3)
    first = json.loads((tmp_path / "img1.json").read_text())
    assert first["seed"] == 1 and first["made_from"]["settings"]["steps"] == 3
    assert len(first["made_from"]["input_sha256"]) == 64
    r = invoke(*base, "--steps", 3)
    assert "skipped 2 already done" in r.output
    r = runner.invoke(app, [str(a) for a in base] + ["--steps", "4"])
    assert r.exit_code == 1 and "made differently" in r.output and "steps 3 -> 4" in r.output
    assert json.loads((tmp_path / "img1.json").read_text()) == first  # nothing was redone
    r = invoke(*base, "--steps", 4, "--force")
    assert json.loads((tmp_path / "img1.json").read_text())["steps"] == 4
    # the same name with other pixels is another input
    changed = tmp_path.parent / f"{tmp_path.name}-in"
    changed.mkdir()
    (changed / "img0.png").write_bytes((root / "in" / "img2.png").read_bytes())
    r = runner.invoke(app, ["invert", str(changed / "img0.png"), "--model", str(model),
                            "--method", "z", "--loss", "mse", "--steps", "4", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "the input image changed" in r.output


def test_seeds_follow_the_input_list_not_the_batch(setup, tmp_path):
    root, model = setup
    common = ("--model", model, "--method", "mganprior", "--codes", 2, "--steps", 3,
              "--loss", "mse")
    invoke("invert", root / "in", *common, "--batch", 3, "--out", tmp_path / "b3")
    invoke("invert", root / "in" / "img2.png", *common, "--seed", 2, "--out", tmp_path / "b1")
    batched = json.loads((tmp_path / "b3" / "img2.json").read_text())
    alone = json.loads((tmp_path / "b1" / "img2.json").read_text())
    assert batched["seed"] == alone["seed"] == 2
    assert batched["psnr"] == pytest.approx(alone["psnr"], abs=1e-3)


def test_a_bad_file_in_a_folder_does_not_stop_the_others(setup, tmp_path):
    root, model = setup
    folder = copy_inputs(root, tmp_path / "in")
    (folder / "broken.png").write_bytes(b"not a png")
    r = runner.invoke(app, ["invert", str(folder), "--model", str(model), "--method", "z",
                            "--steps", "1", "--loss", "mse", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert "error: 1 of 3 inputs failed: broken.png" in r.output
    assert (tmp_path / "o" / "img0.json").exists() and (tmp_path / "o" / "img1.json").exists()
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["images"] == 2 and summary["failed"][0]["input"].endswith("broken.png")


def test_metrics_cli_measures_the_good_pairs_and_lists_the_bad(setup, tmp_path):
    root, _ = setup
    for side in ("a", "b"):
        copy_inputs(root, tmp_path / side)
    (tmp_path / "b" / "img1.png").write_bytes(b"broken")
    r = runner.invoke(app, ["metrics", str(tmp_path / "a"), str(tmp_path / "b"), "--json"])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    rows = json.loads(lines[0])
    assert [row["name"] for row in rows] == ["img0.png"] and rows[0]["ssim"] == pytest.approx(1.0)
    assert lines[-1].startswith("error: 1 of 2 pairs failed: img1.png")
