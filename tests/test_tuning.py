"""Generator tuning (inversion/tuning.py): PTI and DGP on tiny generators, few steps."""
import hashlib

import pytest
import torch
import torch.nn.functional as F

from conftest import small_stylegan2
from ganprior.checkpoints import load_networks
from ganprior.checkpoints.native import save_native
from ganprior.inversion.files import model_fingerprint
from ganprior.inversion.methods import make_method
from ganprior.inversion.tuning import (DFeatureLoss, auto_alpha, block_groups, load_delta,
                                       locality_loss, read_delta, regulariser_ws, save_delta,
                                       stage_blocks, tune, tune_settings, _rescale)
from ganprior.nets.dcgan import DCGANGenerator

RES = 16


def pool2(x):  # a 2x average-pool degradation
    return F.avg_pool2d(x, 2)


@pytest.fixture(scope="module")
def nets():
    return small_stylegan2(res=RES, with_d=True)


@pytest.fixture(scope="module")
def case(nets):
    """A target the model cannot make exactly, and a w+ pivot (w_avg, nudged)."""
    G, _ = nets
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        clean = (G.synthesize(G.z_to_w(torch.randn(1, G.z_dim, generator=g)))
                 + 0.3 * torch.randn(1, 3, RES, RES, generator=g)).clamp(-1, 1)
    w = G.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1)
    return clean, {"w": w + 0.1 * torch.randn(w.shape, generator=g)}


def state_bytes(G):
    return {k: v.clone() for k, v in G.state_dict().items()}


def dgp_stages(n, iterations):
    """DGP settings for n stages, learning rates large enough to show in a few steps."""
    return dict(iterations=iterations, g_lrs=[1e-3] * n, z_lrs=[1e-3] * n, lr_ratio=[1.0] * n,
                w_d=[1.0] * n, w_mse=[1.0] * n)


@pytest.mark.parametrize("kind", ["pti", "dgp"])
@pytest.mark.parametrize("degraded", [False, True])
def test_tuning_reduces_the_loss_of_the_pivot(nets, case, kind, degraded):
    G, D = nets
    clean, pivot = case
    target = pool2(clean) if degraded else clean
    lr = {"lr": 3e-3, "steps": 6} if kind == "pti" else dgp_stages(1, [6])
    r = tune(G, target, make_method("w+"), pivot, kind=kind, D=D if kind == "dgp" else None,
             degrade=pool2 if degraded else None, reference=clean if degraded else None,
             loss="mse", **lr)
    assert len(r.history) == 6 and r.loss < 0.9 * r.history[0]["loss"]
    assert r.psnr > r.history[0]["psnr"]  # measured on the clean reference when degraded
    assert r.image.shape == (1, 3, RES, RES)
    moved = any(not torch.equal(a, b) for a, b in zip(r.params.values(), pivot.values()))
    assert moved == (kind == "dgp")  # PTI keeps its pivot, DGP optimises the latent too


def test_the_input_generator_and_its_file_are_never_changed(nets, case, tmp_path):
    G, D = nets
    save_native(tmp_path / "model", G, D)
    digest = hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()
    G_file = load_networks(str(tmp_path / "model.safetensors"), "cpu")["G"]
    before = state_bytes(G_file)
    clean, pivot = case
    for kind in ("pti", "dgp"):
        r = tune(G_file, clean, make_method("w+"), pivot, kind=kind, D=D, steps=2, loss="mse")
        assert r.G is not G_file
    after = G_file.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest() == digest


def test_the_locality_regulariser_by_hand(nets):
    G, _ = nets
    G_tuned = small_stylegan2(res=RES, seed=5)  # another generator stands in for a tuned one
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, G.z_dim, generator=g)
    w_p = G.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1) + torch.randn(1, G.num_ws, G.w_dim,
                                                                          generator=g)
    alpha, psi = 1.5, 0.5
    with torch.no_grad():
        got = locality_loss(G_tuned, G, w_p, z, alpha, psi, l2=1.0)
        want, w_rs = 0.0, []
        for i in range(2):  # one sample at a time, the norm over the whole [num_ws, w_dim]
            d = G.mapping(z[i:i + 1], truncation_psi=psi) - w_p
            w_r = w_p + alpha * d / d.square().sum().sqrt()
            assert torch.allclose((w_r - w_p).square().sum().sqrt(), torch.tensor(alpha))
            want += (G_tuned.synthesize(w_r) - G.synthesize(w_r)).square().mean() / 2
            w_rs.append(w_r)
        assert torch.allclose(regulariser_ws(G, w_p, z, alpha, psi), torch.cat(w_rs))
    assert torch.allclose(got, want, rtol=1e-5)
    # an untuned copy costs nothing (autograd's and inference's op orders round differently)
    assert locality_loss(G, G, w_p, z, alpha, psi).item() < 1e-10
    # the perceptual part (LPIPS where installed; a stand-in distance here) is added, weighted
    l1 = lambda a, b: (a - b).abs().flatten(1).mean(1)  # noqa: E731
    with torch.no_grad():
        w_r = regulariser_ws(G, w_p, z, alpha, psi)
        new, old = G_tuned.synthesize(w_r), G.synthesize(w_r)
        both = locality_loss(G_tuned, G, w_p, z, alpha, psi, l2=2.0, lpips=l1, lpips_weight=0.5)
        want = (2.0 * (new - old).square().flatten(1).mean(1) + 0.5 * l1(new, old)).mean()
    assert torch.allclose(both, want, rtol=1e-5)
    with torch.no_grad():  # weight 0: the perceptual distance is not even computed
        unused = lambda a, b: pytest.fail("LPIPS computed at weight 0")  # noqa: E731
        assert torch.allclose(locality_loss(G_tuned, G, w_p, z, alpha, psi, lpips=unused,
                                            lpips_weight=0.0), got, rtol=1e-5)


