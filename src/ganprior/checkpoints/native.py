"""Native format: `NAME.safetensors` (weights, prefixed `KEY.` per network) + `NAME.json`.

The JSON holds everything needed to rebuild the networks and where they came from:

    {"format": "ganprior", "version": 1,
     "G": {"arch": "stylegan2", "role": "G", "kwargs": {...constructor config...}},
     "D": {"arch": "stylegan2", "role": "D", "kwargs": {...}},      # optional
     "E": {"arch": "padinv", "role": "E", "kwargs": {...}},         # optional, any more keys
     "provenance": {...free-form: source, training command, license...}}

Each network is rebuilt with nets.registry.build, which refuses unknown options and
oversized configs before allocating anything. Files without "role" (older ones) use the key.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError, GanpriorError
from ..files import atomic_write, atomic_write_text
from ..limits import check_regular_file
from ..nets.registry import build
from .state import load_state_strict

MAX_CONFIG_BYTES = 1 << 20  # a real config is a few KB
_NOT_NETWORKS = {"format", "version", "provenance"}


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


def save_native(path, G, D=None, provenance: dict | None = None,
                more: dict | None = None) -> tuple[Path, Path]:
    """Write G (and D, and the networks in `more`, {key: network}, e.g. encoders)."""
    weights, config = native_paths(path)
    tensors, cfg = {}, {"format": "ganprior", "version": 1}
    for key, net in {"G": G, "D": D, **(more or {})}.items():
        if net is None:
            continue
        if key in _NOT_NETWORKS or "." in key:
            raise ValueError(f"{key!r} cannot name a network in a native checkpoint")
        cfg[key] = {"arch": net.arch, "role": net.role, "kwargs": net.config}
        for name, t in net.state_dict().items():
            tensors[f"{key}.{name}"] = t.detach().cpu().contiguous()
    cfg["provenance"] = provenance or {}
    atomic_write(weights, lambda tmp: save_file(tensors, tmp, metadata={"format": "ganprior"}))
    atomic_write_text(config, json.dumps(cfg, indent=1) + "\n")
    return weights, config


def read_config(config: Path):
    """The JSON in `config`, refusing (CheckpointError, one line) what is not a regular file
    (a FIFO would block the read forever), over MAX_CONFIG_BYTES, or not valid JSON."""
    try:
        check_regular_file(config)
    except GanpriorError as e:
        raise CheckpointError(str(e))
    if config.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{config}: {config.stat().st_size:,} bytes is too large for a config")
    try:
        return json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        # ValueError: JSONDecodeError, and numbers past Python's 4300-digit limit;
        # RecursionError: deeply nested arrays
        raise CheckpointError(f"{config}: not valid JSON ({str(e)[:200]})")


def read_safetensors(weights: Path) -> dict:
    """The tensors of a safetensors file; CheckpointError (one line) when it cannot be read."""
    try:
        return load_file(weights)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({e})")


def load_native(path) -> dict:
    weights, config = native_paths(path)
    if not config.exists():
        raise CheckpointError(f"{weights}: its config {config.name} is missing")
    if not weights.exists():
        raise CheckpointError(f"{config}: its weights {weights.name} are missing")
    cfg = read_config(config)
    if not isinstance(cfg, dict) or cfg.get("format") != "ganprior" or "G" not in cfg:
        raise CheckpointError(f"{config}: not a ganprior model config")
    tensors = read_safetensors(weights)
    out = {"meta": {"source": "native", "provenance": cfg.get("provenance", {})}}
    for key, entry in cfg.items():
        if key in _NOT_NETWORKS:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("arch"), str):
            raise CheckpointError(f"{config}: {key} is not a network entry "
                                  f"(needs 'arch' and 'kwargs')")
        try:
            net = build(entry["arch"], entry.get("kwargs", {}), role=entry.get("role", key),
                        what=f"{config}:{key}")
        except ValueError as e:
            raise CheckpointError(str(e))
        prefix = key + "."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        load_state_strict(net, state, f"{weights}:{key}")
        out[key] = net.eval().requires_grad_(False)
    return out


def to_device(nets: dict, device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.nn.Module) else v) for k, v in nets.items()}
