"""Metrics agree with scikit-image on real test images."""
import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from ganprior.metrics import ms_ssim, psnr, ssim
from ganprior.metrics.image import MS_SSIM_WEIGHTS, to_unit


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
    # 64 px images use 3 scales (64, 32, 16 >= the 11-px window): max_scales 3 changes nothing
    small = torch.nn.functional.avg_pool2d(a, 2)[..., :64, :64]
    assert ms_ssim(small, small * 0.9).item() == ms_ssim(small, small * 0.9, max_scales=3).item()
    assert ms_ssim(small, small * 0.9).item() != pytest.approx(ms_ssim(small, small * 0.9, max_scales=2).item(), abs=1e-4)


# --- closed forms and an independent numpy/scipy reference --------------------------------------

def window():
    """The SSIM window: Gaussian sigma 1.5 truncated at 3.5 sigma (11 taps), normalised."""
    k = np.arange(-5, 6)
    g = np.exp(-k ** 2 / (2 * 1.5 ** 2))
    return g / g.sum()


def ref_ssim_parts(a, b, data_range):
    """(mean SSIM, mean contrast-structure) of HxWxC float64 arrays, straight from Wang et al.
    (2004) eq. 13 with Gaussian-weighted local statistics over the valid region."""
    import scipy.ndimage

    def blur(x):
        for axis in (0, 1):
            x = scipy.ndimage.correlate1d(x, window(), axis=axis, mode="constant")
        return x[5:-5, 5:-5]  # valid: no window touches the padding
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
    return (lum * cs).mean(), cs.mean()


def ref_ms_ssim(a, b, data_range, scales):
    """Wang et al. (2003) eq. 7: prod_j cs_j^w_j (j < M) x ssim_M^w_M, 2x2 means between scales,
    the used weights renormalised (ganprior's choice for small images)."""
    w = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333][:scales])
    w = w / w.sum()
    out = 1.0
    for j in range(scales):
        s, cs = ref_ssim_parts(a, b, data_range)
        out *= max(s if j == scales - 1 else cs, 1e-6) ** w[j]
        h, wd = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a, b = (x[:h, :wd].reshape(h // 2, 2, wd // 2, 2, -1).mean(axis=(1, 3)) for x in (a, b))
    return out


def test_psnr_of_a_constant_offset_is_minus_20_log10_d():
    a = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)).double() * 0.5
    for d in (0.1, 0.01, 0.25):
        assert psnr(a, a + d).tolist() == pytest.approx([-20 * np.log10(d)] * 2, abs=1e-9)
    # data range 255: PSNR = 20 log10(255 / d)
    assert psnr(a * 255, a * 255 + 5, data_range=255).tolist() == pytest.approx([20 * np.log10(51)] * 2, abs=1e-9)
    # per image: one image off by 0.1, the other by 0.01 on half of its rows (MSE = 0.0001 / 2)
    b = a.clone()
    b[0] += 0.1
    b[1, :, :8] += 0.01
    assert psnr(a, b).tolist() == pytest.approx([20.0, 40 + 10 * np.log10(2)], abs=1e-9)
    assert psnr(a.float(), b.float()).dtype == torch.float32
    assert psnr(a, a).tolist() == pytest.approx([200.0, 200.0])  # MSE floored at 1e-20: finite


def test_ssim_of_constant_images_is_the_luminance_term():
    # no variance, no covariance: cs = C2 / C2 = 1, SSIM = (2 a b + C1) / (a^2 + b^2 + C1)
    a, b = (torch.full((1, 3, 16, 16), v, dtype=torch.float64) for v in (0.2, 0.6))
    assert ssim(a, b).item() == pytest.approx((2 * 0.12 + 1e-4) / (0.04 + 0.36 + 1e-4), rel=1e-9)
    c1 = (0.01 * 255) ** 2
    got = ssim(a * 255, b * 255, data_range=255).item()
    assert got == pytest.approx((2 * 51 * 153 + c1) / (51 ** 2 + 153 ** 2 + c1), rel=1e-9)


