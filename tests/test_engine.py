"""The engine's contract, pinned: batch independence for every method and every image,
per-image early stopping, best-kept parameters, mGANprior's composition by hand, frozen
parameters, a clean reference, degradation shape checks, small observations, the session API."""
import pytest
import torch
import torch.nn.functional as F
from conftest import small_stylegan2

from ganprior.inversion import InversionSession, invert, make_method
from ganprior.inversion.losses import ReconstructionLoss
from ganprior.metrics import psnr, ssim, to_unit
from ganprior.nets.encoders import encoder_for


@pytest.fixture(scope="module")
def sg2():
    return small_stylegan2(res=32)


@pytest.fixture(scope="module")
def sg2_64():
    """In float64, so that batch independence is exact rather than up to the float32 rounding
    of batched convolutions (which Adam can turn into a step of lr where a gradient is ~0)."""
    return small_stylegan2(res=32).double()


def targets_of(G, n=3, seed=123):
    with torch.no_grad():
        z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
        z = z.to(next(G.parameters()).dtype)
        return G.synthesize(G.z_to_w(z))


def rngs(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def _encoder(G):
    torch.manual_seed(0)
    return encoder_for(G)


METHODS = [("z", {}), ("w", {}), ("w+", {}), ("w+", dict(noise_maps=True)),
           ("mganprior", dict(codes=3, layer="b8")), ("padinv", {}),
           ("encoder", "encoder"), ("hybrid", "encoder")]


@pytest.mark.parametrize("name,opts", METHODS, ids=[f"{n}{'-noise' if o and o != 'encoder' and o.get('noise_maps') else ''}" for n, o in METHODS])
def test_a_batch_gives_each_image_what_it_gets_alone(sg2_64, name, opts):
    """Every image of a batch of 3 ends exactly where it ends when inverted alone with its
    own seed (seed + index), with early stopping on."""
    sg2 = sg2_64
    if opts == "encoder":
        opts = dict(encoder=_encoder(sg2).double())
    targets = targets_of(sg2)
    kw = dict(steps=6, loss="mse", lr=0.05, patience=2, tol=0.5)
    both = invert(sg2, targets, make_method(name, **opts), seed=10, **kw)
    assert both.seeds == [10, 11, 12]
    for i in range(3):
        alone = invert(sg2, targets[i:i + 1], make_method(name, **opts), seed=10 + i, **kw)
        assert alone.seeds == [10 + i]
        assert both.image_steps[i] == alone.image_steps[0]
        for k, v in both.params.items():
            torch.testing.assert_close(v[i:i + 1], alone.params[k], atol=1e-9, rtol=1e-9)
        assert both.psnr[i] == pytest.approx(alone.psnr[0], abs=1e-8)


def test_images_draw_different_starts_from_their_seeds(sg2):
    m = make_method("mganprior", codes=3, layer="b8")
    p = m.init(sg2, targets_of(sg2, 2), rngs([4, 5]))
    q = m.init(sg2, targets_of(sg2, 1), rngs([5]))
    torch.testing.assert_close(p["codes"][1:], q["codes"], atol=1e-6, rtol=1e-6)
    assert (p["codes"][0] - p["codes"][1]).abs().max() > 0.1


def test_early_stopping_is_per_image(sg2):
    """Image 0 starts at its exact answer (zero gradient, no improvement): it stops after
    `patience` stale steps and keeps its parameters; image 1 runs every step."""
    with torch.no_grad():
        z = torch.randn(2, sg2.z_dim, generator=torch.Generator().manual_seed(1))
        targets = sg2.synthesize(sg2.z_to_w(z))
    start = {"z": torch.stack([z[0], torch.randn(sg2.z_dim, generator=torch.Generator().manual_seed(2))])}
    r = invert(sg2, targets, make_method("z"), steps=12, loss="mse", patience=3, params=start)
    assert r.image_steps == [4, 12] and r.steps == 12
    torch.testing.assert_close(r.params["z"][0], z[0], atol=0, rtol=0)
    alone = invert(sg2, targets[1:], make_method("z"), steps=12, loss="mse", patience=3,
                   params={"z": start["z"][1:]})
    torch.testing.assert_close(r.params["z"][1:], alone.params["z"], atol=1e-5, rtol=1e-4)
    assert len(r.image_record(0)["history"]) == 4


def test_the_best_parameters_are_kept_not_the_last(sg2):
    """With a learning rate far too large the loss rises after the first steps: the result is
    the best step's parameters, whose loss is the smallest in the history."""
    targets = targets_of(sg2, 2)
    r = invert(sg2, targets, make_method("w+"), steps=8, loss="mse", lr=3.0)
    for i in range(2):
        losses = [h["loss"][i] for h in r.history]
        assert losses.index(min(losses)) < len(losses) - 1  # the last step was not the best
        assert r.loss[i] == pytest.approx(min(losses), rel=1e-4)
        with torch.no_grad():
            again = (sg2.synthesize(r.params["w"][i:i + 1]) - targets[i:i + 1]).square().mean()
        assert again.item() == pytest.approx(min(losses), rel=1e-4)


def test_mganprior_composes_sum_of_features_times_per_channel_alpha(sg2):
    """image = G2(sum_n F_n * alpha_n) with alpha_n one weight per channel, computed by hand
    with explicit loops over codes and channels."""
    m = make_method("mganprior", codes=3, layer="b8")
    p = m.init(sg2, targets_of(sg2, 2), rngs([0, 1]))
    p["alpha"] = torch.rand(p["alpha"].shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = m.render(sg2, p)
        for i in range(2):
            feats = [sg2.features_at("b8", p["codes"][i, n:n + 1]) for n in range(3)]
            channels = feats[0].shape[1]
            assert p["alpha"].shape[-1] == channels
            composed = torch.zeros_like(feats[0])
            for n in range(3):
                for c in range(channels):
                    composed[:, c] += feats[n][:, c] * p["alpha"][i, n, c]
            want = sg2.synthesize_from("b8", composed, p["ws_tail"][i:i + 1])
            torch.testing.assert_close(got[i:i + 1], want, atol=1e-5, rtol=1e-5)
    assert torch.allclose(m.init(sg2, targets_of(sg2, 1), rngs([0]))["alpha"],
                          torch.full((1, 3, channels), 1 / 3))


def test_frozen_parameters_do_not_move(sg2):
    targets = targets_of(sg2, 2)
    m = make_method("mganprior", codes=3, layer="b8")
    start = m.init(sg2, targets, rngs([0, 1]))
    r = invert(sg2, targets, m, steps=5, loss="mse", params=start, frozen=("alpha",))
    torch.testing.assert_close(r.params["alpha"], start["alpha"], atol=0, rtol=0)
    assert (r.params["codes"] - start["codes"]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="cannot freeze bogus"):
        invert(sg2, targets, m, steps=1, loss="mse", frozen=("bogus",))


def test_reference_measures_the_image_not_the_observation(sg2):
    clean = targets_of(sg2, 2)
    down = lambda x: F.avg_pool2d(x, 2)  # noqa: E731
    r = invert(sg2, down(clean), make_method("w+"), steps=4, loss="mse", degrade=down,
               reference=clean)
    img = r.images
    assert r.psnr == pytest.approx(psnr(to_unit(img), to_unit(clean)).tolist(), abs=1e-4)
    assert r.ssim == pytest.approx(ssim(to_unit(img), to_unit(clean)).tolist(), abs=1e-4)
    observed = psnr(to_unit(down(img)), to_unit(down(clean))).tolist()
    assert r.psnr != pytest.approx(observed, abs=1e-2)  # really another measurement
    with pytest.raises(ValueError, match="reference is"):
        invert(sg2, down(clean), make_method("w+"), steps=1, loss="mse", degrade=down,
               reference=down(clean))


def test_degradation_must_match_the_targets(sg2):
    clean = targets_of(sg2, 1)
    with pytest.raises(ValueError, match=r"the degradation gives \(1, 3, 16, 16\)"):
        invert(sg2, clean, make_method("w"), steps=2, loss="mse",
               degrade=lambda x: F.avg_pool2d(x, 2))


def test_small_observations_fall_back_from_ms_ssim(sg2, tmp_path, monkeypatch):
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path))  # no VGG: auto = mse+ms-ssim
    clean = targets_of(sg2, 1)
    down = lambda x: F.avg_pool2d(x, 8)  # noqa: E731  (32 px -> 4 px)
    with pytest.warns(UserWarning, match="smaller than MS-SSIM"):
        r = invert(sg2, down(clean), make_method("w"), steps=2, loss="auto", degrade=down)
    assert r.loss_info["loss"] == "mse:1" and "4 px" in r.loss_info["note"]
    observed = psnr(to_unit(down(r.images)), to_unit(down(clean))).item()
    assert r.psnr[0] == pytest.approx(observed, abs=1e-4)
    assert r.ssim[0] != r.ssim[0]  # no SSIM on 4 px: NaN (null in JSON)
    with pytest.raises(ValueError, match="at least 11 px"):
        invert(sg2, down(clean), make_method("w"), steps=2, loss="mse+ms-ssim", degrade=down)