def test_auto_alpha_is_a_fraction_of_the_median_distance_to_random_codes():
    G = DCGANGenerator(z_dim=8, ngf=4, img_resolution=RES)  # w_z = psi z: distances by hand
    z = torch.randn(256, 8, generator=torch.Generator().manual_seed(123))
    w_p = torch.zeros(1, 1, 8)
    assert auto_alpha(G, w_p, 0.5, 0.5) == pytest.approx(0.25 * z.norm(dim=1).median().item())
    w_p[..., 0] = 3.0  # the distance is from this pivot
    want = 0.5 * (0.5 * z - w_p[0]).norm(dim=1).median().item()
    assert auto_alpha(G, w_p, 0.5, 0.5) == pytest.approx(want)


def test_pti_regulariser_starts_at_zero_and_then_acts(nets, case):
    G, _ = nets
    clean, pivot = case
    kw = dict(steps=3, loss="mse", lr=3e-3)
    on = tune(G, clean, make_method("w+"), pivot, reg_alpha=2.0, **kw)
    off = tune(G, clean, make_method("w+"), pivot, reg=False, **kw)
    # G_t == G at step 0 (up to the rounding of autograd's vs inference's op order)
    assert on.history[0]["reg"] < 1e-9 < on.history[1]["reg"]
    assert all(h["reg"] == 0.0 for h in off.history)
    assert on.history[2]["loss"] != off.history[2]["loss"]
    assert on.settings["reg_alpha_used"] == 2.0


def test_block_groups_follow_the_synthesis_blocks():
    G = small_stylegan2(res=RES)
    groups = block_groups(G)
    assert [name for name, _ in groups] == ["b4", "b8", "b16"]
    for name, params in groups:  # each block with its convs and toRGB, nothing else
        assert params and all(p.startswith(f"synthesis.{name}.") for p in params)
        assert f"synthesis.{name}.torgb.weight" in params
    assert sum(len(p) for _, p in groups) == len([n for n, _ in G.named_parameters()
                                                  if n.startswith("synthesis.")])
    D = DCGANGenerator(z_dim=8, ngf=4, img_resolution=RES)
    assert block_groups(D) == [("b4", ["main.0.weight", "main.1.weight", "main.1.bias"]),
                               ("b8", ["main.3.weight", "main.4.weight", "main.4.bias"]),
                               ("b16", ["main.6.weight"])]


def test_rescaled_stage_iterations():
    assert _rescale([200, 200, 200, 200, 200], 100) == [20, 20, 20, 20, 20]
    assert _rescale([1, 3], 8) == [2, 6]            # in proportion, rounded cumulatively
    assert _rescale([1, 1, 1], 0) == [0, 0, 0]      # no steps is a valid (empty) schedule
    assert _rescale([0, 0], 4) == [0, 0]            # all-zero stages stay empty
    with pytest.raises(ValueError, match="steps must be >= 0"):
        _rescale([1], -1)


def test_stage_schedule():
    assert stage_blocks(5, 5) == [1, 2, 3, 4, 5]
    assert stage_blocks(3, 5) == [1, 2, 2, 3, 3]
    assert stage_blocks(7, 5) == [2, 3, 5, 6, 7]
    assert tune_settings("dgp", steps=10)["iterations"] == [2, 2, 2, 2, 2]
    assert tune_settings("dgp", steps=7)["iterations"] == [1, 2, 1, 2, 1]
    with pytest.raises(ValueError, match="unknown dgp setting"):
        tune_settings("dgp", lr=1.0)
    with pytest.raises(ValueError, match="one value per stage"):
        tune_settings("dgp", iterations=[1, 2])


