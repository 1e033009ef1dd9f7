"""pix2pixHD networks, input assembly and losses (nets/pix2pixhd.py, train/pix2pixhd_loss.py):
shapes at small sizes, the boundary map and instance pooling against hand-made / loop
references, the loss weighting against hand-computed values, one checkpoint for G + D + E."""
import json
import warnings

import pytest
import torch

from ganprior.checkpoints.native import load_native, save_native
from ganprior.nets.pix2pixhd import (FeatureEncoder, GlobalGenerator, LocalEnhancer,
                                     MultiscaleDiscriminator, discriminator_input_nc,
                                     downsample2x, generator_input_nc, instance_average,
                                     instance_boundaries, make_input)
from ganprior.nets.registry import build
from ganprior.nets.vgg import imagenet_normalise
from ganprior.nets.vgg19 import RELU_INDEX, VGG19Features
from ganprior.train.pix2pixhd_loss import (VGGLoss, Pix2PixHDLoss, feature_matching_loss,
                                           gan_loss, load_vgg_loss)


def small_nets(seed=0):
    torch.manual_seed(seed)
    G = LocalEnhancer(input_nc=generator_input_nc(5, True, 3), ngf=4, n_downsample_global=2,
                      n_blocks_global=1, n_local_enhancers=1, n_blocks_local=1)
    D = MultiscaleDiscriminator(discriminator_input_nc(5, True), ndf=4, n_layers=2, num_D=2)
    E = FeatureEncoder(ngf=4, n_downsampling=2)
    return G, D, E


# --- shapes ---------------------------------------------------------------------------------

