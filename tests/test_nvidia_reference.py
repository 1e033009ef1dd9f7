"""Side by side with NVIDIA's own code (optional: set NVLABS_SG2ADA to a stylegan2-ada-pytorch
checkout, and `pip install click` for its generate.py; skipped otherwise; nothing of it is
committed here). ROSINALITY_SG2 likewise enables the rosinality/stylegan2-pytorch check.

A snapshot pickle is written by NVIDIA's persistence machinery (so it embeds their source, as
real .pkl files do), NVIDIA's generate.py renders seeds from it, and `ganprior generate` must
write the same PNG files, byte for byte in pixels.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

NV = os.environ.get("NVLABS_SG2ADA")
# each reference gates only its own tests (a module-level mark would skip rosinality's too)
needs_nvidia = pytest.mark.skipif(not NV or not Path(NV, "generate.py").exists(),
                                  reason="NVLABS_SG2ADA (stylegan2-ada-pytorch checkout) not set")

# Runs in a child process with NVIDIA's code importable. Their generate.py hard-codes
# torch.device('cuda'); the child maps that to the CPU. dnnlib imports requests for downloads.
MAKE_AND_RENDER = textwrap.dedent("""
    import sys, types, pickle, runpy, torch
    sys.modules.setdefault('requests', types.ModuleType('requests'))
    sys.path.insert(0, NV)
    from training.networks import Generator, Discriminator
    torch.manual_seed(3)
    G = Generator(z_dim=64, c_dim=C_DIM, w_dim=64, img_resolution=32, img_channels=3,
                  mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=1024, channel_max=64, conv_clamp=256))
    with torch.no_grad():
        for n, t in list(G.named_parameters()) + list(G.named_buffers()):
            if n.endswith(('bias', 'noise_strength', 'w_avg')):
                t.add_(0.1 * torch.randn(t.shape))
    D = Discriminator(c_dim=C_DIM, img_resolution=32, img_channels=3, channel_base=1024, channel_max=64)
    data = dict(G=G.eval(), D=D.eval(), G_ema=G.eval(), augment_pipe=None,
                training_set_kwargs=dict(path='x.zip'))
    with open(PKL, 'wb') as f:
        pickle.dump(data, f)
    real_device = torch.device
    torch.device = lambda *a, **k: real_device('cpu')
    sys.argv = ['generate.py', '--network', PKL, '--seeds', '0-3', '--trunc', '0.7',
                '--noise-mode', 'const', '--outdir', OUT] + EXTRA
    runpy.run_path(NV + '/generate.py', run_name='__main__')