@pytest.mark.parametrize("iterations, tuned", [([2, 0, 0], {"b4"}), ([2, 2, 0], {"b4", "b8"})])
def test_dgp_unfreezes_blocks_coarse_to_fine(nets, case, iterations, tuned):
    G, D = nets
    clean, pivot = case
    r = tune(G, clean, make_method("w+"), pivot, kind="dgp", D=D, **dgp_stages(3, iterations))
    base, new = G.state_dict(), r.G.state_dict()
    changed = {k.split(".")[1] for k in base if not torch.equal(base[k], new[k])}
    assert changed == tuned
    assert not torch.equal(r.params["w"], pivot["w"])


def test_d_feature_loss(nets, case):
    G, D = nets
    clean, pivot = case
    other = torch.zeros_like(clean)
    assert DFeatureLoss(D, clean)(clean).item() == 0.0
    assert DFeatureLoss(D, pool2(clean))(pool2(clean)).item() == 0.0  # upsampled to 16 px
    by_hand = sum((a - b).abs().mean() for a, b in zip(D.block_features(other),
                                                       D.block_features(clean)))
    assert torch.allclose(DFeatureLoss(D, clean)(other), by_hand.reshape(1))
    # used when D is given: the first step's loss is D-features + MSE of the pivot's image
    r = tune(G, clean, make_method("w+"), pivot, kind="dgp", D=D, **dgp_stages(1, [1]))
    with torch.no_grad():
        image = G.synthesize(pivot["w"])
        want = DFeatureLoss(D, clean)(image) + (image - clean).square().mean()
    assert r.history[0]["loss"] == pytest.approx(want.item(), rel=1e-5)
    assert r.loss_info["loss"].startswith("d-features")


def test_block_features_are_what_forward_runs_through(nets):
    _, D = nets
    img = torch.randn(2, 3, RES, RES, generator=torch.Generator().manual_seed(1))
    feats = D.block_features(img)
    assert [f.shape[-1] for f in feats] == [8, 4]
    assert torch.equal(D.b4(feats[-1], None, None), D(img))


def test_dcgan_tunes_in_z_space(case):
    G = DCGANGenerator(z_dim=8, ngf=4, img_resolution=RES).eval()
    clean, _ = case
    pivot = {"z": torch.randn(1, 8, generator=torch.Generator().manual_seed(0))}
    r = tune(G, clean, make_method("z"), pivot, steps=4, loss="mse", lr=3e-3)
    assert r.loss < r.history[0]["loss"] and r.settings["reg_alpha_used"] > 0
    d = tune(G, clean, make_method("z"), pivot, kind="dgp", loss="mse", **dgp_stages(1, [4]))
    assert d.loss < d.history[0]["loss"]


def test_delta_round_trip_is_exact_and_holds_only_changed_tensors(nets, case, tmp_path):
    G, D = nets
    clean, pivot = case
    r = tune(G, clean, make_method("w+"), pivot, kind="dgp", D=D, **dgp_stages(3, [2, 0, 0]))
    path = save_delta(tmp_path / "x_tuned.safetensors", r.G, G, meta=r.settings)
    tensors, metadata = read_delta(path)
    base, tuned = G.state_dict(), r.G.state_dict()
    assert set(tensors) == {k for k in base if not torch.equal(base[k], tuned[k])}
    assert tensors and all(k.startswith("synthesis.b4.") for k in tensors)
    assert metadata["base_fingerprint"] == model_fingerprint(G)
    assert metadata["meta"]["kind"] == "dgp"
    loaded = load_delta(path, G)
    assert all(torch.equal(v, tuned[k]) for k, v in loaded.state_dict().items())
    with torch.no_grad():
        assert torch.equal(loaded.synthesize(r.params["w"]), r.G.synthesize(r.params["w"]))
    assert all(torch.equal(base[k], v) for k, v in G.state_dict().items())


def test_load_delta_refuses_another_model(nets, case, tmp_path):
    G, _ = nets
    clean, pivot = case
    r = tune(G, clean, make_method("w+"), pivot, steps=1, loss="mse")
    path = save_delta(tmp_path / "x_tuned.safetensors", r.G, G, meta={})
    with pytest.raises(ValueError, match="another model") as e:
        load_delta(path, small_stylegan2(res=RES, seed=1))
    assert "\n" not in str(e.value)
    (tmp_path / "junk.safetensors").write_bytes(b"not a delta")
    with pytest.raises(ValueError, match="not a readable tuning delta"):
        load_delta(tmp_path / "junk.safetensors", G)
