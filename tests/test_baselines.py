"""The classical baselines on the restoration tasks' observations."""
import numpy as np
import pytest
import torch
from PIL import Image

from ganprior.restore.baselines import BASELINES, estimate_sigma, run_baseline
from ganprior.restore.degrade import Downsample, GaussianNoise, Gray, Mask, SaltPepper


def smooth_image(res=64, n=1):
    """Low-frequency colour image in [-0.6, 0.6]: sums of slow sinusoids, different per image."""
    y, x = torch.meshgrid(torch.linspace(0, 1, res), torch.linspace(0, 1, res), indexing="ij")
    rows = [torch.stack([0.3 * torch.sin(2 * (x + c + i)) + 0.3 * torch.cos(3 * y - c)
                         for c in range(3)]) for i in range(n)]
    return torch.stack(rows)


def mse(a, b):
    return float(((a - b) ** 2).mean())


def test_the_baselines_of_each_task():
    assert BASELINES == {"colorize": ("gray",), "super-resolve": ("bicubic",),
                         "inpaint": ("biharmonic",), "denoise": ("nlm", "tv")}


def test_bicubic_keeps_a_constant_and_is_pils_bicubic():
    low = torch.full((2, 3, 8, 8), 0.3)
    up = run_baseline("bicubic", low, Downsample(4), 32)
    assert up.shape == (2, 3, 32, 32)
    assert torch.allclose(up, torch.full_like(up, 0.3), atol=1e-6)
    a = np.random.RandomState(0).rand(8, 8).astype(np.float32) * 2 - 1
    pil = np.asarray(Image.fromarray(a, mode="F").resize((32, 32), Image.BICUBIC))
    ours = run_baseline("bicubic", torch.from_numpy(a)[None, None], Downsample(4), 32)[0, 0]
    inside = np.abs(pil) < 0.99  # ours is clamped to [-1, 1], PIL's float image is not
    # PIL's kernel in float32 both ways: rounding only (measured 1.8e-7)
    assert np.abs(pil - ours.numpy())[inside].max() < 1e-5


def test_biharmonic_restores_a_linear_ramp():
    # a linear function is biharmonic (its Laplacian vanishes), so the biharmonic fill of a
    # hole in it is the ramp itself, up to the linear solver's rounding
    # (scikit-image's 13-point stencil is cut at the image's edge, so a hole there is filled
    # only approximately: the random holes keep 2 px from the edge)
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    ramp = torch.stack([0.02 * x - 0.01 * y - 0.2, 0.015 * y - 0.3, -0.01 * x + 0.1])[None]
    edge = torch.ones(1, 1, 32, 32)
    edge[..., 2:-2, 2:-2] = 0
    scattered = Mask(Mask.random(0.5, 32, [4]).known.maximum(edge))
    for mask in (Mask.center_square(12, 32), scattered):
        out = run_baseline("biharmonic", mask.corrupt(ramp), mask, 32)
        assert float((out - ramp).abs().max()) < 1e-4
        # and the baseline is real: the zero-filled observation is far from the ramp
        assert float((mask.corrupt(ramp) - ramp).abs().max()) > 0.1


def test_biharmonic_uses_each_images_own_mask():
    clean = smooth_image(32, n=2)
    mask = Mask.random(0.5, 32, [1, 2])
    out = run_baseline("biharmonic", mask.corrupt(clean), mask, 32)
    known = mask.known.expand_as(clean).bool()
    assert torch.allclose(out[known], clean[known], atol=1e-6)
    assert mse(out, clean) < 1e-4 < mse(mask.corrupt(clean), clean)


@pytest.mark.parametrize("name", ["nlm", "tv"])
def test_denoisers_reduce_the_error_of_a_noisy_smooth_image(name):
    clean = smooth_image(64, n=2)
    noise = GaussianNoise(0.1, seeds=[7, 8])
    noisy = noise.corrupt(clean)
    out = run_baseline(name, noisy, noise, 64)
    # noisy MSE ~ (2 * 0.1)^2 = 0.04 in [-1, 1] units; a real denoiser removes most of it
    assert abs(mse(noisy, clean) - 0.04) < 0.002
    for i in range(2):
        assert mse(out[i], clean[i]) < 0.25 * mse(noisy[i], clean[i])


