"""Loading every format: NVIDIA .pkl (safely), rosinality .pt, native; hostile and broken files."""
import argparse
import os
import pickle
import subprocess
import sys

import pytest
import torch
from conftest import parity_case, rosinality_shaped_stylegan2, small_stylegan2
from nvidia_pickle import write_nvidia_pickle

from ganprior.checkpoints import load_networks, save_native, save_networks
from ganprior.errors import CheckpointError
from ganprior.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator


def same_images(G1, G2, c=None):
    z = torch.randn(2, G1.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = G1.synthesize(G1.z_to_w(z, c, truncation_psi=0.7))
        b = G2.synthesize(G2.z_to_w(z, c, truncation_psi=0.7))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


# --- NVIDIA pickles --------------------------------------------------------------------------

def test_nvidia_pickle_with_fixture_weights_reproduces_reference(tmp_path, trap):
    """A snapshot-structured pickle holding the parity fixture's nets gives NVIDIA's outputs."""
    cfg, params, e = parity_case("g32_cond_resnet")
    G = StyleGAN2Generator(**cfg["G_init_kwargs"])
    G.load_state_dict({k[2:]: v for k, v in params.items() if k.startswith("G.")})
    D = StyleGAN2Discriminator(**cfg["D_init_kwargs"])
    D.load_state_dict({k[2:]: v for k, v in params.items() if k.startswith("D.")})
    path = tmp_path / "snapshot.pkl"
    write_nvidia_pickle(path, G=G, D=D, G_ema=G, G_kwargs=cfg["G_init_kwargs"],
                        D_kwargs=cfg["D_init_kwargs"])
    nets = load_networks(path)
    assert nets["meta"]["generator_key"] == "G_ema"
    with torch.no_grad():
        img = nets["G"].synthesize(nets["G"].z_to_w(e["z"], e["c"], truncation_psi=0.7))
        logits = nets["D"](e["img_const"], e["c"])
    assert (img - e["img_const"]).abs().max() <= 1e-4
    assert (logits - e["d_logits_img_const"]).abs().max() <= 1e-4
    assert not trap.exists(), "embedded module_src was executed"


def test_g_ema_only_and_stylegan3_repo_layout(tmp_path, trap):
    G = small_stylegan2(c_dim=3)
    path = tmp_path / "gema.pkl"
    write_nvidia_pickle(path, G_ema=G, flat_synthesis_kwargs=True)
    nets = load_networks(path)
    assert "D" not in nets
    same_images(G, nets["G"], c=G.class_vector(2, 1))
    assert not trap.exists()


def test_official_pretrained_kwargs_layout(tmp_path):
    """NVIDIA's legacy.py (TF -> PyTorch) spells out every option; all must be accepted."""
    G = small_stylegan2()
    kwargs = dict(G.config)
    kwargs["mapping_kwargs"] = dict(num_layers=2, embed_features=None, layer_features=None,
                                    activation="lrelu", lr_multiplier=0.01, w_avg_beta=0.995)
    kwargs["synthesis_kwargs"] = dict(kwargs["synthesis_kwargs"], num_fp16_res=4,
                                      resample_filter=[1, 3, 3, 1], use_noise=True,
                                      activation="lrelu")
    write_nvidia_pickle(tmp_path / "official.pkl", G_ema=G, G_kwargs=kwargs)
    same_images(G, load_networks(tmp_path / "official.pkl")["G"])


def test_g_only_pickle_uses_g(tmp_path):
    G = small_stylegan2()
    write_nvidia_pickle(tmp_path / "g.pkl", G=G)
    nets = load_networks(tmp_path / "g.pkl")
    assert nets["meta"]["generator_key"] == "G"
    same_images(G, nets["G"])


def test_loader_never_imports_nvidia_modules(tmp_path):
    path = tmp_path / "net.pkl"
    write_nvidia_pickle(path, G_ema=small_stylegan2())
    code = ("import sys; from ganprior.checkpoints import load_networks; load_networks(sys.argv[1]);"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('dnnlib','torch_utils','training')];"
            "assert not bad, bad; print('clean')")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": _Hostile(marker)}, f)
    with pytest.raises(CheckpointError, match=r"refusing to load.*system"):
        load_networks(path)
    assert not marker.exists()


def test_hostile_payload_inside_tensor_storage_is_refused(tmp_path):
    """torch pickles storages as nested torch.save bytes; those are read with weights_only."""
    marker = tmp_path / "pwned"
    inner = pickle.dumps(_Hostile(marker), protocol=2)

    class Storage:
        def __reduce__(self):
            import torch.storage
            return (torch.storage._load_from_bytes, (inner,))

    path = tmp_path / "evil2.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": Storage()}, f)
    with pytest.raises(CheckpointError):
        load_networks(path)
    assert not marker.exists()