def test_global_generator_shapes_and_channel_widths():
    G = GlobalGenerator(input_nc=7, output_nc=3, ngf=4, n_downsampling=3, n_blocks=2)
    x = torch.randn(2, 7, 24, 40)
    y = G(x)
    assert y.shape == (2, 3, 24, 40) and y.abs().max() <= 1  # tanh
    assert G.features(x).shape == (2, 4, 24, 40)
    assert G.size_multiple == 8
    # c7s1-4, d8, d16, d32, 2 x R32, u16, u8, u4, c7s1-3
    convs = [m for m in G.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert [m.out_channels for m in convs] == [4, 8, 16, 32, 32, 32, 32, 32, 16, 8, 4, 3]
    with pytest.raises(ValueError, match="multiples of 8, not 24x36"):
        G(torch.randn(1, 7, 24, 36))
    with pytest.raises(ValueError, match=r"takes \[N, 7, H, W\]"):
        G(torch.randn(1, 6, 24, 40))


@pytest.mark.parametrize("n_local", [1, 2])
def test_local_enhancer_runs_the_global_net_on_the_downsampled_input(n_local):
    torch.manual_seed(0)
    L = LocalEnhancer(input_nc=6, ngf=2, n_downsample_global=1, n_blocks_global=1,
                      n_local_enhancers=n_local, n_blocks_local=1)
    assert L.size_multiple == 2 ** (1 + n_local)
    x = torch.randn(2, 6, 16, 16)
    assert L(x).shape == (2, 3, 16, 16)
    # the global net has ngf * 2^n_local filters and sees the input halved n_local times
    G1 = GlobalGenerator(6, 3, 2 * 2 ** n_local, 1, 1)
    torch.nn.init.normal_(G1.body[1].weight)
    L.load_global(G1)
    small = x
    for _ in range(n_local):
        small = downsample2x(small)
    out = L.global_body(small)
    assert torch.equal(out, G1.features(small))
    for stage, level in zip(L.enhancers, [downsample2x(x), x][-n_local:]):
        out = stage(level, out)  # coarse to fine: each adds the coarser features
    assert torch.allclose(L.head(out), L(x), atol=1e-6)
    assert {id(p) for p in L.global_parameters()} == {id(p) for p in L.global_body.parameters()}
    with pytest.raises(ValueError, match="does not fit this enhancer"):
        L.load_global(GlobalGenerator(6, 3, 3, 1, 1))


def test_downsample_is_a_3x3_average_without_the_padding():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = downsample2x(x)
    assert y.shape == (1, 1, 2, 2)
    assert y[0, 0, 0, 0] == (0 + 1 + 4 + 5) / 4          # corner: 4 real pixels
    assert y[0, 0, 1, 1] == sum([5, 6, 7, 9, 10, 11, 13, 14, 15]) / 9


def test_multiscale_discriminator_shapes():
    D = MultiscaleDiscriminator(input_nc=5, ndf=4, n_layers=3, num_D=3)
    out = D(torch.randn(2, 5, 64, 64))
    assert len(out) == 3 and all(len(s) == 3 + 2 for s in out)
    # conv4 stride 2 pad 2: H -> H/2 + 1; stride 1 pad 2: H -> H + 1; scale k sees H / 2^k
    # channels 4, 8, 16 (stride 2 x2, then stride 1), 32, then 1
    for k, size in enumerate([64, 32, 16]):
        s1 = size // 2 + 1
        s2 = s1 // 2 + 1
        s3 = s2 // 2 + 1
        assert [tuple(t.shape) for t in out[k]] == [
            (2, 4, s1, s1), (2, 8, s2, s2), (2, 16, s3, s3), (2, 32, s3 + 1, s3 + 1),
            (2, 1, s3 + 2, s3 + 2)]
    # the second scale's input is the first's, average-pooled
    x = torch.randn(1, 5, 32, 32)
    assert torch.equal(D(x)[1][-1], D.scales[1](downsample2x(x))[-1])
    deep = MultiscaleDiscriminator(3, ndf=64, n_layers=5, num_D=1)
    assert max(m.out_channels for m in deep.modules() if isinstance(m, torch.nn.Conv2d)) == 512


def test_paper_sizes_are_the_defaults():
    with torch.device("meta"):  # shapes only: the paper's G has 182 M parameters
        G = GlobalGenerator()
    # by hand: c7s1 112,960 + downs 6,268,800 + 9 blocks 169,887,744 + ups 6,267,840 + 9,411
    assert sum(p.numel() for p in G.parameters()) == 182_546_755
    assert G.config == {"input_nc": 36, "output_nc": 3, "ngf": 64,
                                        "n_downsampling": 4, "n_blocks": 9}
    assert MultiscaleDiscriminator().config == {"input_nc": 39, "ndf": 64, "n_layers": 3,
                                                "num_D": 3}
    assert FeatureEncoder().config == {"input_nc": 3, "output_nc": 3, "ngf": 16,
                                       "n_downsampling": 4}


# --- boundaries, pooling, input -------------------------------------------------------------

def test_boundary_map_by_hand():
    inst = torch.tensor([[1, 1, 1, 2, 2],
                         [1, 1, 1, 2, 2],
                         [1, 3, 1, 2, 2],
                         [1, 1, 1, 2, 2]])
    want = torch.tensor([[0, 0, 1, 1, 0],
                         [0, 1, 1, 1, 0],
                         [1, 1, 1, 1, 0],
                         [0, 1, 1, 1, 0]], dtype=torch.float)
    assert torch.equal(instance_boundaries(inst[None]), want[None, None])
    assert torch.equal(instance_boundaries(inst[None, None]), want[None, None])
    assert instance_boundaries(torch.full((2, 1, 3, 3), 26001)).sum() == 0  # one instance


def loop_average(features, inst):
    """Reference: for every image, for every id, the mean over that id's pixels."""
    out = torch.empty_like(features)
    for b in range(features.shape[0]):
        for i in inst[b].unique():
            mask = inst[b, 0] == i
            out[b][:, mask] = features[b][:, mask].mean(1, keepdim=True)
    return out


def test_instance_average_equals_a_loop_reference():
    g = torch.Generator().manual_seed(0)
    inst = torch.randint(0, 4, (3, 1, 9, 7), generator=g) * 1000 + \
        torch.randint(0, 3, (3, 1, 9, 7), generator=g)  # Cityscapes-like ids, shared by images
    inst[1] = 7  # one image is a single instance
    feats = torch.randn(3, 5, 9, 7, generator=g, requires_grad=True)
    got = instance_average(feats, inst)
    ref_feats = feats.detach().clone().requires_grad_(True)
    ref = loop_average(ref_feats, inst)
    assert torch.allclose(got, ref, atol=1e-6)
    weights = torch.randn(got.shape, generator=g)
    (got * weights).sum().backward()
    (ref * weights).sum().backward()
    assert torch.allclose(feats.grad, ref_feats.grad, atol=1e-6)
    # images do not share instances even where ids coincide
    assert not torch.allclose(got[0], got[2])


def test_instance_average_in_half_precision_and_odd_ids():
    # 90,000 ones sum to more than float16's largest value: the sum must not be half precision
    ones = torch.ones(1, 2, 300, 300, dtype=torch.float16)
    out = instance_average(ones, torch.zeros(1, 1, 300, 300, dtype=torch.long))
    assert out.dtype == torch.float16 and torch.equal(out, ones)
    feats = torch.arange(4.0).reshape(1, 1, 2, 2)
    inst = torch.tensor([[[[-5, 2 ** 40], [2 ** 40, -5]]]])  # negative and huge ids
    assert torch.equal(instance_average(feats, inst), torch.tensor([[[[1.5, 1.5], [1.5, 1.5]]]]))
    assert instance_average(torch.zeros(0, 3, 4, 4), torch.zeros(0, 1, 4, 4)).shape == (0, 3, 4, 4)
    with pytest.raises(ValueError, match=r"instance map \[1, 1, 4, 4\] does not match"):
        instance_average(torch.zeros(1, 3, 4, 5), torch.zeros(1, 1, 4, 4))


def test_encoder_output_is_constant_within_each_instance():
    E = FeatureEncoder(ngf=2, n_downsampling=1)
    inst = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    inst[..., 4:] = 26000
    image = torch.randn(1, 3, 8, 8)
    f = E(image, inst)
    assert f.shape == (1, 3, 8, 8)
    assert torch.equal(f[..., :4], f[..., :1, :1].expand(1, 3, 8, 4))
    raw = E.pixel_features(image)
    assert torch.allclose(f[0, :, 0, 4], raw[0, :, :, 4:].mean((1, 2)), atol=1e-6)


def test_make_input_one_hot_boundaries_and_features():
    label = torch.tensor([[[0, 2], [1, 2]]])            # [N, H, W]
    inst = torch.tensor([[[0, 2002], [1, 2002]]])
    feat = torch.full((1, 3, 2, 2), 0.5)
    x = make_input(label, inst, feat, label_nc=3)
    assert x.shape == (1, 3 + 1 + 3, 2, 2)
    assert torch.equal(x[0, :3], torch.tensor([[[1., 0], [0, 0]], [[0, 0], [1, 0]],
                                               [[0, 1], [0, 1]]]))
    assert torch.equal(x[0, 3], torch.tensor([[1., 1], [1, 1]]))
    assert torch.equal(x[0, 4:], feat[0])
    assert make_input(label, label_nc=3).shape == (1, 3, 2, 2)  # --no-instance
    assert make_input(label.float(), inst, label_nc=3).shape[1] == generator_input_nc(3)
    rgb = torch.rand(1, 3, 2, 2) * 2 - 1                 # label_nc 0: the image itself
    assert torch.equal(make_input(rgb, inst, label_nc=0)[:, :3], rgb)
    assert generator_input_nc(0, True) == 4 and discriminator_input_nc(35) == 39


@pytest.mark.parametrize("label, message", [
    (torch.tensor([[[0, 3]]]), r"value 3 is outside 0..2 \(label_nc 3\)"),
    (torch.tensor([[[0, 255]]]), "value 255 is outside 0..2"),
    (torch.tensor([[[-1, 0]]]), "value -1 is outside 0..2"),
    (torch.tensor([[[0.5, 1.0]]]), "value 0.5 is not a class id"),
])
def test_make_input_names_the_bad_label(label, message):
    with pytest.raises(ValueError, match=message):
        make_input(label, label_nc=3)


def test_make_input_refuses_mismatched_maps():
    with pytest.raises(ValueError, match=r"instance map is 1 x 2x3 \(N x HxW\) but the labels "
                                         r"are 1 x 2x2"):
        make_input(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3), label_nc=2)
    with pytest.raises(ValueError, match="feature map is 2 x 2x2"):
        make_input(torch.zeros(1, 2, 2), feat=torch.zeros(2, 3, 2, 2), label_nc=2)
    with pytest.raises(ValueError, match="label_nc must be a non-negative integer"):
        make_input(torch.zeros(1, 2, 2), label_nc=-1)


