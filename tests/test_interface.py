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


# --- what inversion and editing reach for: w_avg, style inputs, noise, constant, padding ---------


def _padding_hooks(G, maps):
    """The hook-based padding replacement PadInv's optimisation used before synthesize() took
    `paddings` (kept here as the reference the override must reproduce bit for bit)."""
    handles, layers = [], {r: getattr(G.synthesis, f"b{r}").conv1 for r in maps}

    def hook_for(r):
        ring = torch.ones(r + 2, r + 2)
        ring[1:-1, 1:-1] = 0
        return lambda module, args: (torch.nn.functional.pad(args[0], [1, 1, 1, 1])
                                     + maps[r] * ring,) + tuple(args[1:])

    for r, layer in layers.items():
        handles.append(layer.register_forward_pre_hook(hook_for(r)))
        layer.padding = 0
    return handles, layers


def test_w_avg_is_where_truncation_pulls():
    for G in (small_stylegan2(), generators()["dcgan"]):
        z = torch.randn(2, G.z_dim)
        assert G.w_avg.shape == (G.w_dim,)
        torch.testing.assert_close(G.z_to_w(z, truncation_psi=0.0),
                                   G.w_avg.expand(2, G.num_ws, -1), rtol=0, atol=0)
    assert torch.equal(generators()["dcgan"].w_avg, torch.zeros(12))


@pytest.mark.parametrize("name", ["sg2-skip", "sg2-resnet", "dcgan"])
def test_modulation_weights_are_the_maps_to_the_styles(name):
    G = generators()[name]
    inputs = G.modulation_weights()
    if name == "dcgan":  # the first ConvT on z as a 1x1 map is linear: features = W z
        (s,) = inputs
        z = torch.randn(3, G.z_dim)
        torch.testing.assert_close(G.main[0](z[:, :, None, None]).flatten(1), z @ s.weight.t())
        return
    ws = torch.randn(2, G.num_ws, G.w_dim)
    for s in inputs:  # styles = W w + b, with the gains the forward applies
        layer = G.synthesis.get_submodule(s.name)
        w = ws[:, s.ws_index]
        gain = layer.weight_gain if s.name.endswith("torgb") else 1.0
        want = layer.affine(w) * gain
        bias = layer.affine.bias * layer.affine.bias_gain * gain
        torch.testing.assert_close(w @ s.weight.t() + bias, want, atol=1e-5, rtol=0)
    seen = {}  # every style input reads the ws row it claims

    def record(name):
        return lambda module, args, out: seen.__setitem__(name, args[0])

    handles = [G.synthesis.get_submodule(s.name).affine.register_forward_hook(record(s.name))
               for s in inputs]
    with torch.no_grad():
        G.synthesize(ws)
    for h in handles:
        h.remove()
    assert sorted(seen) == sorted(s.name for s in inputs)
    for s in inputs:
        assert torch.equal(seen[s.name], ws[:, s.ws_index])
    convs = [s for s in inputs if not s.name.endswith("torgb")]
    assert len(convs) == 2 * int(np.log2(G.img_resolution)) - 3  # b4 has one conv
    assert max(s.ws_index for s in inputs) == G.num_ws - 1


def test_noise_layers_and_noise_override():
    G = small_stylegan2()
    layers = G.noise_layers()
    assert list(layers)[:3] == ["b4.conv1", "b8.conv0", "b8.conv1"]
    assert layers["b8.conv0"] == 8 and layers[f"b{G.img_resolution}.conv1"] == G.img_resolution
    ws = G.z_to_w(torch.randn(2, G.z_dim))
    stored = {k: G.synthesis.get_submodule(k).noise_const.expand(2, 1, -1, -1) for k in layers}
    g = torch.Generator().manual_seed(1)
    maps = {k: torch.randn(2, 1, r, r, generator=g) for k, r in layers.items()}
    with torch.no_grad():
        plain = G.synthesize(ws, "const")
        assert torch.equal(G.synthesize(ws, "const", noise=stored), plain)
        new = G.synthesize(ws, "const", noise=maps)
        # reference: the maps swapped in for the stored buffers (what inversion did before)
        saved = {k: G.synthesis.get_submodule(k)._buffers["noise_const"] for k in layers}
        for k in layers:
            G.synthesis.get_submodule(k)._buffers["noise_const"] = maps[k]
        swapped = G.synthesize(ws, "const")
        for k in layers:
            G.synthesis.get_submodule(k)._buffers["noise_const"] = saved[k]
    assert torch.equal(new, swapped) and (new - plain).abs().max() > 1e-3
    one = {"b8.conv1": maps["b8.conv1"]}  # layers left out keep their stored noise
    with torch.no_grad():
        assert torch.equal(G.synthesize(ws, "const", noise=one),
                           G.synthesize(ws, "const", noise={**stored, **one}))


