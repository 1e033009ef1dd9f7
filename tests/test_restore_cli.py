"""The restoration commands end to end on a small generator (in-domain targets it made), through
the one folder runner: each restores its degraded input towards the clean image, keeps what
was observed, resumes, tunes without touching the model file, and reloads exactly."""
import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import run_cli, small_stylegan2
from PIL import Image

from ganprior.checkpoints import load_networks, save_native
from ganprior.images import to_uint8
from ganprior.inversion.results import load_result
from ganprior.metrics import psnr
from ganprior.restore.degrade import luminance

RES = 32


def invoke(*args, code=0):
    r = run_cli(*args, ok=code == 0)
    assert r.exit_code == code, r.output
    return r


def as_tensor(path) -> torch.Tensor:
    a = np.array(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1
    return torch.from_numpy(a).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("restore")
    G, D = small_stylegan2(res=RES, with_d=True)
    save_native(root / "g", G, D=D)
    nets = load_networks(root / "g.safetensors")
    with torch.no_grad():
        z = torch.randn(2, nets["G"].z_dim, generator=torch.Generator().manual_seed(5))
        imgs = to_uint8(nets["G"](z))
    (root / "in").mkdir()
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(root / "in" / f"img{i}.png")
    return root, root / "g.safetensors"


TASKS = {
    "colorize": ["colorize"],
    "sr": ["super-resolve", "--factor", "8"],
    "center": ["inpaint", "--center-crop", "24"],
    "random": ["inpaint", "--random", "0.7"],
    "denoise": ["denoise", "--noise", "gaussian", "--sigma", "0.2"],
}


@pytest.fixture(scope="module")
def in_domain(tmp_path_factory):
    """Two images of the embedded StyleGAN2 model (a real prior: a tiny random generator
    cannot tell colours from gray or detail from noise)."""
    root = tmp_path_factory.mktemp("in_domain")
    invoke("generate", "--model", "stylegan2-digiface64", "--seeds", "2000,2001", "--out", root)
    return sorted(root.glob("seed*.png"))


@pytest.mark.parametrize("task", TASKS)
def test_restored_is_closer_to_the_clean_image_than_the_input(task, in_domain, tmp_path):
    args = TASKS[task] + ([] if task == "denoise" else ["--simulate"])
    steps = 100 if task == "sr" else 40  # x8: 8 px observations need more steps to converge
    invoke(*args, *in_domain, "--model", "stylegan2-digiface64", "--method", "w", "--steps",
           steps, "--loss", "mse", "--batch", 2, "--out", tmp_path)
    gains = []
    for path in in_domain:
        clean = as_tensor(path)
        out = as_tensor(tmp_path / path.name)
        observed = as_tensor(tmp_path / f"{path.stem}_observed.png")
        if observed.shape[-1] != clean.shape[-1]:  # low-res observation: compare it enlarged
            observed = torch.nn.functional.interpolate(observed, size=clean.shape[-1],
                                                       mode="nearest")
        gains.append((psnr((out + 1) / 2, (clean + 1) / 2)
                      - psnr((observed + 1) / 2, (clean + 1) / 2)).item())
        rec = json.loads((tmp_path / f"{path.stem}.json").read_text())
        assert rec["task"] == TASKS[task][0] and rec["scored_against"] == "clean"
        # the JSON's PSNR is the written image's (up to 8-bit rounding)
        assert abs(rec["psnr"] - psnr((out + 1) / 2, (clean + 1) / 2).item()) < 0.3
    assert np.mean(gains) > 1.0, f"{task}: {gains} dB"


def test_observed_parts_are_kept_and_can_be_dropped(setup, tmp_path):
    root, model = setup
    base = ["--model", model, "--method", "w", "--steps", 3, "--simulate"]
    invoke("colorize", root / "in" / "img0.png", *base, "--out", tmp_path / "c")
    clean, out = as_tensor(root / "in" / "img0.png"), as_tensor(tmp_path / "c" / "img0.png")
    assert (luminance(out) - luminance(clean)).abs().max() < 4 / 255  # 8-bit rounding of Y
    invoke("colorize", root / "in" / "img0.png", *base, "--no-keep-observed",
           "--out", tmp_path / "c2")
    raw = as_tensor(tmp_path / "c2" / "img0.png")
    assert (luminance(raw) - luminance(clean)).abs().max() > 0.05  # the generator's own Y
    invoke("inpaint", "--center-crop", 12, root / "in" / "img0.png", *base, "--out",
           tmp_path / "i")
    out = as_tensor(tmp_path / "i" / "img0.png")
    known = torch.ones(RES, RES, dtype=torch.bool)
    known[10:22, 10:22] = False
    assert torch.equal(out[..., known], clean[..., known])
    assert not torch.equal(out[..., ~known], clean[..., ~known])


def test_baseline_runs_through_the_same_runner(setup, tmp_path):
    root, model = setup
    invoke("super-resolve", "--factor", 4, root / "in" / "img0.png", "--model", model,
           "--method", "bicubic", "--simulate", "--out", tmp_path)
    rec = json.loads((tmp_path / "img0.json").read_text())
    assert rec["method"] == "bicubic" and rec["baseline"] == "bicubic"
    assert not (tmp_path / "img0.safetensors").exists()  # no latents
    assert (tmp_path / "img0_compare.png").exists()


def test_rerun_skips_and_a_changed_task_is_refused(setup, tmp_path):
    root, model = setup
    args = ["inpaint", root / "in" / "img0.png", "--model", model, "--method", "w",
            "--steps", 2, "--out", tmp_path]
    invoke(*args, "--center-crop", 8)
    r = invoke(*args, "--center-crop", 8)
    assert "skipped 1 already done" in r.output
    r = invoke(*args, "--center-crop", 10, code=1)
    assert "made differently" in r.output and "task_options" in r.output


def test_tuning_writes_a_delta_that_reloads_exactly(setup, tmp_path):
    root, model = setup
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    invoke("super-resolve", "--factor", 2, "--simulate", root / "in" / "img1.png", "--model",
           model, "--method", "w+", "--steps", 10, "--loss", "mse", "--tune", "pti",
           "--tune-steps", 15, "--out", tmp_path)
    assert hashlib.sha256(model.read_bytes()).hexdigest() == digest  # model file untouched
    rec = json.loads((tmp_path / "img1.json").read_text())
    assert rec["tune"] == "pti" and "before_tuning" in rec
    assert (tmp_path / "img1_tuned.safetensors").exists()
    G = load_networks(model)["G"]
    r = load_result(tmp_path / "img1", G)
    assert r.G is not G
    again = torch.from_numpy(to_uint8(r.render())[0]).permute(2, 0, 1)[None].float()
    saved = torch.from_numpy(np.array(Image.open(tmp_path / "img1.png"))).permute(2, 0, 1)[None]
    assert torch.equal(again, saved.float())  # super-resolution keeps nothing observed
