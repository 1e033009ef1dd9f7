"""The embedded models: listed, loadable, documented, and the defaults of W-space commands."""
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganprior.checkpoints import load_generator, zoo_entries
from ganprior.checkpoints.zoo import DEFAULT_STYLE_MODEL, ZOO_DIR, default_model
from ganprior.cli import app
from ganprior.generate import generate


def test_stylegan2_model_is_shipped_with_its_provenance():
    entry = zoo_entries()[DEFAULT_STYLE_MODEL]
    assert (entry.arch, entry.resolution, entry.latent_spaces) == ("stylegan2", 64, ("z", "w", "w+"))
    prov = json.loads((ZOO_DIR / f"{DEFAULT_STYLE_MODEL}.json").read_text())["provenance"]
    for key in ("command", "kimg", "training_seconds", "hardware", "quality"):
        assert prov[key], key
    q = prov["quality"]
    assert len(q["c2st_seeds"]) == 5 and abs(q["c2st_mean"] - np.mean(q["c2st_seeds"])) < 1e-9
    # the figures README and docs/zoo quote (0.81 over five seeds; real vs real 0.51)
    assert q["c2st_mean"] == pytest.approx(0.813, abs=5e-4)
    assert q["c2st_floor_real_vs_real"] == pytest.approx(0.514, abs=5e-4)
    assert "ganprior train stylegan2" in prov["command"]


def test_stylegan2_model_ships_its_discriminator():
    from ganprior.checkpoints import load_networks
    nets = load_networks(DEFAULT_STYLE_MODEL)
    with torch.no_grad():
        img = nets["G"](torch.randn(2, nets["G"].z_dim), None, noise_mode="const")
        assert nets["D"](img, None).shape == (2, 1)


def test_stylegan2_model_generates_varied_reproducible_faces():
    G = load_generator(DEFAULT_STYLE_MODEL)
    assert G.num_ws == 10 and G.img_resolution == 64
    a, _, ws = generate(G, [0, 1, 2, 3])
    b, _, _ = generate(G, [0, 1, 2, 3])
    assert np.array_equal(a, b) and a.shape == (4, 64, 64, 3)
    assert np.abs(a[0].astype(int) - a[1].astype(int)).mean() > 5  # different seeds differ
    assert torch.isfinite(ws).all()


def test_w_space_commands_default_to_the_stylegan2_model(tmp_path):
    assert default_model(needs_w=True) == DEFAULT_STYLE_MODEL
    assert default_model() == "dcgan-digiface64"
    r = CliRunner().invoke(app, ["mix", "--rows", "1", "--cols", "2", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "mix.png").exists() and (tmp_path / "1-2.png").exists()