# --- losses ---------------------------------------------------------------------------------

def const_outputs(values, requires_grad=False):
    """D outputs [scale][layer] as constant 1x1x2x2 maps."""
    return [[torch.full((1, 1, 2, 2), float(v), requires_grad=requires_grad) for v in scale]
            for scale in values]


def test_gan_losses_on_constant_predictions():
    p = const_outputs([[9, 0.3], [9, 0.3]])               # predictions 0.3 on two scales
    assert gan_loss(p, True, "lsgan").item() == pytest.approx(2 * 0.7 ** 2)
    assert gan_loss(p, False, "lsgan").item() == pytest.approx(2 * 0.3 ** 2)
    assert gan_loss(p, True, "lsgan", for_discriminator=False).item() == pytest.approx(0.98)
    assert gan_loss(p, True, "hinge").item() == pytest.approx(2 * 0.7)
    assert gan_loss(p, False, "hinge").item() == pytest.approx(2 * 1.3)
    assert gan_loss(p, True, "hinge", for_discriminator=False).item() == pytest.approx(-0.6)
    q = const_outputs([[-2]])
    assert gan_loss(q, True, "hinge").item() == pytest.approx(3.0)
    assert gan_loss(q, False, "hinge").item() == 0.0       # beyond the margin
    with pytest.raises(ValueError, match="one of lsgan, hinge, not 'wgan'"):
        gan_loss(q, True, "wgan")