def test_ssim_of_complementary_stripes_in_closed_form():
    # a: columns 0, 1, 0, 1, ...; b = 1 - a. Every window puts the weight p = sum of the window's
    # odd taps on one value, so mu_a is p or 1 - p, var_a = var_b = p (1 - p) = -cov everywhere
    g = window()
    p = g[[0, 2, 4, 6, 8, 10]].sum()  # offsets -5, -3, -1, 1, 3, 5
    v, c1, c2 = p * (1 - p), 1e-4, 9e-4
    lum = (2 * v + c1) / (p ** 2 + (1 - p) ** 2 + c1)
    cs = (c2 - 2 * v) / (c2 + 2 * v)
    a = (torch.arange(24) % 2).double().expand(1, 3, 24, 24)
    assert ssim(a, 1 - a).item() == pytest.approx(lum * cs, rel=1e-9)
    # b = 0.25 + a / 2: positively correlated, cov = v / 2, var_b = v / 4
    mu_b = [0.25 + m / 2 for m in (p, 1 - p)]
    lums = [(2 * m * mb + c1) / (m ** 2 + mb ** 2 + c1) for m, mb in zip((p, 1 - p), mu_b)]
    cs = (v + c2) / (1.25 * v + c2)
    # the valid region has 14 columns, half of each phase
    assert ssim(a, 0.25 + a / 2).item() == pytest.approx(np.mean(lums) * cs, rel=1e-9)
    # after one 2x2 mean both are constant 0.5: every coarser scale gives 1, so MS-SSIM = cs^w0
    a = (torch.arange(44) % 2).double().expand(1, 3, 44, 44)  # 44 px: 3 scales (44, 22, 11)
    w0 = 0.0448 / (0.0448 + 0.2856 + 0.3001)
    assert ms_ssim(a, 0.25 + a / 2).item() == pytest.approx(cs ** w0, rel=1e-9)
    # anti-correlated (cs < 0): the fractional power needs cs clamped, at 1e-6
    assert ms_ssim(a, 1 - a).item() == pytest.approx(1e-6 ** w0, rel=1e-9)


@pytest.mark.parametrize("size, data_range, noise", [(352, 1.0, 0.08), (176, 1.0, 0.08), (64, 1.0, 0.2),
                                                      (96, 255.0, 0.05), (22, 1.0, 0.1),
                                                      (21, 1.0, 0.1)])
def test_ms_ssim_matches_the_numpy_reference(size, data_range, noise):
    img, noisy, a, b = pair("astronaut", size=size, noise=noise)
    scales = {352: 5, 176: 5, 96: 4, 64: 3, 22: 2, 21: 1}[size]  # the coarsest holds 11 px, at most 5
    expect = ref_ms_ssim(img * data_range, noisy * data_range, data_range, scales)
    got = ms_ssim(a * data_range, b * data_range, data_range=data_range).item()
    assert got == pytest.approx(expect, rel=1e-9)
    s, _ = ref_ssim_parts(img * data_range, noisy * data_range, data_range)
    assert ssim(a * data_range, b * data_range, data_range=data_range).item() == pytest.approx(s, rel=1e-9)


def test_ms_ssim_matches_pytorch_msssim_on_grey_images():
    # pytorch-msssim (Fast and differentiable MS-SSIM, v1.0) multiplies the scales per channel
    # and then averages channels, ganprior averages per scale: the same on one channel. Its
    # weights are used as given (they sum to 1.0001), ganprior's renormalised: pass those; and
    # its window is built in float32: pass the float64 one (else they differ by ~3e-6).
    pm = pytest.importorskip("pytorch_msssim")
    img, noisy, a, b = pair("camera", size=176)
    w = [x / sum(MS_SSIM_WEIGHTS) for x in MS_SSIM_WEIGHTS]
    win = torch.from_numpy(window()).reshape(1, 1, 1, -1)
    expect = pm.ms_ssim(a[:, :1], b[:, :1], data_range=1.0, weights=w, win=win).item()
    assert ms_ssim(a[:, :1], b[:, :1]).item() == pytest.approx(expect, rel=1e-12)


def test_float32_inputs_agree_with_float64():
    _, _, a, b = pair("coffee", size=64)
    assert ssim(a.float(), b.float()).dtype == torch.float32
    assert ssim(a.float(), b.float()).item() == pytest.approx(ssim(a, b).item(), abs=1e-5)
    assert ms_ssim(a.half(), b.half()).dtype == torch.float32  # computed in float32, not half


def test_metrics_stay_on_the_inputs_device():
    # the meta device stands in for a GPU here: a constant made on the CPU inside would raise
    a = torch.zeros(2, 3, 32, 32, device="meta")
    for f in (psnr, ssim, ms_ssim):
        out = f(a, a)
        assert out.device.type == "meta" and out.shape == (2,), f.__name__


def test_to_unit_maps_minus_one_one_to_zero_one_and_clamps():
    x = torch.tensor([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0])
    assert to_unit(x).tolist() == [0.0, 0.0, 0.5, 0.75, 1.0, 1.0]


def test_batched_and_differentiable():
    _, _, a, b = pair("coffee", size=64)
    ab = torch.cat([a, b]).float().requires_grad_(True)
    s = ssim(ab, torch.cat([b, b]).float())
    assert s.shape == (2,) and s[1].item() == pytest.approx(1.0)
    (1 - ms_ssim(ab, torch.cat([b, b]).float())).sum().backward()
    assert ab.grad.abs().sum() > 0


def test_small_image_error():
    with pytest.raises(ValueError, match=r"^images of \(8, 8\) px are smaller than the 11-pixel SSIM window$"):
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
    from ganprior.images import as_saved_image
    from ganprior.metrics.c2st import c2st_accuracy
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
