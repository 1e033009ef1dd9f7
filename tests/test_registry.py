"""The architecture registry: captured constructor configs, and configs refused before any
memory is allocated (nets/registry.py); native checkpoints rebuilt through it."""
import functools
import json

import pytest
import torch
from conftest import small_stylegan2

from ganprior.checkpoints import load_networks, save_native
from ganprior.errors import CheckpointError
from ganprior.nets import registry
from ganprior.nets.dcgan import DCGANGenerator
from ganprior.nets.encoders import encoder_for, padinv_encoder_for
from ganprior.nets.registry import build
from ganprior.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator


def test_config_is_the_constructor_arguments_with_defaults():
    G = DCGANGenerator(16, img_resolution=32)
    assert G.config == {"z_dim": 16, "ngf": 64, "img_resolution": 32, "img_channels": 3}
    # the stylegan3 repo's flat synthesis options land where stylegan2-ada nests them
    flat = StyleGAN2Generator(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8,
                              mapping_kwargs={"num_layers": 1})
    assert flat.config["synthesis_kwargs"] == {"channel_base": 64, "channel_max": 8}
    assert flat.config["mapping_kwargs"] == {"num_layers": 1} and flat.config["c_dim"] == 0
    D = StyleGAN2Discriminator(0, 8, 3, channel_base=64, channel_max=8)
    assert D.config["block_kwargs"] == {} and D.config["architecture"] == "resnet"
    E = padinv_encoder_for(small_stylegan2(), 2)
    assert E.config["pads"] == {"4": 32, "8": 32} and E.config["const_shape"] == [32, 4, 4]
    json.dumps([G.config, flat.config, D.config, E.config])  # all JSON-ready


@pytest.mark.parametrize("net", [small_stylegan2(), small_stylegan2(with_d=True)[1],
                                 DCGANGenerator(12, ngf=8, img_resolution=16),
                                 encoder_for(small_stylegan2()), padinv_encoder_for(small_stylegan2())],
                         ids=["G", "D", "dcgan", "latent-encoder", "padinv-encoder"])
def test_build_from_config_gives_the_same_network(net):
    again = build(net.arch, json.loads(json.dumps(net.config)), role=net.role)
    assert type(again) is type(net) and again.config == net.config
    assert {k: v.shape for k, v in again.state_dict().items()} == \
        {k: v.shape for k, v in net.state_dict().items()}


def test_parameter_count_on_meta_equals_the_real_one():
    G = small_stylegan2()
    real = sum(t.numel() for t in G.parameters()) + sum(t.numel() for t in G.buffers())
    assert registry.count_parameters(StyleGAN2Generator, G.config) == real


@pytest.mark.parametrize("change, message", [
    ({"bogus": 1}, "unknown option 'bogus' for StyleGAN2Generator"),
    ({"mapping_kwargs": {"num_layerz": 2}}, "unknown option mapping_kwargs.num_layerz"),
    ({"z_dim": 8_000_000}, "z_dim = 8000000 must be a number in 0..65536"),
    ({"w_dim": -3}, "w_dim = -3 must be"),
    ({"img_resolution": 48}, "img_resolution = 48 must be a power of two in 4..4096"),
    ({"img_resolution": 8192}, "power of two in 4..4096"),
    ({"mapping_kwargs": {"num_layers": 1000}}, "num_layers = 1000 must be an integer in 1..64"),
    ({"synthesis_kwargs": {"channel_base": 65536, "channel_max": 65536}},
     r"parameters \(limit 500,000,000\); refusing"),
])
def test_bad_configs_are_refused_before_building(change, message, monkeypatch):
    built = []
    real_init = StyleGAN2Generator.__init__

    @functools.wraps(real_init)
    def spy(self, *a, **k):  # only meta-device probes may run
        built.append(torch.empty(0).device.type)
        real_init(self, *a, **k)

    monkeypatch.setattr(StyleGAN2Generator, "__init__", spy)
    cfg = dict(small_stylegan2().config, **change)
    built.clear()
    with pytest.raises(ValueError, match=message):
        build("stylegan2", cfg, what="x.json:G")
    assert all(d == "meta" for d in built)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown G architecture 'pggan' .*known: dcgan, "
                                         "pix2pixhd-global, pix2pixhd-local, stylegan2"):
        build("pggan", {})


def test_native_holds_several_networks_and_refuses_a_hostile_config(tmp_path):
    G = small_stylegan2()
    E = padinv_encoder_for(G)
    save_native(tmp_path / "m", G, more={"E": E})
    cfg = json.loads((tmp_path / "m.json").read_text())
    assert cfg["G"]["role"] == "G" and cfg["E"] == {"arch": "padinv", "role": "E", "kwargs": E.config}
    nets = load_networks(tmp_path / "m.safetensors")
    assert type(nets["E"]).__name__ == "PadInvEncoder"
    for k, v in E.state_dict().items():
        assert torch.equal(nets["E"].state_dict()[k], v)
    cfg["G"]["kwargs"]["z_dim"] = 8_000_000
    (tmp_path / "m.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"m\.json:G: z_dim = 8000000"):
        load_networks(tmp_path / "m.safetensors")
    del cfg["G"]["role"]  # files written before "role" existed: the key is the role
    cfg["G"]["kwargs"]["z_dim"] = G.z_dim
    (tmp_path / "m.json").write_text(json.dumps(cfg))
    assert load_networks(tmp_path / "m.safetensors")["G"].config == G.config
