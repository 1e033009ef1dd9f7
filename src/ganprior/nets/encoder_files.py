"""Encoder files: NAME.safetensors (weights) + NAME.json (kind, constructor config, training).

Kept beside the encoder classes, not in train/, because inference (inversion's encoder and
hybrid methods, the demo) reads them too.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..files import atomic_write, atomic_write_text
from .encoders import LatentEncoder, PadInvEncoder
from .registry import build

ZOO_ENCODERS = Path(__file__).resolve().parent.parent / "zoo" / "encoders"


def save_encoder(E: LatentEncoder | PadInvEncoder, out, info: dict):
    out = Path(out)
    tensors = {k: v.detach().cpu().contiguous() for k, v in E.state_dict().items()}
    atomic_write(out.with_suffix(".safetensors"), lambda tmp: save_file(tensors, tmp))
    kind = "padinv" if isinstance(E, PadInvEncoder) else "latent"
    atomic_write_text(out.with_suffix(".json"), json.dumps(
        {"format": "ganprior-encoder", "kind": kind, "config": E.config, "training": info},
        indent=1) + "\n")


def zoo_encoder(model_name: str) -> Path | None:
    """The shipped encoder of a zoo model (e.g. dcgan-digiface64), if there is one."""
    path = ZOO_ENCODERS / model_name
    return path if path.with_suffix(".json").exists() else None


def load_encoder(path, device="cpu") -> tuple[torch.nn.Module, dict]:
    path = Path(path)
    cfg_path, w_path = path.with_suffix(".json"), path.with_suffix(".safetensors")
    try:
        cfg = json.loads(cfg_path.read_text())
        E = build(cfg.get("kind", "latent"), cfg["config"], role="E", what=str(cfg_path))
        E.load_state_dict(load_file(w_path))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a usable encoder ({e})")
    return E.eval().requires_grad_(False).to(device), cfg