def test_feature_matching_weighting_by_hand():
    # num_D 2, n_layers 3: 4 feature layers + the prediction per scale
    fake = const_outputs([[1, 2, 3, 4, 100], [0, 0, 0, 1, -100]], requires_grad=True)
    real = const_outputs([[0, 0, 0, 0, 0], [1, 1, 1, 1, 0]], requires_grad=True)
    # 10 * (1/2) * (4/4) * (|1|+|2|+|3|+|4| + |-1|*3 + 0) = 5 * 13
    loss = feature_matching_loss(fake, real)
    assert loss.item() == pytest.approx(65.0)
    loss.backward()
    assert all(t.grad is None for s in real for t in s)   # real features are detached
    assert fake[0][-1].grad is None                       # predictions are not matched
    # num_D 3, n_layers 1 (2 feature layers): weight 10 * 1/3 * 4/2
    f3 = const_outputs([[1, 1, 7]] * 3)
    r3 = const_outputs([[0, 0, 7]] * 3)
    assert feature_matching_loss(f3, r3, lambda_feat=10).item() == pytest.approx(
        10 * (1 / 3) * 2 * 6)


def test_vgg_loss_layer_weights_by_hand():
    class Layers(torch.nn.Module):  # five "layers": k * the input
        def forward(self, x):
            return [k * x for k in range(1, 6)]
    fake, real = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2) * 0.5
    diff = (imagenet_normalise(fake) - imagenet_normalise(real)).abs().mean().item()
    want = sum(w * k * diff for w, k in zip([1 / 32, 1 / 16, 1 / 8, 1 / 4, 1], range(1, 6)))
    assert VGGLoss(Layers())(fake, real).item() == pytest.approx(want, rel=1e-6)


