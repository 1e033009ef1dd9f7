"""The pure-torch ops against direct numpy definitions, and their gradients."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganprior.nets.ops import (bias_act, conv2d_resample, downsample2d, modulated_conv2d,
                               setup_filter, upfirdn2d, upsample2d)


def upfirdn_numpy(x, f, up, down, pad):
    """The definition: zero-insert by `up`, pad/crop, convolve with flipped... i.e. true
    convolution with f, keep every `down`-th sample."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = pad
    u = np.zeros((n, c, h * up, w * up))
    u[:, :, ::up, ::up] = x
    full = np.zeros((n, c, h * up + max(py0, 0) + max(py1, 0), w * up + max(px0, 0) + max(px1, 0)))
    full[:, :, max(py0, 0):max(py0, 0) + h * up, max(px0, 0):max(px0, 0) + w * up] = u
    full = full[:, :, max(-py0, 0):full.shape[2] - max(-py1, 0), max(-px0, 0):full.shape[3] - max(-px1, 0)]
    kh, kw = f.shape
    oh, ow = full.shape[2] - kh + 1, full.shape[3] - kw + 1
    out = np.zeros((n, c, oh, ow))
    fk = f[::-1, ::-1]  # convolution = correlation with the flipped kernel
    for i in range(kh):
        for j in range(kw):
            out += fk[i, j] * full[:, :, i:i + oh, j:j + ow]
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 2, 0, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (2, 2, (-1, 2, 1, 0)), (4, 1, (3, 2, 3, 2)),
                                         # the fast paths: cropped/extended transposed conv, strides
                                         (2, 1, (-2, 4, 0, 3)), (3, 2, (1, 0, 2, 2)),
                                         (1, 3, (2, 2, -1, 1)), (2, 1, (5, 5, 0, 0))])
def test_upfirdn2d_matches_definition(up, down, pad):
    rng = np.random.RandomState(0)
    x = rng.randn(2, 3, 7, 6)
    f = rng.rand(4, 3)  # asymmetric on purpose: catches a missing flip
    ours = upfirdn2d(torch.from_numpy(x), torch.from_numpy(f), up=up, down=down, padding=list(pad))
    np.testing.assert_allclose(ours.numpy(), upfirdn_numpy(x, f, up, down, pad), atol=1e-10)


def test_upfirdn2d_random_cases_match_definition():
    """Many shapes, filters and paddings, including crops that reach past the data."""
    rng = np.random.RandomState(1)
    checked = 0
    for _ in range(300):
        up, down = rng.randint(1, 5), rng.randint(1, 4)
        h, w, kh, kw = rng.randint(1, 7), rng.randint(1, 7), rng.randint(1, 6), rng.randint(1, 6)
        pad = tuple(int(p) for p in rng.randint(-5, 7, size=4))
        if min(h * up + pad[2] + pad[3] - kh, w * up + pad[0] + pad[1] - kw) < 0:
            continue  # no output
        x, f = rng.randn(1, 2, h, w), rng.rand(kh, kw)
        ours = upfirdn2d(torch.from_numpy(x), torch.from_numpy(f), up=up, down=down, padding=list(pad))
        np.testing.assert_allclose(ours.numpy(), upfirdn_numpy(x, f, up, down, pad), atol=1e-10,
                                   err_msg=f"up {up} down {down} pad {pad} x {h}x{w} f {kh}x{kw}")
        checked += 1
    assert checked > 150


def test_upfirdn2d_separable_filter_and_gain():
    rng = np.random.RandomState(2)
    x, taps = rng.randn(2, 3, 5, 6), rng.rand(4)
    ours = upfirdn2d(torch.from_numpy(x), torch.from_numpy(taps), up=2, padding=[2, 1, 2, 1], gain=4)
    expected = 4 * upfirdn_numpy(x, np.outer(taps, taps), 2, 1, (2, 1, 2, 1))
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("up,down,pad", [(2, 1, [2, 1, 2, 1]), (1, 2, [1, 1, 1, 1]), (2, 1, [-1, 3, 0, 2])])
def test_upfirdn2d_double_backward(up, down, pad):
    """R1 differentiates through the ADA resampling twice."""
    f = torch.rand(4, 3, dtype=torch.float64)
    x = torch.randn(1, 1, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x: upfirdn2d(x, f, up=up, down=down, padding=pad), (x,))


def test_resampling_shapes_and_dc_gain():
    f = setup_filter([1, 3, 3, 1])
    x = torch.ones(1, 2, 8, 8)
    up, down = upsample2d(x, f), downsample2d(x, f)
    assert up.shape[-1] == 16 and down.shape[-1] == 4
    # a constant image stays constant away from the borders (unit DC gain)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.ones_like(up[..., 2:-2, 2:-2]))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.ones_like(down[..., 1:-1, 1:-1]))


def test_conv2d_resample_up_equals_explicit_composition():
    """Transposed-conv fast path == zero insertion + FIR + plain conv with the flipped kernel."""
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1])
    x, w = torch.randn(2, 3, 5, 5, dtype=torch.float64), torch.randn(4, 3, 3, 3, dtype=torch.float64)
    fast = conv2d_resample(x, w, f=f, up=2, padding=1)
    # NVIDIA semantic for up=2 layers: the kernel is used as a transposed-conv kernel
    slow = upfirdn2d(x, f.double(), up=2, padding=[3, 2, 3, 2], gain=4)  # pad 1 + FIR taps
    slow = F.conv2d(slow, w.flip([2, 3]))
    torch.testing.assert_close(fast, slow)


def test_fused_and_unfused_modconv_agree_including_upsampling():
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1])
    x, w = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3)
    s = torch.randn(3, 4)
    for up in (1, 2):
        a = modulated_conv2d(x, w, s, up=up, padding=1, resample_filter=f, fused=True)
        b = modulated_conv2d(x, w, s, up=up, padding=1, resample_filter=f, fused=False)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_demodulation_normalises_output_scale():
    torch.manual_seed(0)
    x, w = torch.randn(1, 64, 16, 16), torch.randn(32, 64, 3, 3)
    big = modulated_conv2d(x, w, torch.full((1, 64), 100.0), padding=1)
    small = modulated_conv2d(x, w, torch.full((1, 64), 0.01), padding=1)
    torch.testing.assert_close(big, small, atol=1e-4, rtol=1e-4)


def test_bias_act():
    x = torch.tensor([[-1.0, 2.0]])
    torch.testing.assert_close(bias_act(x, torch.tensor([0.5, 0.5]), "lrelu"),
                               torch.tensor([[-0.1 * 2 ** 0.5, 2.5 * 2 ** 0.5]]))
    assert bias_act(torch.tensor([[1000.0]]), act="lrelu", clamp=256).item() == 256


def test_gradients_are_exact():
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    for up in (1, 2):
        torch.autograd.gradcheck(lambda x, w, s: modulated_conv2d(x, w, s, up=up, padding=1,
                                                                   resample_filter=f), (x, w, s))
    torch.autograd.gradcheck(lambda x: downsample2d(x, f), (x,))