@pytest.mark.parametrize("name", ["nlm", "tv"])
def test_denoisers_reduce_salt_and_pepper(name):
    # the median-based sigma of impulse noise is ~0 (the impulses are its outliers): the RMS
    # form sets the denoisers instead, and they do remove part of it
    clean = smooth_image(64)
    sp = SaltPepper(0.05, seeds=[1])
    noisy = sp.corrupt(clean)
    out = run_baseline(name, noisy, sp, 64)
    assert mse(out, clean) < 0.5 * mse(noisy, clean)


@pytest.mark.parametrize("name", ["nlm", "tv"])
def test_denoisers_leave_a_noise_free_image_alone(name):
    ramp = torch.linspace(-0.5, 0.5, 16).expand(1, 3, 16, 16)  # estimated sigma exactly 0
    assert torch.equal(run_baseline(name, ramp, GaussianNoise(0.1), 16), ramp)


def test_gray_baseline_is_the_observation():
    observed = Gray()(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert torch.equal(run_baseline("gray", observed, Gray(), 16), observed)


def test_estimate_sigma_hand_computed():
    # checkerboard +-s: every Haar diagonal coefficient is (s + s + s + s) / 2 = 2 s
    s = 0.05
    board = np.fromfunction(lambda i, j: np.where((i + j) % 2, -s, s), (16, 16))
    assert estimate_sigma(np.repeat(board[..., None], 3, 2)) == pytest.approx(2 * s / 0.6745)
    # a separable linear ramp has no diagonal detail at all
    ramp = np.fromfunction(lambda i, j: 0.01 * i + 0.02 * j, (16, 16))[..., None]
    assert estimate_sigma(ramp) == pytest.approx(0, abs=1e-12)
    # white noise: its own std, within 5 % on 3 x 64 x 64 samples
    noise = np.random.RandomState(0).randn(64, 64, 3) * 0.1 + 0.5
    assert estimate_sigma(noise) == pytest.approx(0.1, rel=0.05)
    assert estimate_sigma(noise, impulses=True) == pytest.approx(0.1, rel=0.05)
    # one impulse of 1 in a 2 x 2 block of an otherwise flat image: coefficient 1/2 out of
    # 64 blocks per channel -> median 0, RMS sqrt(0.25 / 64) = 1/16
    flat = np.zeros((16, 16, 1))
    flat[5, 9] = 1
    assert estimate_sigma(flat) == 0
    assert estimate_sigma(flat, impulses=True) == pytest.approx(1 / 16)


def test_a_baseline_that_does_not_fit_is_one_line():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="baseline bicubic is for super-resolve, not for mask "
                                         r"\(its baselines: biharmonic\)"):
        run_baseline("bicubic", x, Mask.center_square(4, 16), 16)
    with pytest.raises(ValueError, match="baseline tv is for denoise, not for gray"):
        run_baseline("tv", x, Gray(), 16)
    with pytest.raises(ValueError, match="unknown baseline 'median'"):
        run_baseline("median", x, Gray(), 16)
    with pytest.raises(ValueError, match="the observation is 16x16, downsample of 64 px images "
                                         "gives 8x8"):
        run_baseline("bicubic", x, Downsample(8), 64)
    with pytest.raises(ValueError, match="factor 3 does not divide the resolution 16"):
        run_baseline("bicubic", x, Downsample(3), 16)
    with pytest.raises(ValueError, match="NaN"):
        run_baseline("gray", torch.full((1, 3, 16, 16), float("nan")), Gray(), 16)
    with pytest.raises(ValueError, match="2 rows for 1 images"):
        run_baseline("biharmonic", x, Mask.random(0.5, 16, [1, 2]), 16)
