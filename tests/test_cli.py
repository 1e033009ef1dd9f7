"""The `ganprior` commands end to end on real files."""
import json

import numpy as np
import pytest
import torch
from conftest import run_cli as run, small_stylegan2
from nvidia_pickle import write_nvidia_pickle
from PIL import Image

from ganprior.checkpoints import save_native




@pytest.fixture
def sg2_file(tmp_path):
    G = small_stylegan2(c_dim=0)
    save_native(tmp_path / "sg2", G)
    return G, tmp_path / "sg2.safetensors"


def test_models_lists_the_zoo():
    r = run("models")
    assert "dcgan-digiface64" in r.output and "ok" in r.output


def test_generate_dcgan_files_and_seed_convention(tmp_path):
    out = tmp_path / "gen"
    run("generate", "--model", "dcgan-digiface64", "--seeds", "0-2,7", "--out", out, "--device", "cpu")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["generate.json", "grid.png", "latents.safetensors", "seed0000.png",
                     "seed0001.png", "seed0002.png", "seed0007.png"]
    rec = json.loads((out / "generate.json").read_text())
    assert rec["seeds"] == [0, 1, 2, 7]
    np.testing.assert_allclose(rec["z"][3], np.random.RandomState(7).randn(100), rtol=1e-6)
    img = np.asarray(Image.open(out / "seed0007.png"))
    assert img.shape == (64, 64, 3) and img.std() > 10


def test_generate_png_equals_nvidia_quantisation(tmp_path, sg2_file):
    """PNG == (G(z_seed) * 127.5 + 128).clamp(0, 255).to(uint8), as NVIDIA's generate.py writes."""
    G, path = sg2_file
    run("generate", "--model", path, "--seeds", "5", "--trunc", "0.7", "--out", tmp_path / "o")
    z = torch.from_numpy(np.random.RandomState(5).randn(1, G.z_dim))
    with torch.no_grad():
        img = G(z, None, truncation_psi=0.7, noise_mode="const")
    expected = (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o" / "seed0005.png")), expected)


def test_generate_from_nvidia_pickle_with_class(tmp_path):
    G = small_stylegan2(c_dim=3)
    write_nvidia_pickle(tmp_path / "net.pkl", G_ema=G)
    run("generate", "--model", tmp_path / "net.pkl", "--seeds", "0-1", "--class", "2",
        "--out", tmp_path / "o")
    assert (tmp_path / "o" / "seed0001.png").exists()
    r = run("generate", "--model", tmp_path / "net.pkl", "--seeds", "0", "--class", "3",
            "--out", tmp_path / "o2", ok=False)
    assert r.exit_code == 1 and "out of range" in r.output


def test_mix_grid(tmp_path, sg2_file):
    G, path = sg2_file
    run("mix", "--model", path, "--rows", "1,2", "--cols", "3,4", "--layers", "0-3", "--out", tmp_path / "m")
    grid = np.asarray(Image.open(tmp_path / "m" / "mix.png"))
    r = G.img_resolution
    from ganprior.plots import label_height  # labelled: column labels on top, row labels left
    assert grid.shape[0] == 3 * (r + 2) + 2 + label_height() and grid.shape[1] > 3 * (r + 2) + 2
    a = np.asarray(Image.open(tmp_path / "m" / "1-3.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "m" / "1-4.png")).astype(int)
    assert np.abs(a - b).mean() > 1  # different column sources give different images


def test_mix_errors(tmp_path, sg2_file):
    _, path = sg2_file
    r = run("mix", "--model", path, "--rows", "1", "--cols", "2", "--layers", "0-99",
            "--out", tmp_path / "m", ok=False)
    assert r.exit_code == 1 and "out of range" in r.output
    r = run("mix", "--model", "dcgan-digiface64", "--rows", "1", "--cols", "2",
            "--out", tmp_path / "m", ok=False)
    assert r.exit_code == 1 and "W+" in r.output


def test_convert_pkl_to_native_and_rosinality(tmp_path):
    from conftest import rosinality_shaped_stylegan2
    G = rosinality_shaped_stylegan2()
    write_nvidia_pickle(tmp_path / "a.pkl", G_ema=G)
    run("convert", tmp_path / "a.pkl", tmp_path / "b.safetensors")
    assert (tmp_path / "b.json").exists()
    run("convert", tmp_path / "b.safetensors", tmp_path / "c.pt")
    r = run("info", tmp_path / "c.pt")
    assert "stylegan2" in r.output and "w+" in r.output


@pytest.mark.parametrize("args,msg", [
    (["generate", "--model", "no-such-model", "--seeds", "0"], "no such file"),
    (["generate", "--seeds", "3-1"], "end before start"),
    (["generate", "--seeds", "abc"], "bad --seeds 'abc'"),
    (["generate", "--noise-mode", "loud", "--model", "SG2"], "--noise-mode must be"),
    (["generate", "--device", "cuda:7", "--seeds", "0"], "not available" if not torch.cuda.is_available() else "device"),
])
def test_bad_input_is_one_line_and_exit_1(tmp_path, sg2_file, args, msg):
    args = [str(sg2_file[1]) if a == "SG2" else a for a in args]
    r = run(*args, "--out", tmp_path / "x", ok=False)
    assert r.exit_code == 1
    assert msg in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_demo_report(tmp_path):
    run("demo", "--out", tmp_path / "demo", "--device", "cpu", "--quick")
    page = (tmp_path / "demo" / "index.html").read_text()
    assert "dcgan-digiface64_seeds0-31.png" in page
    img = np.asarray(Image.open(tmp_path / "demo" / "dcgan-digiface64_seeds0-31.png"))
    assert img.shape == (4 * 66 + 2, 8 * 66 + 2, 3)
    # inversion: 2 targets x 4 methods on the DCGAN, and on the StyleGAN2 model when shipped
    from ganprior.checkpoints.zoo import DEFAULT_STYLE_MODEL, zoo_entries
    tables = 2 if DEFAULT_STYLE_MODEL in zoo_entries() else 1
    inversion = page[page.index("GAN inversion"):page.index("Restoration with")]
    assert inversion.count(" dB, ") == 8 * tables
    # restoration: 4 tasks x 2 targets x (baseline, fixed G, tuned G), each scored
    restoration = page[page.index("Restoration with"):page.index("Semantic editing")]
    assert restoration.count(" dB, ") == 24
    assert (tmp_path / "demo" / "restore" / "inpaint" / "2" / "target1_tuned.safetensors").exists()
    assert (tmp_path / "demo" / "edit_stylegan2-digiface64.png").exists()
    assert (tmp_path / "demo" / "invert_dcgan-digiface64_1_3.png").exists()
    # drag: the before/after and the animation, and a sentence made of the run's own numbers
    drag = page[page.index("Dragging points"):]
    assert (tmp_path / "demo" / "drag_before_after.png").exists()
    frames = Image.open(tmp_path / "demo" / "drag.gif")
    assert frames.n_frames > 1
    import re
    m = re.search(r"went from ([\d.]+) px to ([\d.]+) px in (\d+) steps", drag)
    assert m and int(m.group(3)) == 10 and float(m.group(1)) == pytest.approx(7.2, abs=0.05)
    assert "the step budget (10) ran out first" in drag
