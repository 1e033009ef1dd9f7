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


# ---- weight-only work cached between inference calls (ops.cached_derived) ----

def _small_generator():
    from ganprior.nets.stylegan2 import StyleGAN2Generator
    torch.manual_seed(0)
    return StyleGAN2Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3,
                              mapping_kwargs=dict(num_layers=2),
                              synthesis_kwargs=dict(channel_base=64, channel_max=16)).eval()


def _uncached(G, ws, **kw):
    """The same network, computed from scratch (a deep copy has no cache entries)."""
    import copy
    with torch.no_grad():
        return copy.deepcopy(G).synthesize(ws, **kw)


@pytest.mark.parametrize("channels_last", [False, True])
def test_cache_is_reused_then_rebuilt_after_an_optimiser_step(channels_last):
    from ganprior.nets import ops
    G = _small_generator()
    ws = torch.randn(2, G.num_ws, G.w_dim)
    kw = dict(fused_modconv=False, channels_last=channels_last)
    layer = G.synthesis.b8.conv0
    with torch.no_grad():
        before = G.synthesize(ws, **kw)
        cached = ops._DERIVED[layer]["weight_sq"][1]
        G.synthesize(ws, **kw)
    assert ops._DERIVED[layer]["weight_sq"][1] is cached  # reused, not rebuilt
    assert ("weight_cl" in ops._DERIVED[layer]) == channels_last
    # a training step: weights need gradients (nothing cached), then change in place
    opt = torch.optim.SGD(G.parameters(), lr=0.5)
    G.synthesize(ws, **kw).square().mean().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    opt.step()
    with torch.no_grad():
        after = G.synthesize(ws, **kw)
    assert (after - before).abs().max() > 1e-3
    torch.testing.assert_close(after, _uncached(G, ws, **kw), rtol=0, atol=0)
    with torch.no_grad():
        layer.weight.mul_(-1)  # any in-place write (load_state_dict, copy_) counts too
        torch.testing.assert_close(G.synthesize(ws, **kw), _uncached(G, ws, **kw), rtol=0, atol=0)


def test_cache_is_rebuilt_after_to_dtype():
    from ganprior.nets.stylegan2 import SynthesisLayer
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 5, w_dim=3, resolution=6, use_noise=False).eval()
    x, w = torch.randn(2, 4, 6, 6), torch.randn(2, 3)
    with torch.no_grad():
        y32 = layer(x, w, fused_modconv=False)
        layer.double()
        y64 = layer(x.double(), w.double(), fused_modconv=False)
    assert y64.dtype == torch.float64  # a stale float32 cache would fail or give float32
    torch.testing.assert_close(y64.float(), y32, rtol=1e-5, atol=1e-5)


def test_inversion_after_inference_mode_uses_no_inference_tensors():
    """Weights frozen, gradient w.r.t. ws (inversion) after a call under inference_mode."""
    G = _small_generator().requires_grad_(False)
    ws = torch.randn(1, G.num_ws, G.w_dim)
    with torch.inference_mode():
        G.synthesize(ws, fused_modconv=False, channels_last=True)
    ws = ws.clone().requires_grad_(True)
    G.synthesize(ws, fused_modconv=False).square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0


@pytest.mark.parametrize("demodulate", [False, True])
def test_channels_last_1x1_modconv_equals_the_shared_conv(demodulate):
    """The batched-matmul path for channels-last 1x1 layers (toRGB) against the plain conv."""
    torch.manual_seed(0)
    x = torch.randn(3, 6, 5, 4, dtype=torch.float64)
    w, s, b = (torch.randn(2, 6, 1, 1, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64),
               torch.randn(2, dtype=torch.float64))
    kw = dict(demodulate=demodulate, fused=False, bias=b, gain=1.5)
    nchw = modulated_conv2d(x, w, s, **kw)
    cl = modulated_conv2d(x.contiguous(memory_format=torch.channels_last), w, s, **kw)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    expected = torch.einsum("oi,ni,nihw->nohw", w[:, :, 0, 0], s, x)
    if demodulate:
        expected = expected * ((w[:, :, 0, 0] ** 2) @ (s ** 2).t() + 1e-8).rsqrt().t()[..., None, None]
    expected = expected * 1.5 + 1.5 * b[:, None, None]
    torch.testing.assert_close(nchw, expected)
    torch.testing.assert_close(cl, expected)
