"""The degradations of the restoration tasks against hand-computed values and gradients."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ganprior.restore.degrade import (Downsample, GaussianNoise, Gray, Mask, SaltPepper,
                                      luminance, make_degradation)

W = (0.299, 0.587, 0.114)


def rgb(*pixels):
    """[1, 3, 1, len(pixels)] from (R, G, B) triples."""
    return torch.tensor(pixels, dtype=torch.float64).T.reshape(1, 3, 1, len(pixels))


# --- gray -------------------------------------------------------------------------------------

def test_gray_of_explicit_pixels():
    out = Gray()(rgb((1, -1, 0), (0.5, 0.5, 0.5), (-1, 1, 1), (0, 0, 1)))
    expected = [0.299 - 0.587, 0.5, -0.299 + 0.587 + 0.114, 0.114]
    assert out.shape == (1, 3, 1, 4)
    for c in range(3):  # replicated to three channels
        assert torch.allclose(out[0, c, 0], torch.tensor(expected, dtype=torch.float64))


def test_gray_passes_a_gray_model_through_and_refuses_other_channel_counts():
    x = torch.rand(2, 1, 4, 4)
    assert torch.equal(Gray()(x), x)
    with pytest.raises(ValueError, match="1- or 3-channel"):
        Gray()(torch.rand(1, 4, 4, 4))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        Gray()(torch.rand(3, 4, 4))


def test_gray_gradient_is_the_weights_over_the_pixel_count():
    # mean over N*3*H*W outputs, each pixel's gray counted 3 times -> w_c / (N*H*W)
    x = torch.rand(2, 3, 3, 5, dtype=torch.float64, requires_grad=True)
    Gray()(x).mean().backward()
    for c, w in enumerate(W):
        assert torch.allclose(x.grad[:, c], torch.full((2, 3, 5), w / 30, dtype=torch.float64))


# --- downsample --------------------------------------------------------------------------------

def test_area_downsample_of_a_known_array():
    x = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4)
    # blocks {0,1,4,5} {2,3,6,7} {8,9,12,13} {10,11,14,15}
    assert torch.equal(Downsample(2)(x), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]],
                                                      dtype=torch.float64))
    assert torch.equal(Downsample(4)(x), torch.tensor([[[[7.5]]]], dtype=torch.float64))
    assert torch.equal(Downsample(1)(x), x)


def test_area_downsample_gradient_is_uniform():
    # every input pixel feeds one of N*C*(H/f)*(W/f) outputs with weight 1/f^2
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    Downsample(3)(x).mean().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 1 / x.numel()))


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_bicubic_downsample_matches_pil_and_keeps_a_constant(factor):
    const = torch.full((1, 3, 48, 48), 0.37)
    assert torch.allclose(Downsample(factor, "bicubic")(const), torch.full_like(
        const[..., ::factor, ::factor], 0.37), atol=1e-6)
    a = np.random.RandomState(factor).rand(48, 48).astype(np.float32)
    pil = np.asarray(Image.fromarray(a, mode="F").resize((48 // factor,) * 2, Image.BICUBIC))
    ours = Downsample(factor, "bicubic")(torch.from_numpy(a)[None, None])[0, 0].numpy()
    # Both are PIL's separable antialiased kernel (a = -0.5, support x factor) evaluated in
    # float32: they differ only by rounding (measured 1.2e-7 to 4.2e-7 on values in [0, 1]).
    # An unantialiased or a = -0.75 bicubic is off by 1e-2 or more.
    assert np.abs(pil - ours).max() < 1e-5


def test_downsample_refuses_factors_that_do_not_fit():
    with pytest.raises(ValueError, match="factor 3 does not divide the resolution 16"):
        Downsample(3)(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="factor 5 does not divide the resolution 64"):
        Downsample(5).observed_size(64)
    assert Downsample(8).observed_size(64) == 8
    for bad in (0, -2, 2.0, True, "2"):
        with pytest.raises(ValueError, match="integer >= 1"):
            Downsample(bad)
    with pytest.raises(ValueError, match="unknown downsampling mode 'nearest'"):
        Downsample(2, "nearest")


# --- gradients ---------------------------------------------------------------------------------

@pytest.mark.parametrize("deg", [Gray(), Downsample(2), Downsample(3), Downsample(2, "bicubic"),
                                 Downsample(3, "bicubic"), Mask.center_square(2, 6)],
                         ids=["gray", "area2", "area3", "bicubic2", "bicubic3", "mask"])
def test_gradcheck(deg):
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(deg, (x,))


def test_mask_gradient_is_the_mask():
    m = Mask.center_square(2, 4)
    x = torch.rand(1, 3, 4, 4, requires_grad=True)
    m(x).sum().backward()
    assert torch.equal(x.grad, m.known.expand(1, 3, 4, 4))


# --- masks -------------------------------------------------------------------------------------

def test_center_square_position_and_counts():
    known = Mask.center_square(4, 10).known
    assert known.shape == (1, 1, 10, 10)
    assert int(known.sum()) == 100 - 16
    assert bool((known[0, 0, 3:7, 3:7] == 0).all())  # top-left at (10 - 4) // 2 = 3
    assert int(known[0, 0, 3:7, 3:7].numel()) == 16
    odd = Mask.center_square(4, 9).known[0, 0]      # (9 - 4) // 2 = 2: rows/cols 2..5
    assert odd[2:6, 2:6].sum() == 0 and odd.sum() == 81 - 16 and odd[6, 6] == 1 and odd[1, 2] == 1


def test_center_square_refuses_sizes_that_leave_nothing():
    for bad in (0, 16, 20, 2.5):
        with pytest.raises(ValueError, match="centre square must be 1 to 15 px"):
            Mask.center_square(bad, 16)


def test_random_mask_fraction_and_per_image_seeds():
    m = Mask.random(0.8, 64, seeds=[5, 7, 9])
    assert m.known.shape == (3, 1, 64, 64)
    n = 64 * 64
    bound = 5 * math.sqrt(n * 0.8 * 0.2)  # binomial(4096, 0.8): 5 standard deviations
    for row in m.known:
        assert abs(int((row == 0).sum()) - 0.8 * n) < bound
    # image i's mask depends only on seeds[i]
    assert torch.equal(m.known[1], Mask.random(0.8, 64, seeds=[7]).known[0])
    assert torch.equal(m.subset([2]).known[0], Mask.random(0.8, 64, seeds=[9]).known[0])
    assert not torch.equal(m.known[0], m.known[1])
    assert m.subset([2, 0]).settings()["seeds"] == [9, 5]


def test_random_mask_refuses_bad_parameters():
    for bad in (0, 1, 1.5, -0.1, float("nan"), True):
        with pytest.raises(ValueError, match="missing fraction"):
            Mask.random(bad, 16, [0])
    with pytest.raises(ValueError, match="seeds"):
        Mask.random(0.5, 16, [])
    with pytest.raises(ValueError, match="seeds"):
        Mask.random(0.5, 16, [-1])


def save_mask(path, size, hole, mode="L"):
    """A white (known) image with a black rectangle hole = (top, left, h, w)."""
    a = np.full((size[1], size[0]), 255, np.uint8)
    t, left, h, w = hole
    a[t:t + h, left:left + w] = 0
    im = Image.fromarray(a)
    if mode == "I;16":
        im = Image.fromarray(a.astype(np.uint16) * 257)
    elif mode != "L":
        im = im.convert(mode)
    im.save(path)


@pytest.mark.parametrize("mode", ["L", "1", "RGB", "I;16"])
def test_mask_from_file_white_is_known(tmp_path, mode):
    path = tmp_path / "m.png"
    save_mask(path, (16, 16), (2, 5, 3, 4), mode)
    known = Mask.from_file(path, 16).known[0, 0]
    expected = torch.ones(16, 16)
    expected[2:5, 5:9] = 0
    assert torch.equal(known, expected)


def test_mask_from_file_wrong_size_and_empty_masks(tmp_path):
    path = tmp_path / "m.png"
    save_mask(path, (20, 16), (2, 2, 3, 3))
    with pytest.raises(ValueError, match="mask m.png is 20x16, the model's images are 16x16"):
        Mask.from_file(path, 16)
    save_mask(path, (16, 16), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="no missing pixel"):
        Mask.from_file(path, 16)
    save_mask(path, (16, 16), (0, 0, 16, 16))
    with pytest.raises(ValueError, match="no known pixel"):
        Mask.from_file(path, 16)


def test_mask_checks_its_values_and_the_images():
    with pytest.raises(ValueError, match="only 0"):
        Mask(torch.full((1, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match=r"\[N or 1, 1, H, W\]"):
        Mask(torch.ones(1, 3, 4, 4))
    m = Mask.random(0.5, 8, [1, 2])
    with pytest.raises(ValueError, match="the mask is 8x8, the images are 16x16"):
        m(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="2 rows for 3 images"):
        m(torch.rand(3, 3, 8, 8))
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(m(x), x * m.known)  # row i on image i, every channel
    with pytest.raises(ValueError, match="the mask is 8x8, the model's images are 16x16"):
        m.observed_size(16)


# --- noise -------------------------------------------------------------------------------------

def test_gaussian_noise_std_is_twice_sigma_in_image_units():
    clean = torch.zeros(2, 3, 64, 64)
    noisy = GaussianNoise(0.05, seeds=[3, 4]).corrupt(clean)
    # sigma is in [0, 1] intensity units: in [-1, 1] units the std is 2 * 0.05 = 0.1 (clamping
    # at 10 std is negligible); the sample std of 12288 values is within 3 % (SE 0.64 %)
    for row in noisy:
        assert abs(float(row.std()) - 0.1) < 0.003
        assert abs(float(row.mean())) < 0.005


def test_noise_is_reproducible_per_image_seed_and_clamped():
    clean = torch.rand(2, 3, 16, 16) * 2 - 1
    g = GaussianNoise(0.2, seeds=[3, 4])
    a, b = g.corrupt(clean), g.corrupt(clean)
    assert torch.equal(a, b)
    assert torch.equal(a[1:], GaussianNoise(0.2, seeds=[4]).corrupt(clean[1:]))
    assert torch.equal(g.subset([1]).corrupt(clean[1:]), a[1:])
    assert not torch.equal(a[0] - clean[0], a[1] - clean[1])
    assert float(a.abs().max()) <= 1
    assert torch.equal(g(clean), clean)  # the forward model is the identity
    with pytest.raises(ValueError, match="2 seeds for 3 images"):
        g.corrupt(torch.rand(3, 3, 16, 16))
    assert torch.equal(GaussianNoise(0.2).corrupt(clean)[1:],
                       GaussianNoise(0.2, [1]).corrupt(clean[1:]))  # no seeds: image i uses i


def test_noise_refuses_bad_levels():
    for bad in (0, -0.1, 1.5, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(ValueError, match="sigma must be"):
            GaussianNoise(bad)
    for bad in (0, 1, -0.5, float("nan")):
        with pytest.raises(ValueError, match="salt-and-pepper amount"):
            SaltPepper(bad)
    with pytest.raises(ValueError, match="seeds"):
        GaussianNoise(0.1, seeds=[1.5])


def test_salt_pepper_fraction_values_and_known_mask():
    clean = torch.zeros(2, 3, 64, 64)
    sp = SaltPepper(0.3, seeds=[1, 2])
    noisy = sp.corrupt(clean)
    hit = (noisy != 0).any(1)                       # [N, H, W] corrupted pixels
    n = 64 * 64
    for row in hit:
        assert abs(int(row.sum()) - 0.3 * n) < 5 * math.sqrt(n * 0.3 * 0.7)
    values = noisy.permute(0, 2, 3, 1)[hit]         # all channels of a pixel together, +-1
    assert bool(((values == 1).all(1) | (values == -1).all(1)).all())
    salt = float((values[:, 0] == 1).float().mean())
    assert abs(salt - 0.5) < 5 * math.sqrt(0.25 / len(values))
    known = sp.known_mask(2, 64).known[:, 0]
    assert torch.equal(known == 0, hit)
    assert torch.equal(sp(clean), clean)


# --- bring_back --------------------------------------------------------------------------------

def test_luminance_of_one_channel_is_itself_and_other_counts_are_refused():
    x = torch.rand(2, 1, 4, 4)
    assert torch.equal(luminance(x), x)
    with pytest.raises(ValueError, match="1 or 3 channels, got 2"):
        luminance(torch.rand(1, 2, 4, 4))


def test_colorization_keeps_the_observed_luminance_and_the_reconstructed_chroma():
    g = torch.Generator().manual_seed(0)
    recon = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 0.6 - 0.3
    observed = Gray()(torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 0.6 - 0.3)
    out = Gray().bring_back(recon, observed)
    assert torch.allclose(luminance(out), observed[:, :1], atol=1e-5)
    # in gamut: Cb, Cr unchanged, i.e. out - Y(out) == recon - Y(recon)
    assert torch.allclose(out - luminance(out), recon - luminance(recon), atol=1e-12)
    assert torch.equal(Gray(keep_observed=False).bring_back(recon, observed), recon)


def test_colorization_shrinks_chroma_out_of_gamut_and_keeps_luminance():
    recon = rgb((1, -1, -1))               # Y = 0.299 - 0.587 - 0.114 = -0.402
    observed = torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64)
    out = Gray().bring_back(recon, observed)[0, :, 0, 0]
    chroma = torch.tensor([1.402, -0.598, -0.598], dtype=torch.float64)
    t = (1 - 0.5) / 1.402                  # R = 0.5 + t * 1.402 reaches 1 exactly
    assert torch.allclose(out, 0.5 + t * chroma)
    assert abs(float((out * torch.tensor(W, dtype=torch.float64)).sum()) - 0.5) < 1e-12


def test_inpainting_pastes_the_known_pixels_exactly():
    m = Mask.random(0.6, 16, seeds=[1, 2])
    recon, clean = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    observed = m.corrupt(clean)
    out = m.bring_back(recon, observed)
    known = m.known.expand(2, 3, 16, 16).bool()
    assert torch.equal(out[known], clean[known])
    assert torch.equal(out[~known], recon[~known])
    assert torch.equal(Mask(m.known, keep_observed=False).bring_back(recon, observed), recon)
    # an observation given unmasked (a photo with its hole still drawn in) is masked too
    assert torch.equal(m.bring_back(recon, clean), out)


def test_super_resolution_and_denoising_return_the_reconstruction():
    recon = torch.rand(1, 3, 16, 16)
    assert torch.equal(Downsample(4).bring_back(recon, torch.rand(1, 3, 4, 4)), recon)
    assert torch.equal(GaussianNoise(0.1).bring_back(recon, torch.rand(1, 3, 16, 16)), recon)
    assert torch.equal(SaltPepper(0.1).bring_back(recon, torch.rand(1, 3, 16, 16)), recon)


# --- settings and the task helper -------------------------------------------------------------

def test_settings_are_json_ready_and_name_the_parameters():
    s = [d.settings() for d in (Gray(), Downsample(4, "bicubic"), Mask.center_square(4, 16),
                                GaussianNoise(0.1, [1]), SaltPepper(0.2, [2]))]
    json.dumps(s)
    assert s[1] == {"name": "downsample", "factor": 4, "mode": "bicubic", "keep_observed": True}
    assert s[2]["kind"] == "center" and s[2]["size"] == 4 and s[2]["missing"] == [16 / 256]
    assert s[3]["sigma"] == 0.1 and s[3]["seeds"] == [1]
    assert s[4]["amount"] == 0.2 and s[0]["name"] == "gray"


def test_make_degradation(tmp_path):
    assert isinstance(make_degradation("colorize"), Gray)
    d = make_degradation("super-resolve", factor=8, mode="bicubic", keep_observed=False)
    assert (d.factor, d.mode, d.keep_observed) == (8, "bicubic", False)
    assert make_degradation("inpaint", 16, center=4).settings()["size"] == 4
    assert make_degradation("inpaint", 16, random=0.5, seeds=[3]).known.shape == (1, 1, 16, 16)
    assert make_degradation("denoise", noise="sp", amount=0.2).amount == 0.2
    assert make_degradation("denoise").sigma == 0.1
    with pytest.raises(ValueError, match="exactly one of"):
        make_degradation("inpaint", 16, center=4, random=0.5)
    with pytest.raises(ValueError, match="does not take factor"):
        make_degradation("colorize", factor=2)
    with pytest.raises(ValueError, match="unknown task 'deblur'"):
        make_degradation("deblur")
    with pytest.raises(ValueError, match="takes amount, not sigma"):
        make_degradation("denoise", noise="sp", sigma=0.1)