def test_vgg19_layout_is_torchvisions():
    net = VGG19Features()
    convs = sorted(int(k.split(".")[1]) for k in net.state_dict() if k.endswith("weight"))
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert all(isinstance(net.features[i], torch.nn.ReLU) for i in RELU_INDEX.values())
    outs = net(torch.zeros(1, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [64, 128, 256, 512, 512]
    assert [o.shape[2] for o in outs] == [32, 16, 8, 4, 2]


def test_missing_vgg19_weights_is_a_notice_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss, note = load_vgg_loss("cpu")
    assert loss is None and "without the VGG19 perceptual loss" in note
    assert [str(w.message) for w in caught] == [note]
    terms = Pix2PixHDLoss(vgg=loss, note=note)
    fake = const_outputs([[1, 0.5]])
    real = const_outputs([[0, 1.0]])
    g = terms.generator(fake, real, torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))
    assert set(g) == {"G_GAN", "G_feat"}
    assert g["G_GAN"].item() == pytest.approx(0.25) and g["G_feat"].item() == pytest.approx(40)
    d = terms.discriminator(fake, real)
    assert d["D_real"].item() == pytest.approx(0.0) and d["D_fake"].item() == pytest.approx(0.25)
    assert terms.describe() == {"gan": "lsgan", "feature_matching": 10.0, "vgg": None,
                                "note": note}


@pytest.fixture
def vgg19_entry(tmp_path, monkeypatch):
    """The weights registry with its 'vgg19' entry (torchvision's file), weights in tmp_path."""
    from ganprior import weights
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path))
    entry = weights.WeightFile("vgg19", "vgg19-dcbb9e9d.pth",
                               "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                               "dcbb9e9d", "VGG19 (ImageNet, torchvision)")
    monkeypatch.setitem(weights.REGISTRY, "vgg19", entry)
    return tmp_path / entry.filename


def test_vgg19_weights_load_and_bad_files_are_notices(vgg19_entry):
    from ganprior.nets.vgg19 import load_vgg19
    net, why = load_vgg19("cpu")
    assert net is None and "VGG19 weights not installed" in why and "download vgg19" in why
    torch.manual_seed(0)
    ref = VGG19Features()
    torch.save({f"features.{k.split('.', 1)[1]}": v for k, v in ref.state_dict().items()}
               | {"classifier.0.weight": torch.zeros(2, 2)}, vgg19_entry)
    net, why = load_vgg19("cpu")
    assert why is None and not net.training
    assert all(not p.requires_grad for p in net.parameters())
    assert torch.equal(net.features[34].weight, ref.features[34].weight)
    loss, note = load_vgg_loss("cpu")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert note is None and loss(x, x).item() == 0 and loss(x, -x).item() > 0
    vgg19_entry.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="corrupt vgg19 weights"):
        assert load_vgg_loss("cpu")[0] is None
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, vgg19_entry)
    net, why = load_vgg19("cpu")
    assert net is None and "not VGG19 weights" in why


# --- registry and checkpoints ---------------------------------------------------------------

def test_one_checkpoint_holds_g_d_and_encoder(tmp_path):
    G, D, E = small_nets()
    save_native(tmp_path / "p2p", G, D, provenance={"what": "test"}, more={"E": E})
    cfg = json.loads((tmp_path / "p2p.json").read_text())
    assert {k: (v["arch"], v["role"]) for k, v in cfg.items() if k not in
            ("format", "version", "provenance")} == {
        "G": ("pix2pixhd-local", "G"), "D": ("pix2pixhd", "D"), "E": ("pix2pixhd", "E")}
    nets = load_native(tmp_path / "p2p")
    for key, net in {"G": G, "D": D, "E": E}.items():
        assert type(nets[key]) is type(net) and nets[key].config == net.config
        for (k, a), (_, b) in zip(net.state_dict().items(), nets[key].state_dict().items()):
            assert torch.equal(a, b), k
    label = torch.randint(0, 5, (1, 1, 16, 16))
    inst = label * 1000
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    x = make_input(label, inst, E.eval()(image, inst), label_nc=5)
    assert torch.equal(G.eval()(x), nets["G"](x))
    cond = make_input(label, inst, label_nc=5)
    assert torch.equal(D(torch.cat([cond, image], 1))[0][-1],
                       nets["D"](torch.cat([cond, image], 1))[0][-1])


@pytest.mark.parametrize("arch, role, config, message", [
    ("pix2pixhd-global", "G", {"bogus": 1}, "unknown option 'bogus' for GlobalGenerator"),
    ("pix2pixhd-global", "G", {"n_blocks": 100000}, r"n_blocks = 100000 must be an integer "
                                                    r"in 0..64"),
    ("pix2pixhd-local", "G", {"n_local_enhancers": 0}, "n_local_enhancers = 0 must be"),
    ("pix2pixhd", "D", {"num_D": 1.5}, "num_D = 1.5 must be an integer"),
    ("pix2pixhd", "E", {"ngf": 65536, "n_downsampling": 8}, "refusing to build it"),
])
def test_bad_configs_are_refused_before_building(arch, role, config, message):
    with pytest.raises(ValueError, match=message):
        build(arch, config, role=role, what="test")
