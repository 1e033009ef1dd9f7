"""Optional: our LPIPS-VGG against the `lpips` package's own, on the real weights.

Runs only where the lpips package imports (it needs torchvision) and both weight files are
found (`ganprior weights list`); it skips otherwise. Both sides get the same VGG16 backbone
(ours, poured into lpips' slices, so nothing is downloaded) and lpips reads its own linear
layers from its package, so a difference can only come from the computation, or from our
copy of the linear layers not being the package's.
"""
import warnings

import pytest
import torch

from ganprior import weights


@pytest.fixture
def reference(monkeypatch):
    monkeypatch.delenv("GANPRIOR_WEIGHTS_ONLY", raising=False)  # real weights, wherever they are
    try:
        import lpips
    except Exception as e:  # not installed, or its torchvision does not import with this torch
        pytest.skip(f"the lpips package does not import here ({type(e).__name__}: {e})")
    missing = [n for n in ("vgg16", "lpips-vgg") if weights.find(n) is None]
    if missing:
        pytest.skip(f"weights not found: {', '.join(missing)} (see `ganprior weights list`)")
    from ganprior.nets import vgg
    monkeypatch.setattr(vgg, "_loaded", {})  # load what is installed, not an earlier copy
    ours = vgg.load_lpips("cpu")
    with warnings.catch_warnings():  # torchvision's deprecation of `pretrained=`
        warnings.simplefilter("ignore")
        theirs = lpips.LPIPS(net="vgg", version="0.1", pnet_rand=True, verbose=False).eval()
    slices = [range(0, 4), range(4, 9), range(9, 16), range(16, 23), range(23, 30)]
    backbone = {f"net.slice{k + 1}.{i}.{p}": ours.vgg.features[i].state_dict()[p]
                for k, s in enumerate(slices) for i in s
                for p in ours.vgg.features[i].state_dict()}
    result = theirs.load_state_dict(backbone, strict=False)
    assert not result.unexpected_keys
    assert not [k for k in result.missing_keys if k.startswith("net.")]
    return ours, theirs


def image_pairs():
    """Smooth random images and distorted copies: noise, a shift, a contrast change."""
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.interpolate(torch.rand(3, 3, 16, 16, generator=g) * 2 - 1,
                                        size=64, mode="bilinear", align_corners=False)
    noisy = (a + 0.2 * torch.randn(a.shape, generator=g)).clamp(-1, 1)
    shifted = torch.roll(a, shifts=3, dims=-1)
    flat = a * 0.5
    return a.repeat(3, 1, 1, 1), torch.cat([noisy, shifted, flat])


def test_lpips_matches_the_lpips_package(reference):
    ours, theirs = reference
    for i in range(5):  # the very linear layers lpips ships
        assert torch.equal(ours.lins[i], getattr(theirs, f"lin{i}").model[1].weight)
    a, b = image_pairs()
    with torch.no_grad():
        want = theirs(a, b).reshape(-1)
        got = ours(a, b)
    assert want.min() > 0.01  # real distortions, not a comparison of zeros
    assert torch.allclose(got, want, atol=1e-4, rtol=0), (got, want)
