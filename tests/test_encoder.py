"""Encoder baseline and hybrid inversion; encoder training resumes exactly."""
import pytest
import torch
from conftest import small_stylegan2

from ganprior.errors import CheckpointError
from ganprior.inversion import invert, make_method
from ganprior.train.encoder import load_encoder, train_encoder


@pytest.fixture(scope="module")
def sg2():
    return small_stylegan2(res=32)


def test_training_reduces_loss_and_resume_is_exact(sg2, tmp_path):
    info = train_encoder(sg2, tmp_path / "a", steps=30, batch=4, save_every=15, progress=False)
    E, cfg = load_encoder(tmp_path / "a")
    assert cfg["training"]["steps"] == 30 and E.latent_shape == (sg2.num_ws, sg2.w_dim)
    hist = torch.load(tmp_path / "a.ckpt.pt", weights_only=True)["history"]
    first, last = sum(h[2] for h in hist[:5]), sum(h[2] for h in hist[-5:])
    assert last < first, "reconstruction loss should fall"
    assert info["final_recon_mse"] is not None

    # an interrupted run (killed after 6 steps) continued to 10 == an uninterrupted 10
    train_encoder(sg2, tmp_path / "b", steps=6, batch=2, save_every=3, progress=False)
    train_encoder(sg2, tmp_path / "b", steps=10, batch=2, save_every=3, progress=False)
    train_encoder(sg2, tmp_path / "c", steps=10, batch=2, save_every=3, progress=False)
    eb, ec = load_encoder(tmp_path / "b")[0], load_encoder(tmp_path / "c")[0]
    for (k, v), w in zip(eb.state_dict().items(), ec.state_dict().values()):
        torch.testing.assert_close(v, w, msg=k)


def test_encoder_and_hybrid_methods(sg2, tmp_path):
    train_encoder(sg2, tmp_path / "e", steps=20, batch=4, progress=False)
    with torch.no_grad():
        target = sg2.synthesize(sg2.z_to_w(torch.randn(2, sg2.z_dim, generator=torch.Generator().manual_seed(5))))
    enc = invert(sg2, target, make_method("encoder", encoder=tmp_path / "e"), steps=100, loss="mse")
    assert enc.steps == 0 and enc.history == []
    E = load_encoder(tmp_path / "e")[0]
    with torch.no_grad():
        torch.testing.assert_close(enc.images, sg2.synthesize(E(target)))
    hyb = invert(sg2, target, make_method("hybrid", encoder=E), steps=60, loss="mse")
    assert min(h - e for h, e in zip(hyb.psnr, enc.psnr)) > 1.0
    assert hyb.history[0]["psnr"][0] == pytest.approx(enc.psnr[0], abs=1e-3)  # starts there


def test_encoder_errors(sg2, tmp_path):
    with pytest.raises(ValueError, match="needs --encoder"):
        make_method("hybrid")
    with pytest.raises(CheckpointError, match="not a usable encoder"):
        make_method("encoder", encoder=tmp_path / "missing")
