"""rosinality/stylegan2-pytorch `.pt` checkpoints <-> our (NVIDIA-named) StyleGAN2 generator.

The two implementations share the parameterisation; only names and a few shapes differ:

    style.{i+1}.weight/bias        mapping.fc{i}.weight/bias           (style.0 is PixelNorm)
    input.input [1,C,4,4]          synthesis.b4.const [C,4,4]
    conv1 / convs.{2k,2k+1}        b4.conv1 / b{8*2^k}.conv0, .conv1
      .conv.weight [1,O,I,3,3]       .weight [O,I,3,3]
      .conv.modulation.*             .affine.*
      .noise.weight [1]              .noise_strength []
      .activate.bias                 .bias
    to_rgb1 / to_rgbs.k            b4.torgb / b{8*2^k}.torgb  (.conv.weight, .conv.modulation, .bias [1,3,1,1])
    noises.noise_{j} [1,1,R,R]     .noise_const [R,R]  (j = 0 for b4.conv1, then two per block)
    latent_avg                     mapping.w_avg

Only the generator is converted (rosinality's discriminator layout differs from NVIDIA's).
"""
from __future__ import annotations

import argparse
import math
import re
import zipfile

import torch

from ..errors import CheckpointError, GanpriorError
from ..limits import check_regular_file, check_zip_members
from ..nets.stylegan2 import StyleGAN2Generator
from .state import build_bounded, load_state_strict


def _layer_pairs(log2_res: int):
    """(rosinality prefix, nvidia prefix, noise index) for every styled conv."""
    yield "conv1", "synthesis.b4.conv1", 0
    for k in range(log2_res - 2):
        res = 8 * 2 ** k
        yield f"convs.{2 * k}", f"synthesis.b{res}.conv0", 2 * k + 1
        yield f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", 2 * k + 2


def _rgb_pairs(log2_res: int):
    yield "to_rgb1", "synthesis.b4.torgb"
    for k in range(log2_res - 2):
        yield f"to_rgbs.{k}", f"synthesis.b{8 * 2 ** k}.torgb"