@pytest.mark.parametrize("arch", ["skip", "resnet"])
def test_padding_and_const_overrides_match_the_hooks(arch):
    G = small_stylegan2(arch=arch)
    pads = G.padding_resolutions()
    assert list(pads) == [4, 8, 16, 32]
    assert pads[8] == G.synthesis.b8.conv1.weight.shape[1]
    assert G.const_input.shape == G.synthesis.b4.const.shape
    ws = G.z_to_w(torch.randn(2, G.z_dim))
    g = torch.Generator().manual_seed(2)
    maps = {r: torch.randn(2, pads[r], r + 2, r + 2, generator=g) for r in (4, 8, 16)}
    const = torch.randn(2, *G.const_input.shape, generator=g)
    with torch.no_grad():
        plain = G.synthesize(ws)
        zeros = {r: torch.zeros_like(m) for r, m in maps.items()}
        assert torch.equal(G.synthesize(ws, paddings=zeros), plain)
        assert torch.equal(G.synthesize(ws, const=G.const_input.expand(2, -1, -1, -1)), plain)
        new = G.synthesize(ws, paddings=maps, const=const)
        handles, layers = _padding_hooks(G, maps)
        try:
            hooked = G.synthesis.run_blocks(ws, x=const, noise_mode="const")[1]
        finally:
            for h in handles:
                h.remove()
            for layer in layers.values():
                layer.padding = 1
    assert torch.equal(new, hooked) and (new - plain).abs().max() > 1e-3
    with torch.no_grad():  # the generator is left as it was
        assert torch.equal(G.synthesize(ws), plain)
    m = maps[8].clone().requires_grad_(True)
    G.synthesize(ws, paddings={8: m}).square().mean().backward()
    assert m.grad[:, :, 0].abs().sum() > 0 and m.grad[:, :, 1:-1, 1:-1].abs().sum() == 0


def test_overrides_are_checked():
    G = small_stylegan2()
    ws = G.z_to_w(torch.randn(2, G.z_dim))
    with pytest.raises(ValueError, match="no noise layer 'b4.conv0'"):
        G.synthesize(ws, noise={"b4.conv0": torch.zeros(2, 1, 4, 4)})
    with pytest.raises(ValueError, match=r"noise b8.conv0 must be \[2, 1, 8, 8\], got \[1, 1, 8, 8\]"):
        G.synthesize(ws, noise={"b8.conv0": torch.zeros(1, 1, 8, 8)})
    with pytest.raises(ValueError, match="const must be"):
        G.synthesize(ws, const=torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="no padded conv at resolution 64"):
        G.synthesize(ws, paddings={64: torch.zeros(2, 1, 66, 66)})
    with pytest.raises(ValueError, match=r"padding 8 must be \[2, "):
        G.synthesize(ws, paddings={8: torch.zeros(2, 1, 8, 8)})
    dc = generators()["dcgan"]
    assert dc.noise_layers() == {} and dc.padding_resolutions() == {} and dc.const_input is None
    with pytest.raises(ValueError, match="has no constant input"):
        dc.synthesize(dc.z_to_w(torch.randn(1, dc.z_dim)), const=torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize("name", ["dcgan", "sg2-skip", "sg2-cond"])
def test_shapes_are_checked_at_the_entry_points(name):
    G = generators()[name]
    c = G.class_vector(2, 0 if G.c_dim else None)
    ws = G.z_to_w(torch.randn(2, G.z_dim), c)
    with pytest.raises(ValueError, match=rf"z must be \[N, {G.z_dim}\], got \[2, {G.z_dim + 1}\]"):
        G.z_to_w(torch.randn(2, G.z_dim + 1), c)
    want = rf"ws must be \[N, {G.num_ws}, {G.w_dim}\]"
    with pytest.raises(ValueError, match=want + rf", got \[2, {G.num_ws + 1}, {G.w_dim}\]"):
        G.synthesize(torch.cat([ws, ws[:, :1]], 1))
    with pytest.raises(ValueError, match=want + rf", got \[2, {G.num_ws}, {G.w_dim - 1}\]"):
        G.synthesize(ws[..., 1:])
    with pytest.raises(ValueError, match=want):
        G.synthesize(ws[:, 0])  # 2-D
    layer = G.layer_names[0]
    with pytest.raises(ValueError, match=want):
        G.features_at(layer, ws[:, :-1] if G.num_ws > 1 else ws[..., :-1])
    f = G.features_at(layer, ws)
    with pytest.raises(ValueError, match=rf"features at {layer} must be \[N, {G.feature_channels(layer)}, "):
        G.synthesize_from(layer, f[:, 1:], ws)
    with pytest.raises(ValueError, match="features at"):
        G.synthesize_from(layer, f[..., :-1], ws)
    if G.c_dim:
        with pytest.raises(ValueError, match=rf"conditional: c must be \[2, {G.c_dim}\], got None"):
            G.z_to_w(torch.randn(2, G.z_dim))
    if G.arch == "stylegan2":
        with pytest.raises(ValueError, match="ws has 1 rows but the features 2"):
            G.synthesize_from(layer, f, ws[:1])