""")


@needs_nvidia
@pytest.mark.parametrize("c_dim", [0, 3])
def test_same_pngs_as_nvidia_generate(tmp_path, c_dim, trap):
    pkl, nv_out, our_out = tmp_path / "net.pkl", tmp_path / "nv", tmp_path / "ours"
    extra = ["--class", "2"] if c_dim else []
    code = (f"NV={NV!r}; PKL={str(pkl)!r}; OUT={str(nv_out)!r}; C_DIM={c_dim}; EXTRA={extra!r}\n"
            + MAKE_AND_RENDER)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 or (nv_out / "seed0003.png").exists(), r.stderr[-2000:]
    assert b"module_src" in pkl.read_bytes()  # a real persistence pickle, source embedded
    assert_generate_matches(pkl, nv_out, our_out, extra)
    assert not trap.exists()


def assert_generate_matches(model, nv_out, our_out, extra=()):
    """`ganprior generate` on `model` writes the PNGs NVIDIA's generate.py wrote to nv_out."""
    r = subprocess.run([sys.executable, "-m", "ganprior.cli", "generate", "--model", str(model),
                        "--seeds", "0-3", "--trunc", "0.7", "--out", str(our_out), "--device", "cpu",
                        *extra], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for s in range(4):
        a = np.asarray(Image.open(nv_out / f"seed{s:04d}.png")).astype(int)
        b = np.asarray(Image.open(our_out / f"seed{s:04d}.png")).astype(int)
        # fp32 rounding may flip a value that sits exactly on a quantisation step
        assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.001, f"seed {s}"


# Our export, written with NVIDIA's classes from the checkout (dnnlib imports requests at the top).
EXPORT = textwrap.dedent("""
    import sys, types
    sys.modules.setdefault('requests', types.ModuleType('requests'))
    from ganprior.checkpoints import load_networks, save_networks
    save_networks(load_networks(SRC), PKL, nvlabs_code=NV)
""")
RENDER = textwrap.dedent("""
    import sys, types, runpy, torch
    sys.modules.setdefault('requests', types.ModuleType('requests'))
    sys.path.insert(0, NV)
    real_device = torch.device
    torch.device = lambda *a, **k: real_device('cpu')
    sys.argv = ['generate.py', '--network', PKL, '--seeds', '0-3', '--trunc', '0.7',
                '--noise-mode', 'const', '--outdir', OUT]
    runpy.run_path(NV + '/generate.py', run_name='__main__')
""")


@needs_nvidia
def test_exported_pkl_renders_the_same_in_nvidias_generate(tmp_path, trap):
    """A ganprior snapshot exported to .pkl is read by NVIDIA's own loader and renders our images."""
    import torch
    from conftest import small_stylegan2

    from ganprior.checkpoints import load_networks, save_networks
    G, D = small_stylegan2(conv_clamp=256, with_d=True)
    src, pkl = tmp_path / "snap.safetensors", tmp_path / "snap.pkl"
    save_networks({"G": G, "D": D}, src)
    r = subprocess.run([sys.executable, "-c", f"NV={NV!r}; SRC={str(src)!r}; PKL={str(pkl)!r}\n"
                        + EXPORT], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert b"module_src" in pkl.read_bytes()  # NVIDIA's persistence wrote it
    back = load_networks(pkl)  # and our restricted reader takes it back, D included
    assert back["G"].config == G.config and back["D"].config == D.config
    img = torch.randn(4, 3, G.img_resolution, G.img_resolution)
    torch.testing.assert_close(back["D"](img, None), D(img, None))
    nv_out, our_out = tmp_path / "nv", tmp_path / "ours"
    r = subprocess.run([sys.executable, "-c", f"NV={NV!r}; PKL={str(pkl)!r}; OUT={str(nv_out)!r}\n"
                        + RENDER], capture_output=True, text=True)
    assert r.returncode == 0 or (nv_out / "seed0003.png").exists(), r.stderr[-2000:]
    assert_generate_matches(src, nv_out, our_out)
    assert not trap.exists()


ROS = os.environ.get("ROSINALITY_SG2")
needs_rosinality = pytest.mark.skipif(
    not ROS or not Path(ROS or "", "model.py").exists(),
    reason="ROSINALITY_SG2 (rosinality/stylegan2-pytorch checkout) not set")

ROS_MAKE_AND_RENDER = textwrap.dedent("""
    import argparse, sys, torch, torch.utils.cpp_extension
    torch.utils.cpp_extension.load = lambda *a, **k: None   # their CPU paths need no extension
    sys.path.insert(0, ROS)
    from model import Generator
    torch.manual_seed(5)
    g = Generator(size=32, style_dim=64, n_mlp=3, channel_multiplier=1).eval()
    with torch.no_grad():
        for n, t in g.named_parameters():
            if n.endswith(('bias', 'noise.weight')):
                t.add_(0.1 * torch.randn(t.shape))
        avg = g.mean_latent(2048)
        z = torch.randn(3, 64)
        img, _ = g([z], truncation=0.7, truncation_latent=avg, randomize_noise=False)
    args = argparse.Namespace(size=32, latent=64, n_mlp=3, channel_multiplier=1, lr_mlp=0.01)
    torch.save({'g_ema': g.state_dict(), 'latent_avg': avg[0], 'args': args}, PT)
    torch.save({'z': z, 'img': img}, REF)
""")


@needs_rosinality
def test_rosinality_checkpoint_renders_like_rosinality(tmp_path):
    import torch

    from ganprior.checkpoints import load_networks
    pt, ref = tmp_path / "g.pt", tmp_path / "ref.pt"
    code = f"ROS={ROS!r}; PT={str(pt)!r}; REF={str(ref)!r}\n" + ROS_MAKE_AND_RENDER
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    expected = torch.load(ref)
    G = load_networks(pt)["G"]
    with torch.no_grad():
        img = G(expected["z"], truncation_psi=0.7, noise_mode="const")
    assert (img - expected["img"]).abs().max() < 1e-4


ROS_LOAD_AND_RENDER = textwrap.dedent("""
    import sys, torch, torch.utils.cpp_extension
    torch.utils.cpp_extension.load = lambda *a, **k: None
    sys.path.insert(0, ROS)
    from model import Generator
    data = torch.load(PT, weights_only=True)
    a = data['args']
    g = Generator(size=a['size'], style_dim=a['latent'], n_mlp=a['n_mlp'],
                  channel_multiplier=a['channel_multiplier'], lr_mlp=a['lr_mlp']).eval()
    g.load_state_dict(data['g_ema'])  # strict: every tensor has its place
    z = torch.randn(3, a['latent'], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        img, _ = g([z], truncation=0.7, truncation_latent=data['latent_avg'][None], randomize_noise=False)
    torch.save({'z': z, 'img': img}, REF)
""")


@needs_rosinality
def test_exported_rosinality_file_renders_the_same_in_rosinalitys_generator(tmp_path):
    import torch
    from conftest import rosinality_shaped_stylegan2

    from ganprior.checkpoints import save_networks
    G = rosinality_shaped_stylegan2(res=64, conv_clamp=256)  # 64 px: 256*m channels are used
    pt, ref = tmp_path / "g.pt", tmp_path / "ref.pt"
    save_networks({"G": G}, pt)
    code = f"ROS={ROS!r}; PT={str(pt)!r}; REF={str(ref)!r}\n" + ROS_LOAD_AND_RENDER
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    expected = torch.load(ref)
    with torch.no_grad():
        img = G(expected["z"], truncation_psi=0.7, noise_mode="const")
    assert (img - expected["img"]).abs().max() < 1e-4