def test_cli_refuses_hostile_pickle_in_one_line(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": _Hostile(marker)}, f)
    r = subprocess.run([sys.executable, "-m", "ganprior.cli", "info", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr and not marker.exists()


def test_stylegan3_network_gets_a_clear_error(tmp_path):
    def as_stylegan3(data):  # StyleGAN3 synthesis: `input` + `L0_36_512` ... instead of b4, b8
        mods = data["G_ema"].meta["state"]["_modules"]["synthesis"].meta["state"]["_modules"]
        mods["input"] = mods.pop("b4")

    path = tmp_path / "sg3.pkl"
    write_nvidia_pickle(path, G_ema=small_stylegan2(), edit=as_stylegan3)
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        load_networks(path)


def test_non_network_class_is_refused(tmp_path):
    def rename(data):
        data["G_ema"].meta["class_name"] = "AugmentPipe"

    write_nvidia_pickle(tmp_path / "x.pkl", G_ema=small_stylegan2(), edit=rename)
    with pytest.raises(CheckpointError, match="'AugmentPipe', not a StyleGAN2 network"):
        load_networks(tmp_path / "x.pkl")


def test_pickle_with_mismatched_weights(tmp_path):
    G = small_stylegan2()
    kwargs = dict(G.config, w_dim=32)  # config says w_dim 32, weights were made for 24
    write_nvidia_pickle(tmp_path / "bad.pkl", G_ema=G, G_kwargs=kwargs)
    with pytest.raises(CheckpointError, match="do not match"):
        load_networks(tmp_path / "bad.pkl")


def test_truncated_pickle(tmp_path):
    write_nvidia_pickle(tmp_path / "full.pkl", G_ema=small_stylegan2())
    data = (tmp_path / "full.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable NVIDIA pickle"):
        load_networks(tmp_path / "cut.pkl")


# --- rosinality ------------------------------------------------------------------------------

def test_rosinality_checkpoint_with_namespace_args(tmp_path):
    G = rosinality_shaped_stylegan2()
    data = save_networks({"G": G}, tmp_path / "tmp.pt") and torch.load(tmp_path / "tmp.pt")
    data["args"] = argparse.Namespace(size=16, latent=24, n_mlp=2, channel_multiplier=1,
                                      lr_mlp=0.01)  # what rosinality's train.py stores
    data["g"], data["d"] = data["g_ema"], {"convs.0.0.weight": torch.zeros(1)}
    data["g_optim"] = {"state": {}, "param_groups": []}
    torch.save(data, tmp_path / "ros.pt")
    nets = load_networks(tmp_path / "ros.pt")
    assert nets["meta"]["source"] == "rosinality-pt"
    same_images(G, nets["G"])


def test_rosinality_without_latent_avg_estimates_it(tmp_path):
    G = rosinality_shaped_stylegan2()
    save_networks({"G": G}, tmp_path / "r.pt")
    data = torch.load(tmp_path / "r.pt")
    del data["latent_avg"]
    torch.save(data, tmp_path / "r2.pt")
    nets = load_networks(tmp_path / "r2.pt")
    with torch.no_grad():
        ref = G.mapping(torch.randn(20000, 24))[:, 0].mean(0)
    assert (nets["G"].mapping.w_avg - ref).abs().max() < 0.1
    assert "estimated" in nets["meta"]["w_avg"]


def test_torch_file_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"g_ema": _Hostile(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused|cannot read"):
        load_networks(tmp_path / "evil.pt")
    assert not marker.exists()


def test_rosinality_export_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(CheckpointError, match="rosinality"):
        save_networks({"G": small_stylegan2(arch="resnet")}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="cannot build these channels"):  # channel_max 32
        save_networks({"G": StyleGAN2Generator(**dict(small_stylegan2().config, z_dim=24))},
                      tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"conv_clamp 0.01 changes \d+ of 64"):
        save_networks({"G": rosinality_shaped_stylegan2(conv_clamp=0.01)}, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_rosinality_export_drops_a_clamp_that_never_acts(tmp_path):
    # our trainer's generators carry NVIDIA's conv_clamp 256, which trained weights never reach
    G = rosinality_shaped_stylegan2(conv_clamp=256)
    save_networks({"G": G}, tmp_path / "g.pt")
    back = load_networks(tmp_path / "g.pt")["G"]
    assert back.config["synthesis_kwargs"]["conv_clamp"] is None
    assert type(torch.load(tmp_path / "g.pt")["args"]["channel_multiplier"]) is int
    same_images(G, back)


# --- native ----------------------------------------------------------------------------------

def test_native_round_trip_with_discriminator(tmp_path):
    G, D = small_stylegan2(c_dim=3, with_d=True)
    save_native(tmp_path / "m", G, D, provenance={"note": "test"})
    nets = load_networks(tmp_path / "m.safetensors")
    same_images(G, nets["G"], c=G.class_vector(2, 0))
    x = torch.randn(2, 3, 32, 32)
    c = G.class_vector(2, 0)
    torch.testing.assert_close(D(x, c), nets["D"](x, c))
    assert nets["meta"]["provenance"]["note"] == "test"
    assert load_networks(tmp_path / "m.json")["G"].img_resolution == 32


def test_native_broken_files(tmp_path):
    G = small_stylegan2()
    w, c = save_native(tmp_path / "m", G)
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        load_networks(w)
    save_native(tmp_path / "n", G)
    (tmp_path / "n.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_networks(tmp_path / "n.safetensors")
    (tmp_path / "o.safetensors").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="config o.json is missing"):
        load_networks(tmp_path / "o.safetensors")


@pytest.mark.parametrize("text", ['{"G": ' + "9" * 5000 + "}",   # past Python's digit limit
                                  "[" * 100_000 + "]" * 100_000])  # nesting past recursion
def test_native_config_json_that_python_refuses(tmp_path, text):
    # json.loads raises a plain ValueError / RecursionError for these, not JSONDecodeError
    from ganprior.app.catalog import native_info
    save_native(tmp_path / "m", small_stylegan2())
    (tmp_path / "m.json").write_text(text)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_networks(tmp_path / "m.safetensors")
    assert native_info(tmp_path / "m.safetensors") == (None, None)  # the studio skips it


def test_unknown_and_missing_files(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"hello world, not a model")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_networks(tmp_path / "junk.bin")
    with pytest.raises(CheckpointError, match="no such file"):
        load_networks(tmp_path / "nope.pkl")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a rosinality"):
        load_networks(tmp_path / "other.pt")


def test_pkl_to_native_to_rosinality_conversion_chain(tmp_path):
    G = rosinality_shaped_stylegan2()
    write_nvidia_pickle(tmp_path / "a.pkl", G_ema=G)
    save_networks(load_networks(tmp_path / "a.pkl"), tmp_path / "b.safetensors")
    save_networks(load_networks(tmp_path / "b.safetensors"), tmp_path / "c.pt")
    same_images(G, load_networks(tmp_path / "c.pt")["G"])
    with pytest.raises(CheckpointError, match="needs NVIDIA's stylegan2-ada-pytorch checkout"):
        save_networks(load_networks(tmp_path / "b.safetensors"), tmp_path / "d.pkl")
    assert not (tmp_path / "d.pkl").exists()


def test_pkl_export_errors_are_clear(tmp_path):
    G, D = small_stylegan2(with_d=True)
    with pytest.raises(CheckpointError, match="needs a discriminator"):
        save_networks({"G": G}, tmp_path / "g.pkl", nvlabs_code=tmp_path)
    with pytest.raises(CheckpointError, match="not a stylegan2-ada-pytorch checkout"):
        save_networks({"G": G, "D": D}, tmp_path / "g.pkl", nvlabs_code=tmp_path)
    fake = tmp_path / "checkout"  # a checkout whose code needs a module that is not installed
    (fake / "training").mkdir(parents=True)
    (fake / "torch_utils").mkdir()
    (fake / "training" / "networks.py").write_text("import module_that_is_not_installed\n")
    (fake / "torch_utils" / "persistence.py").write_text("")
    with pytest.raises(CheckpointError, match="needs the Python module 'module_that_is_not_installed'"):
        save_networks({"G": G, "D": D}, tmp_path / "g.pkl", nvlabs_code=fake)
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob(".*tmp"))


# --- zoo -------------------------------------------------------------------------------------

def test_dcgan_digiface_matches_the_packages_own_network():
    from gan_face_generate.models import Generator as Reference

    from ganprior.checkpoints.zoo import dcgan_digiface_path
    G = load_networks("dcgan-digiface64")["G"]
    ref = Reference(ngpu=0, nc=3, nz=100, ngf=64)
    ref.load_state_dict(torch.load(dcgan_digiface_path(), weights_only=True, map_location="cpu")["netG_state_dict"])
    ref.eval()
    z = torch.cat([G.z_from_seed(s) for s in range(4)])
    with torch.no_grad():
        ours = G.synthesize(G.z_to_w(z))
        theirs = ref(z[:, :, None, None])
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
    # real faces, not noise: natural images have strong neighbour correlation
    img = ours.mean(1)
    corr = torch.corrcoef(torch.stack([img[:, :, :-1].flatten(), img[:, :, 1:].flatten()]))[0, 1]
    assert corr > 0.8
