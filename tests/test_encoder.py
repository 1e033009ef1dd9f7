"""Encoder baseline and hybrid inversion; encoder training resumes exactly."""
import pytest
import torch
from conftest import small_stylegan2

from ganprior.errors import CheckpointError
from ganprior.inversion import invert, make_method
from ganprior.nets.encoder_files import load_encoder
from ganprior.train.encoder import train_encoder


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
    assert (info["final_latent_mse"], info["final_recon_mse"]) == tuple(hist[-1][1:3])

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


def test_padinv_encoder_trains_and_inverts(sg2, tmp_path, monkeypatch):
    from PIL import Image
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path / "no-weights"))  # MS-SSIM fallback
    from ganprior.images import to_uint8
    # a folder of "real" images to mix in
    (tmp_path / "real").mkdir()
    with torch.no_grad():
        imgs = to_uint8(sg2(torch.randn(3, sg2.z_dim), noise_mode="random"))
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(tmp_path / "real" / f"{i}.png")
    info = train_encoder(sg2, tmp_path / "p", steps=16, batch=4, save_every=8, padinv=True,
                         data=tmp_path / "real", progress=False)
    assert info["kind"] == "padinv" and info["loss"]["perceptual_kind"] == "ms-ssim:1"
    hist = torch.load(tmp_path / "p.ckpt.pt", weights_only=True)["history"]
    assert sum(h[1] for h in hist[-4:]) < sum(h[1] for h in hist[:4])  # pixel loss falls
    E, cfg = load_encoder(tmp_path / "p")
    assert cfg["kind"] == "padinv"
    with torch.no_grad():
        target = sg2.synthesize(sg2.z_to_w(torch.randn(2, sg2.z_dim)))
    enc = invert(sg2, target, make_method("encoder", encoder=E), loss="mse")
    assert set(enc.params) == {"w", "const", "pad4", "pad8", "pad16", "pad32"}
    hyb = invert(sg2, target, make_method("hybrid", encoder=E), steps=40, loss="mse")
    assert min(h - e for h, e in zip(hyb.psnr, enc.psnr)) > 1.0


def test_untrained_padinv_encoder_means_zero_padding(sg2):
    from ganprior.nets.encoders import padinv_encoder_for, padinv_params
    E = padinv_encoder_for(sg2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        p = padinv_params(sg2, E, x)
        assert all(p[f"pad{r}"].abs().max() == 0 for r in (4, 8, 16, 32))
        torch.testing.assert_close(p["const"][0], sg2.synthesis.b4.const)
        m = make_method("padinv")
        torch.testing.assert_close(m.render(sg2, p), sg2.synthesize(p["w"]), atol=1e-5, rtol=0)
