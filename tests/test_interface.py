"""The generator interface: split synthesis, features, seeds, classes — on every architecture."""
import numpy as np
import pytest
import torch
from conftest import small_stylegan2

from ganprior.nets.dcgan import DCGANGenerator


def generators():
    torch.manual_seed(0)
    dc = DCGANGenerator(z_dim=12, ngf=8, img_resolution=32).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in dc.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return {"dcgan": dc, "sg2-skip": small_stylegan2(arch="skip"),
            "sg2-resnet": small_stylegan2(arch="resnet", conv_clamp=256),
            "sg2-orig": small_stylegan2(arch="orig"),
            "sg2-cond": small_stylegan2(c_dim=3)}


@pytest.mark.parametrize("name", list(generators()))
def test_split_and_resume_is_exact(name):
    G = generators()[name]
    n = 2
    z = torch.randn(n, G.z_dim)
    c = G.class_vector(n, 1 if G.c_dim else None)
    ws = G.z_to_w(z, c)
    assert ws.shape == (n, G.num_ws, G.w_dim)
    with torch.no_grad():
        full = G.synthesize(ws)
        assert full.shape == (n, 3, G.img_resolution, G.img_resolution)
        assert len(G.layer_names) >= 2
        for layer in G.layer_names:
            f = G.features_at(layer, ws)
            assert f.shape[1] == G.feature_channels(layer)
            assert f.shape[-1] == int(layer[1:])
            torch.testing.assert_close(G.synthesize_from(layer, f, ws), full, atol=1e-5, rtol=0)
        img, feats = G.synthesize_with_features(ws)
        torch.testing.assert_close(img, full)
        assert [f.shape[-1] for f in feats][:len(G.layer_names)] == [int(l[1:]) for l in G.layer_names]


@pytest.mark.parametrize("name", ["dcgan", "sg2-skip"])
def test_split_is_differentiable(name):
    G = generators()[name]
    ws = G.z_to_w(torch.randn(1, G.z_dim)).requires_grad_(True)
    layer = G.layer_names[1]
    f = G.features_at(layer, ws).detach().requires_grad_(True)
    G.synthesize_from(layer, f, ws).square().mean().backward()
    assert f.grad is not None and f.grad.abs().sum() > 0


def test_unknown_layer_is_a_clear_error():
    G = small_stylegan2()
    with pytest.raises(ValueError, match="unknown layer 'b999'"):
        G.features_at("b999", G.z_to_w(torch.randn(1, G.z_dim)))


def test_seed_matches_numpy_randomstate():
    G = small_stylegan2()
    z = G.z_from_seed(42)
    np.testing.assert_array_equal(z.numpy(), np.random.RandomState(42).randn(1, G.z_dim).astype(np.float32))


def test_class_vector_validation():
    G = small_stylegan2(c_dim=3)
    assert G.class_vector(2, 2).tolist() == [[0, 0, 1], [0, 0, 1]]
    with pytest.raises(ValueError, match="out of range"):
        G.class_vector(1, 3)
    with pytest.raises(ValueError, match="conditional"):
        G.class_vector(1, None)
    with pytest.raises(ValueError, match="unconditional"):
        small_stylegan2().class_vector(1, 0)


def test_truncation_and_cutoff():
    G = small_stylegan2()
    z = torch.randn(3, G.z_dim)
    ws, ws_t = G.z_to_w(z), G.z_to_w(z, truncation_psi=0.5, truncation_cutoff=2)
    avg = G.mapping.w_avg
    torch.testing.assert_close(ws_t[:, :2], avg + 0.5 * (ws[:, :2] - avg))
    torch.testing.assert_close(ws_t[:, 2:], ws[:, 2:])


def test_noise_modes():
    G = small_stylegan2()
    ws = G.z_to_w(torch.randn(1, G.z_dim))
    with torch.no_grad():
        const1, const2 = G.synthesize(ws, "const"), G.synthesize(ws, "const")
        rnd = G.synthesize(ws, "random")
        none = G.synthesize(ws, "none")
    torch.testing.assert_close(const1, const2)
    assert (rnd - const1).abs().max() > 1e-4 and (none - const1).abs().max() > 1e-4
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesize(ws, "bogus")


def test_fused_and_unfused_agree_with_gradients():
    G = small_stylegan2(arch="resnet")
    ws = G.z_to_w(torch.randn(3, G.z_dim))
    a = G.synthesize(ws, fused_modconv=True)
    b = G.synthesize(ws, fused_modconv=False)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