def test_loss_weights_must_be_finite():
    for spec in ("mse:nan", "mse:inf", "mse:-1", "mse:abc"):
        with pytest.raises(ValueError, match="loss weight"):
            ReconstructionLoss(spec)
    assert ReconstructionLoss("mse:2+l1:0.5").name == "mse:2+l1:0.5"


def test_bound_loss_caches_target_features_with_the_same_values(monkeypatch):
    """The VGG term with the targets' features computed once equals computing them each call
    (a random-weight VGG16 stands in for the optional pretrained file)."""
    from ganprior.nets import vgg
    torch.manual_seed(0)
    net = vgg.VGG16Features().eval().requires_grad_(False)
    import ganprior.inversion.losses as losses
    monkeypatch.setattr(losses, "load_vgg16", lambda device: net)
    loss = ReconstructionLoss("mse+vgg:0.5")
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    bound = loss.bind(b)
    size = (256, 256)
    fa = net(vgg.imagenet_normalise(F.interpolate(a, size, mode="nearest")))[0]
    fb = net(vgg.imagenet_normalise(F.interpolate(b, size, mode="nearest")))[0]
    want = (a - b).square().flatten(1).mean(1) + 0.5 * (fa - fb).abs().flatten(1).mean(1)
    torch.testing.assert_close(bound(a), want, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(loss(a, b), want, atol=1e-6, rtol=1e-5)


def test_session_step_state_restore_stop(sg2):
    targets = targets_of(sg2, 2)
    s = InversionSession(sg2, targets, make_method("w+"), steps=10, loss="mse")
    first = s.state()
    last = s.step()
    assert last["step"] == 0 and last["loss"].shape == (2,) and bool(last["active"].all())
    s.step()
    now = s.state()
    assert now["step"] == 2 and bool(now["active"].all())
    torch.testing.assert_close(now["loss"], s.history[-1]["loss"])
    torch.testing.assert_close(now["psnr"], s.history[-1]["psnr"])
    with torch.no_grad():
        torch.testing.assert_close(now["image"], sg2.synthesize(now["params"]["w"]))
    assert (now["params"]["w"] - first["params"]["w"]).abs().max() > 0
    s.restore(first["params"])  # undo
    torch.testing.assert_close(s.state()["params"]["w"], first["params"]["w"], atol=0, rtol=0)
    with pytest.raises(ValueError, match="restore needs w, got z, alpha"):
        s.restore({"z": torch.zeros(2, 16), "alpha": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"parameter 'w' is \(1, 8, 24\), expected \(2, 8, 24\)"):
        s.restore({"w": first["params"]["w"][:1]})
    s.stop()
    assert s.done
    with pytest.raises(RuntimeError, match="done"):
        s.step()
    r = s.result()
    assert r.steps == 2 and len(r.history) == 2
    # the best of the parameters seen (each step records the loss before its update)
    assert r.loss[0] == pytest.approx(min(h["loss"][0] for h in r.history), rel=1e-4)


def test_settings_are_checked_up_front(sg2):
    t = targets_of(sg2, 1)
    for kw, msg in [(dict(lr=float("nan")), "learning rate"), (dict(lr=0), "learning rate"),
                    (dict(steps=-1), "steps"), (dict(patience=-1), "patience"),
                    (dict(tol=float("nan")), "tol"), (dict(schedule="fast"), "unknown schedule"),
                    (dict(seed=[1, 2]), "2 seeds for 1 images"),
                    (dict(targets=t * float("nan")), "NaN or infinite")]:
        with pytest.raises(ValueError, match=msg):
            invert(sg2, kw.pop("targets", t), make_method("w"), loss="mse", **kw)


def test_padinv_maps_the_first_four_resolutions_and_its_constant_acts(sg2):
    big = small_stylegan2(res=64)  # five resolutions: the default takes the first four
    pads = make_method("padinv").init(big, torch.zeros(1, 3, 64, 64), rngs([0]))
    assert sorted(k for k in pads if k.startswith("pad")) == ["pad16", "pad32", "pad4", "pad8"]
    m = make_method("padinv")
    p = m.init(sg2, targets_of(sg2, 1), rngs([0]))
    assert sorted(k for k in p if k.startswith("pad")) == ["pad16", "pad32", "pad4", "pad8"]
    assert [k for k in make_method("padinv", pad_resolutions=2).init(
        sg2, targets_of(sg2, 1), rngs([0])) if k.startswith("pad")] == ["pad4", "pad8"]
    with torch.no_grad():
        plain = m.render(sg2, p)
        p["const"] = p["const"] + 0.5  # the per-image constant replaces the learned one
        assert (m.render(sg2, p) - plain).abs().max() > 1e-3


def test_auto_loss_says_why_it_fell_back(tmp_path, monkeypatch):
    from ganprior import weights
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path))
    weights.path_of("vgg16").write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        loss = ReconstructionLoss("auto")
    assert loss.name == "mse:1+ms-ssim:0.1"
    assert loss.note.startswith(f"VGG16 weights in {weights.path_of('vgg16')} are unreadable")
    assert loss.note.endswith("perceptual term replaced by MS-SSIM")
    with pytest.warns(UserWarning, match="MSE alone"):
        loss.fit_to(8)
    first, second = loss.note.rsplit("; ", 1)  # both reasons are kept
    assert "unreadable" in first and "8 px are smaller" in second
    assert loss.name == "mse:1"
