"""Native format: `NAME.safetensors` (weights, `G.` / `D.` prefixes) + `NAME.json` (config).

The JSON holds everything needed to rebuild the networks and where they came from:

    {"format": "ganprior", "version": 1,
     "G": {"arch": "stylegan2", "kwargs": {...constructor kwargs...}},
     "D": {"arch": "stylegan2", "kwargs": {...}},          # optional
     "provenance": {...free-form: source, training command, license...}}
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..files import atomic_write, atomic_write_text
from ..nets.dcgan import DCGANGenerator
from ..nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from .state import load_state_strict

ARCHS = {
    ("G", "stylegan2"): StyleGAN2Generator,
    ("G", "dcgan"): DCGANGenerator,
    ("D", "stylegan2"): StyleGAN2Discriminator,
}
_ARCH_OF = {cls: arch for (_, arch), cls in ARCHS.items()}


def native_paths(path) -> tuple[Path, Path]:
    """(weights, config) for a path given as NAME, NAME.safetensors, NAME.json or a folder."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.safetensors"))
        if len(found) != 1:
            raise CheckpointError(f"{p}: expected one .safetensors file in the folder, found {len(found)}")
        p = found[0]
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_native(path, G, D=None, provenance: dict | None = None) -> tuple[Path, Path]:
    weights, config = native_paths(path)
    tensors, cfg = {}, {"format": "ganprior", "version": 1}
    for key, net in (("G", G), ("D", D)):
        if net is None:
            continue
        cfg[key] = {"arch": _ARCH_OF[type(net)], "kwargs": net.config}
        for name, t in net.state_dict().items():
            tensors[f"{key}.{name}"] = t.detach().cpu().contiguous()
    cfg["provenance"] = provenance or {}
    atomic_write(weights, lambda tmp: save_file(tensors, tmp, metadata={"format": "ganprior"}))
    atomic_write_text(config, json.dumps(cfg, indent=1) + "\n")
    return weights, config


def load_native(path) -> dict:
    weights, config = native_paths(path)
    if not config.exists():
        raise CheckpointError(f"{weights}: its config {config.name} is missing")
    if not weights.exists():
        raise CheckpointError(f"{config}: its weights {weights.name} are missing")
    try:
        cfg = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config}: not valid JSON ({e})")
    if not isinstance(cfg, dict) or cfg.get("format") != "ganprior" or "G" not in cfg:
        raise CheckpointError(f"{config}: not a ganprior model config")
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({e})")
    out = {"meta": {"source": "native", "provenance": cfg.get("provenance", {})}}
    for key in ("G", "D"):
        if key not in cfg:
            continue
        entry = cfg[key]
        cls = ARCHS.get((key, entry.get("arch") if isinstance(entry, dict) else None))
        if cls is None:
            raise CheckpointError(f"{config}: unknown {key} architecture {entry!r}")
        try:
            net = cls(**entry.get("kwargs", {}))
        except (TypeError, ValueError, AssertionError) as e:
            raise CheckpointError(f"{config}: bad {key} options ({e})")
        prefix = key + "."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        load_state_strict(net, state, f"{weights}:{key}")
        out[key] = net.eval().requires_grad_(False)
    return out


def to_device(nets: dict, device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.nn.Module) else v) for k, v in nets.items()}
