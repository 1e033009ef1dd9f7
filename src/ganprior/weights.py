"""Optional pretrained networks (perceptual losses and metrics), kept in a cache folder.

The folder is $GANPRIOR_WEIGHTS, else ~/.cache/ganprior/weights. `ganprior weights list`
shows what is there, `download` fetches the files (only where a network exists), `verify`
checks their SHA-256. Missing weights are never fatal: callers fall back and say so.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import GanpriorError
from .files import atomic_write
from .limits import check_regular_file


@dataclass(frozen=True)
class WeightFile:
    name: str
    filename: str
    url: str
    # SHA-256 of the file as published (all of it or a prefix), hex; "" = no hash is known.
    # torchvision names its files by the first 8 hex digits of their SHA-256 (the same check
    # torch.hub's check_hash does); for the others no official hash is published.
    sha256_prefix: str
    purpose: str


REGISTRY = {w.name: w for w in [
    WeightFile("vgg16", "vgg16-397923af.pth",
               "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af",
               "VGG16 (ImageNet, torchvision): mGANprior's perceptual loss (relu3_3), LPIPS backbone"),
    WeightFile("lpips-vgg", "lpips_vgg_v0.1.pth",
               "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
               "", "LPIPS v0.1 linear layers for the VGG backbone (BSD-2)"),
    WeightFile("inception-fid", "inception-2015-12-05.pt",
               "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
               "inception-2015-12-05.pt", "",
               "NVIDIA's TorchScript Inception-v3 (TF 2015-12-05 weights) for FID/KID"),
]}


def cache_dir() -> Path:
    return Path(os.environ.get("GANPRIOR_WEIGHTS", Path.home() / ".cache" / "ganprior" / "weights"))


def path_of(name: str) -> Path:
    return cache_dir() / REGISTRY[name].filename


def find(name: str) -> Path | None:
    p = path_of(name)
    return p if p.exists() else None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


UNVERIFIED = "unverified (no known hash)"


def verify(name: str) -> str:
    """'ok' (the SHA-256 matches the published one), 'missing', UNVERIFIED (installed, but no
    published hash to check it against: never reported as ok), or what is wrong."""
    p = find(name)
    if p is None:
        return "missing"
    try:
        check_regular_file(p)
    except GanpriorError as e:
        return str(e)
    want = REGISTRY[name].sha256_prefix
    if not want:
        return UNVERIFIED
    if not sha256(p).startswith(want):
        return f"hash mismatch (expected sha256 {want}...)"
    return "ok"


def download(name: str, timeout: float = 30) -> Path:
    w = REGISTRY[name]
    dest = path_of(name)
    try:
        with urllib.request.urlopen(w.url, timeout=timeout) as r:
            data = r.read()
    except OSError as e:
        raise GanpriorError(f"cannot download {name} from {w.url} ({e}); offline? Put "
                            f"{w.filename} into {cache_dir()} by hand")
    atomic_write(dest, lambda tmp: Path(tmp).write_bytes(data))
    status = verify(name)
    if status not in ("ok", UNVERIFIED):  # without a known hash the file is kept, unverified
        dest.unlink()
        raise GanpriorError(f"downloaded {name} but {status}; file removed")
    return dest


def load_state(name: str) -> dict | None:
    """The state dict of a weight file, or None when it is not installed."""
    from .checkpoints.rosinality import check_torch_file
    p = find(name)
    if p is None:
        return None
    try:
        check_torch_file(p)
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt files make torch raise many types; all mean "unreadable"
        text = str(e).strip()
        # torch's weights_only failures start with paragraphs of advice; the reason is at the end
        text = text.split("WeightsUnpickler error:")[-1].strip() or type(e).__name__
        msg = text.splitlines()[0]
        raise GanpriorError(f"{p}: corrupt {name} weights ({msg}); delete the file or "
                            f"`ganprior weights download {name}`")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GanpriorError(f"{p}: not a state dict of {name} weights; delete the file or "
                            f"`ganprior weights download {name}`")
    return state
