"""The model zoo: embedded default models that work offline, on CPU, with no download.

- `dcgan-digiface64` is read from the data of the PyPI package `gan-face-generate==1.1.1`
  (MIT, DCGAN trained on DigiFace-1M), installed with `pip install --no-deps`.
- Native models shipped with ganprior live in `ganprior/zoo/NAME.{safetensors,json}` and are
  listed automatically; each JSON carries its provenance (training command, data, quality).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import torch

from ..errors import CheckpointError
from ..nets.registry import build
from .native import load_native
from .state import load_state_strict

ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
DEFAULT_MODEL = "dcgan-digiface64"
DEFAULT_STYLE_MODEL = "stylegan2-digiface64"  # for W / W+ work: inversion, mixing, dragging


@dataclass
class ZooEntry:
    name: str
    arch: str
    resolution: int
    latent_spaces: tuple[str, ...]
    source: str
    load: Callable[[], dict]
    locate: Callable[[], Path]  # raises CheckpointError when the weights are not installed

    def availability(self) -> str:
        try:
            self.locate()
            return "ok"
        except CheckpointError as e:
            return str(e)


def dcgan_digiface_path() -> Path:
    try:
        path = Path(str(resources.files("gan_face_generate") / "weights.tar"))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.exists():
        raise CheckpointError("dcgan-digiface64 needs its weights package: "
                              "pip install --no-deps gan-face-generate==1.1.1")
    return path


def load_dcgan_digiface() -> dict:
    path = dcgan_digiface_path()
    # A zip-format torch file; weights_only keeps it from running code.
    data = torch.load(path, map_location="cpu", weights_only=True)
    G = build("dcgan", dict(z_dim=100, ngf=64, img_resolution=64, img_channels=3))
    load_state_strict(G, data["netG_state_dict"], str(path))
    meta = {"source": "zoo", "provenance": {
        "name": "dcgan-digiface64", "package": "gan-face-generate==1.1.1", "license": "MIT",
        "data": "DigiFace-1M (synthetic faces)", "file": str(path)}}
    return {"G": G.eval().requires_grad_(False), "meta": meta}


def zoo_entries() -> dict[str, ZooEntry]:
    entries = {"dcgan-digiface64": ZooEntry(
        "dcgan-digiface64", "dcgan", 64, ("z",),
        "PyPI gan-face-generate 1.1.1 (MIT), DCGAN trained on DigiFace-1M", load_dcgan_digiface,
        dcgan_digiface_path)}
    for cfg_path in sorted(ZOO_DIR.glob("*.json")):
        cfg = json.loads(cfg_path.read_text())
        g = cfg["G"]
        prov = cfg.get("provenance", {})
        entries[cfg_path.stem] = ZooEntry(
            cfg_path.stem, g["arch"], _resolution(g, prov), _inputs(g["arch"]),
            prov.get("summary", "trained by ganprior"),
            lambda p=cfg_path: load_native(p), lambda p=cfg_path: p)
    return entries


def _inputs(arch: str) -> tuple[str, ...]:
    """What the generator is driven by: latent spaces, or a label map (pix2pixHD)."""
    if arch == "stylegan2":
        return ("z", "w", "w+")
    return ("label map",) if arch.startswith("pix2pixhd") else ("z",)


def _resolution(g: dict, prov: dict) -> int:
    """Latent generators fix their size; a label-to-image one is fully convolutional, so the
    size it was trained at (its provenance) is the one to report."""
    if "img_resolution" in g["kwargs"]:
        return int(g["kwargs"]["img_resolution"])
    trained = (prov.get("pix2pixhd") or {}).get("resolution") or [0]
    return int(trained[0])


def default_model(needs_w: bool = False) -> str:
    """The zoo model a command uses when none is named: the StyleGAN2 one for W-space work."""
    if not needs_w:
        return DEFAULT_MODEL
    if DEFAULT_STYLE_MODEL not in zoo_entries():
        raise CheckpointError(f"the default StyleGAN2 model {DEFAULT_STYLE_MODEL} is not installed; "
                              "pass --model with a StyleGAN2 checkpoint")
    return DEFAULT_STYLE_MODEL
