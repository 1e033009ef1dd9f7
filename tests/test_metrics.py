"""Metrics agree with scikit-image on real test images."""
import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from ganprior.metrics import ms_ssim, psnr, ssim


def pair(name, size=96, noise=0.08, seed=0):
    img = getattr(data, name)()
    img = resize(img, (size, size), anti_aliasing=True).astype(np.float64)
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    rng = np.random.RandomState(seed)
    noisy = np.clip(img + rng.normal(0, noise, img.shape), 0, 1)
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None]  # noqa: E731
    return img, noisy, t(img), t(noisy)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "camera"])
def test_psnr_and_ssim_match_skimage(name):
    img, noisy, a, b = pair(name)
    ref_psnr = peak_signal_noise_ratio(img, noisy, data_range=1)
    ref_ssim = structural_similarity(img, noisy, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, channel_axis=-1, data_range=1)
    assert abs(psnr(a, b).item() - ref_psnr) < 1e-6
    assert abs(ssim(a, b).item() - ref_ssim) < 1e-6


def test_ms_ssim_properties():
    img, noisy, a, b = pair("astronaut", size=176)
    assert ms_ssim(a, a).item() == pytest.approx(1.0, abs=1e-6)
    # one scale is SSIM itself
    assert ms_ssim(a, b, max_scales=1).item() == pytest.approx(ssim(a, b).item(), abs=1e-7)
    worse = pair("astronaut", size=176, noise=0.2)[3]
    assert ms_ssim(a, worse) < ms_ssim(a, b) < 1
    # 64 px images use 3 scales (64, 32, 16 >= the 11-px window) and still work
    small = torch.nn.functional.avg_pool2d(a, 2)[..., :64, :64]
    assert 0 < ms_ssim(small, small * 0.9).item() < 1


def test_batched_and_differentiable():
    _, _, a, b = pair("coffee", size=64)
    ab = torch.cat([a, b]).float().requires_grad_(True)
    s = ssim(ab, torch.cat([b, b]).float())
    assert s.shape == (2,) and s[1].item() == pytest.approx(1.0)
    (1 - ms_ssim(ab, torch.cat([b, b]).float())).sum().backward()
    assert ab.grad.abs().sum() > 0


def test_small_image_error():
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_lpips_structure_with_stand_in_weights():
    """LPIPS' computation (official weights are not available offline): zero for identical
    images, symmetric, growing with the distortion, per image."""
    from ganprior.nets.vgg import LPIPS, VGG16Features
    torch.manual_seed(0)
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1)
           for i, c in enumerate([64, 128, 256, 512, 512])}
    lp = LPIPS(VGG16Features().eval(), lin)
    _, _, a, b = pair("astronaut", size=64)
    a, b = a.float() * 2 - 1, b.float() * 2 - 1
    worse = (a + 0.5 * torch.randn_like(a)).clamp(-1, 1)
    with torch.no_grad():
        assert lp(a, a).abs().max() < 1e-6
        assert lp(a, b).item() == pytest.approx(lp(b, a).item(), rel=1e-5)
        assert 0 < lp(a, b).item() < lp(a, worse).item()
        assert lp(torch.cat([a, a]), torch.cat([a, b])).shape == (2,)


def test_weights_download_offline_is_a_clear_error(tmp_path, monkeypatch):
    from ganprior import weights
    from ganprior.errors import GanpriorError
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path))
    bad = weights.WeightFile("vgg16", "vgg16-397923af.pth", "http://127.0.0.1:9/vgg16.pth",
                             "397923af", "test")
    monkeypatch.setitem(weights.REGISTRY, "vgg16", bad)
    with pytest.raises(GanpriorError, match="cannot download vgg16.*by hand"):
        weights.download("vgg16", timeout=5)
    assert weights.find("vgg16") is None


def test_c2st_separates_what_differs_and_not_what_does_not():
    from ganprior.metrics.c2st import c2st_accuracy
    g = torch.Generator().manual_seed(0)
    smooth = lambda n: torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=g) * 2 - 1, size=32, mode="bilinear")  # noqa: E731
    a, b = smooth(200), smooth(200)
    noise = torch.rand(200, 3, 32, 32, generator=g) * 2 - 1
    same = c2st_accuracy(a, b, steps=150)
    different = c2st_accuracy(a, noise, steps=150)
    assert abs(same - 0.5) < 0.1 and different > 0.95
    assert c2st_accuracy(a, noise, steps=150) == different  # deterministic


def test_c2st_judges_images_as_saved_not_raw_floats(tmp_path):
    """A generator's float output is compared as the 8-bit image it would be saved as: values
    beyond [-1, 1], which no saved image keeps, must not give the fakes away."""
    from ganprior.images import load_image, save_image, to_uint8
    from ganprior.metrics.c2st import as_saved_image, c2st_accuracy
    g = torch.Generator().manual_seed(1)
    raw = torch.rand(4, 3, 16, 16, generator=g) * 2.4 - 1.2
    save_image(to_uint8(raw)[0], tmp_path / "x.png")
    assert torch.equal(as_saved_image(raw[:1]), load_image(tmp_path / "x.png", 16))
    smooth = lambda n: torch.nn.functional.interpolate(torch.randn(n, 3, 4, 4, generator=g) * 1.5, size=16, mode="bilinear")  # noqa: E731
    real = as_saved_image(smooth(300))  # as loaded from files: on the grid, many pixels saturated
    assert torch.equal(as_saved_image(real), real)
    fake = smooth(300)  # the same distribution, but raw: saturated pixels overshoot +-1
    fake = torch.where(fake.abs() > 1, fake, as_saved_image(fake))
    acc = c2st_accuracy(real, fake, steps=150)
    assert acc == c2st_accuracy(real, as_saved_image(fake), steps=150) and abs(acc - 0.5) < 0.1