def _infer_config(sd: dict, args) -> dict:
    n_mlp = len([k for k in sd if re.fullmatch(r"style\.\d+\.weight", k)])
    style_dim = sd["style.1.weight"].shape[1]
    log2 = len([k for k in sd if re.fullmatch(r"to_rgbs\.\d+\.bias", k)]) + 2
    res = 2 ** log2
    channels = {4: sd["conv1.conv.weight"].shape[1]}
    for k in range(log2 - 2):
        channels[8 * 2 ** k] = sd[f"convs.{2 * k}.conv.weight"].shape[1]
    channel_max = max(channels.values())
    # rosinality: 512 up to 32 px, then 256*m, 128*m, ... i.e. NVIDIA's channel_base = 16384*m
    multiplier = getattr(args, "channel_multiplier", None) or (channels[64] / 256 if 64 in channels else 2)
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) \
            or not 0 < multiplier <= 64:
        raise CheckpointError(f"channel_multiplier {multiplier!r} is not a number in (0, 64]")
    channel_base = int(16384 * multiplier)
    expect = {r: min(channel_base // r, channel_max) for r in channels}
    if expect != channels:
        raise CheckpointError(f"unsupported channel layout {channels} (not a rosinality StyleGAN2)")
    lr_mlp = getattr(args, "lr_mlp", 0.01) if args is not None else 0.01
    return dict(z_dim=style_dim, c_dim=0, w_dim=style_dim, img_resolution=res, img_channels=3,
                mapping_kwargs=dict(num_layers=n_mlp, lr_multiplier=lr_mlp),
                synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max,
                                      architecture="skip", conv_clamp=None))


def rosinality_to_nvidia(sd: dict, latent_avg: torch.Tensor | None, log2: int) -> dict:
    out = {}
    n_mlp = len([k for k in sd if re.fullmatch(r"style\.\d+\.weight", k)])
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"] = sd[f"style.{i + 1}.weight"]
        out[f"mapping.fc{i}.bias"] = sd[f"style.{i + 1}.bias"]
    out["mapping.w_avg"] = (latent_avg if latent_avg is not None
                            else torch.zeros(sd["style.1.weight"].shape[1])).reshape(-1)
    out["synthesis.b4.const"] = sd["input.input"][0]
    for src, dst, j in _layer_pairs(log2):
        out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape([])
        out[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
        out[f"{dst}.noise_const"] = sd[f"noises.noise_{j}"][0, 0]
    for src, dst in _rgb_pairs(log2):
        out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)
    return out


def rosinality_channels(resolution: int, multiplier: int) -> dict:
    """Channels per resolution that rosinality's Generator builds: 512 up to 32 px, then 256*m,
    128*m, ... (the table in its model.py)."""
    return {r: 512 if r <= 32 else 16384 * multiplier // r
            for r in (2 ** k for k in range(2, int(math.log2(resolution)) + 1))}


def _check_clamp_inactive(G: StyleGAN2Generator, n: int = 64):
    """NVIDIA's trained generators clamp activations at +-conv_clamp; rosinality's has no clamp.
    Dropping it changes nothing as long as no activation reaches it: check that on n samples."""
    syn = dict(G.config["synthesis_kwargs"], conv_clamp=None)
    with torch.random.fork_rng(devices=[]):  # building it must not move the caller's RNG
        free = StyleGAN2Generator(**dict(G.config, synthesis_kwargs=syn)).eval()
    device = G.mapping.w_avg.device
    free.load_state_dict(G.state_dict())
    free.to(device)
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
    clamped = 0
    with torch.no_grad():
        for ws in G.mapping(z, None).split(16):
            differ = G.synthesis(ws, noise_mode="const") != free.synthesis(ws, noise_mode="const")
            clamped += differ.flatten(1).any(1).sum().item()
    if clamped:
        raise CheckpointError(f"conv_clamp {G.config['synthesis_kwargs']['conv_clamp']} changes "
                              f"{clamped} of {n} sample images, and rosinality's generator has no "
                              "clamp; keep this one native")


def nvidia_to_rosinality(G: StyleGAN2Generator) -> dict:
    """Inverse of rosinality_to_nvidia, for `ganprior convert ... out.pt`."""
    cfg = G.config
    syn = cfg["synthesis_kwargs"]
    if (syn.get("architecture", "skip") != "skip" or G.c_dim or G.z_dim != G.w_dim
            or G.img_channels != 3):
        raise CheckpointError("rosinality's format holds only unconditional RGB skip generators "
                              "with z_dim == w_dim; keep this one native")
    base, multiplier = syn.get("channel_base", 32768), syn.get("channel_base", 32768) // 16384
    ours = {r: min(base // r, syn.get("channel_max", 512))
            for r in rosinality_channels(G.img_resolution, multiplier)}
    if (base % 16384 or G.img_resolution > 1024
            or ours != rosinality_channels(G.img_resolution, multiplier)):
        raise CheckpointError(f"rosinality's Generator cannot build these channels {ours} (it has "
                              "512 up to 32 px, then 256*m, 128*m, ... for an integer m, up to "
                              "1024 px); keep this one native")
    if syn.get("conv_clamp") is not None:
        _check_clamp_inactive(G)
    sd = G.state_dict()
    log2 = int(math.log2(G.img_resolution))
    out = {}
    for i in range(G.mapping.num_layers):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    out["input.input"] = sd["synthesis.b4.const"][None]
    for dst, src, j in _layer_pairs(log2):
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        out[f"noises.noise_{j}"] = sd[f"{src}.noise_const"][None, None]
    for dst, src in _rgb_pairs(log2):
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)
    # rosinality's state dict also holds its 2x upsampling FIR kernels as buffers (normalised
    # 2-D filter times factor^2); its load_state_dict is strict, so they must be there
    up_kernel = sd["synthesis.b4.resample_filter"] * 4
    for k in range(log2 - 2):
        out[f"convs.{2 * k}.conv.blur.kernel"] = up_kernel.clone()
        out[f"to_rgbs.{k}.upsample.kernel"] = up_kernel.clone()
    args = dict(size=G.img_resolution, latent=G.w_dim, n_mlp=G.mapping.num_layers,
                channel_multiplier=multiplier,  # an int: rosinality sizes tensors with it
                lr_mlp=cfg["mapping_kwargs"].get("lr_multiplier", 0.01))
    # args as a plain dict (not an argparse.Namespace) so the file loads with weights_only=True.
    return {"g_ema": {k: v.clone() for k, v in out.items()}, "latent_avg": sd["mapping.w_avg"].clone(),
            "args": args}


def check_torch_file(path):
    """Before torch.load: a regular file, and when it is a zip (torch.save's format), members
    whose declared sizes and compression ratios are bounded (zip bombs)."""
    try:
        check_regular_file(path)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                check_zip_members(zf, str(path))
    except GanpriorError as e:
        raise CheckpointError(str(e))
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read torch checkpoint: {e}")


def load_torch_file(path):
    """torch.load restricted to tensors and containers; argparse.Namespace (rosinality's `args`)
    is the one extra class allowed, since it is a plain attribute bag."""
    check_torch_file(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt / unsafe files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Unsupported global" in str(e) or "WeightsUnpickler" in str(e):
            msg = "the file asks to run code that is not part of a checkpoint (refused)"
        raise CheckpointError(f"{path}: cannot read torch checkpoint: {msg}")


def load_rosinality(path, data: dict) -> dict:
    sd = data.get("g_ema")
    if not isinstance(sd, dict) or "style.1.weight" not in sd:
        raise CheckpointError(f"{path}: no rosinality 'g_ema' state dict")
    args = data.get("args")
    if isinstance(args, dict):
        args = argparse.Namespace(**args)
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: 'g_ema' holds something other than tensors")
    if data.get("latent_avg") is not None and not isinstance(data["latent_avg"], torch.Tensor):
        raise CheckpointError(f"{path}: 'latent_avg' is not a tensor")
    try:
        cfg = _infer_config(sd, args)
        G = build_bounded(StyleGAN2Generator, cfg, str(path))  # sizes come from the file
        state = rosinality_to_nvidia(sd, data.get("latent_avg"), int(math.log2(cfg["img_resolution"])))
    except KeyError as e:
        raise CheckpointError(f"{path}: incomplete rosinality checkpoint (missing {e})")
    except (IndexError, TypeError, ValueError, RuntimeError, ZeroDivisionError) as e:
        raise CheckpointError(f"{path}: malformed rosinality checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})")
    # FIR filters: ours are rebuilt from the config (rosinality's kernel buffers are not read).
    state.update({k: v for k, v in G.state_dict().items() if k.endswith("resample_filter")})
    load_state_strict(G, state, str(path))
    meta = {"source": "rosinality-pt"}
    if data.get("latent_avg") is None:
        # Trained (not converted) rosinality files carry no average w; estimate it the way
        # rosinality's mean_latent() does, from 4096 random z (fixed seed: reproducible).
        with torch.no_grad():
            z = torch.randn(4096, G.z_dim, generator=torch.Generator().manual_seed(0))
            G.mapping.w_avg.copy_(G.mapping(z)[:, 0].mean(0))
        meta["w_avg"] = "estimated from 4096 samples (no latent_avg in file)"
    return {"G": G.eval().requires_grad_(False), "meta": meta}
