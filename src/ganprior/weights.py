"""Optional pretrained networks (perceptual losses and metrics), found where users keep them.

Each file is looked for, in this order (the first that exists wins):
1. the ganprior weights folder: $GANPRIOR_WEIGHTS, else ~/.cache/ganprior/weights;
2. torchvision's cache, for the files torchvision publishes (VGG16, VGG19):
   torch.hub.get_dir()/checkpoints, i.e. $TORCH_HOME/hub/checkpoints;
3. the installed `lpips` package, for its linear layers (lpips/weights/v0.1/vgg.pth). The
   package is located without being imported: importing it would import torchvision.
GANPRIOR_WEIGHTS_ONLY=1 restricts the search to the weights folder (the test suite sets it, so
that files a developer happens to have elsewhere cannot change what the tests see).

`ganprior weights list` shows what is where and what each file enables, `download` fetches the
missing ones (streamed, hash-checked, atomic), `verify` checks their SHA-256. Missing weights
are never fatal: callers fall back and say so.
"""
from __future__ import annotations

import hashlib
import http.client
import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import GanpriorError
from .limits import check_regular_file
from .progress import on_terminal

WEIGHTS_FOLDER = "weights folder"
TORCH_CACHE = "torchvision cache"
LPIPS_PACKAGE = "lpips package"


@dataclass(frozen=True)
class WeightFile:
    name: str
    filename: str
    url: str
    # SHA-256 of the file as published (all of it or a prefix), hex; "" = no hash is known.
    # torchvision names its files by the first 8 hex digits of their SHA-256 (the same check
    # torch.hub's check_hash does). The LPIPS hash is that of v0.1/vgg.pth in the lpips 0.1.4
    # wheel on PyPI, byte-identical to the file in the PerceptualSimilarity repository.
    sha256_prefix: str
    purpose: str  # what the file is
    enables: str = ""  # what it switches on in ganprior (`weights list` prints it)
    # where else users already have it: TORCH_CACHE (under its own filename) or LPIPS_PACKAGE
    # (at `package_path` inside the installed lpips package)
    also_in: tuple[str, ...] = ()
    package_path: str = ""


REGISTRY = {w.name: w for w in [
    WeightFile("vgg16", "vgg16-397923af.pth",
               "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af",
               "VGG16 (ImageNet, torchvision's IMAGENET1K_V1)",
               "--loss vgg, auto's perceptual term (mGANprior relu3_3); LPIPS backbone",
               also_in=(TORCH_CACHE,)),
    WeightFile("vgg19", "vgg19-dcbb9e9d.pth",
               "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "dcbb9e9d",
               "VGG19 (ImageNet, torchvision's IMAGENET1K_V1)",
               "pix2pixHD's VGG19 perceptual loss (relu1_1 ... relu5_1)",
               also_in=(TORCH_CACHE,)),
    WeightFile("lpips-vgg", "lpips_vgg_v0.1.pth",
               "https://github.com/richzhang/PerceptualSimilarity/raw/master/"
               "lpips/weights/v0.1/vgg.pth",
               "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
               "LPIPS v0.1 linear layers for the VGG backbone (BSD-2)",
               "LPIPS (+ vgg16): `metrics`, --loss lpips, --tune, PadInv encoder",
               also_in=(LPIPS_PACKAGE,), package_path="weights/v0.1/vgg.pth"),
    WeightFile("inception-fid", "inception-2015-12-05.pt",
               "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
               "inception-2015-12-05.pt", "",
               "NVIDIA's TorchScript Inception-v3 (TF 2015-12-05 weights)",
               "FID/KID: `ganprior fid`, `train stylegan2` snapshots"),
]}


def cache_dir() -> Path:
    """The ganprior weights folder: $GANPRIOR_WEIGHTS, else ~/.cache/ganprior/weights."""
    return Path(os.environ.get("GANPRIOR_WEIGHTS", Path.home() / ".cache" / "ganprior" / "weights"))


def torch_cache_dir() -> Path:
    """torchvision's download folder (honours TORCH_HOME, XDG_CACHE_HOME, torch.hub.set_dir)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def lpips_package_dir() -> Path | None:
    """The folder of the installed `lpips` package, or None. Found without importing it."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):  # a broken install, or a module without a spec
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def only_own_folder() -> bool:
    return os.environ.get("GANPRIOR_WEIGHTS_ONLY", "") not in ("", "0")


def path_of(name: str) -> Path:
    """Where `name` goes in the ganprior weights folder (downloads are written there)."""
    return cache_dir() / REGISTRY[name].filename


def places(name: str) -> list[tuple[str, Path]]:
    """Every (place, path) where `name` is looked for, in the order it is looked for."""
    w = REGISTRY[name]
    found = [(WEIGHTS_FOLDER, path_of(name))]
    if only_own_folder():
        return found
    if TORCH_CACHE in w.also_in:
        found.append((TORCH_CACHE, torch_cache_dir() / w.filename))
    package = lpips_package_dir() if LPIPS_PACKAGE in w.also_in else None
    if package is not None:
        found.append((LPIPS_PACKAGE, package / w.package_path))
    return found


def locate(name: str) -> tuple[str, Path] | None:
    """(place, path) of the first place that has `name`, or None."""
    return next(((place, p) for place, p in places(name) if p.exists()), None)


def find(name: str) -> Path | None:
    """The path of `name` (weights folder first, then the shared places), or None."""
    found = locate(name)
    return found[1] if found else None


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
        return f"hash mismatch (expected sha256 {want[:16]}...)"
    return "ok"


def download(name: str, timeout: float = 30, force: bool = False) -> Path:
    """Fetch `name` into the weights folder and return its path. Streamed to a temporary file
    beside the destination, checked against the known SHA-256 while it arrives, and renamed
    into place only when complete and matching: a failed, refused or interrupted download
    leaves no file (and whatever was there before untouched). Without `force`, a file already
    present and verified (in any place) is returned as it is."""
    w = REGISTRY[name]
    if not force and verify(name) == "ok":
        return find(name)
    dest = path_of(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # torch.hub's urlopen has no timeout argument; the socket default applies to it
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(w.url, str(dest), hash_prefix=w.sha256_prefix or None,
                                       progress=on_terminal())
    except RuntimeError as e:
        if "invalid hash value" not in str(e):
            raise
        raise GanpriorError(f"downloaded {name} from {w.url} but its sha256 does not start "
                            f"with {w.sha256_prefix[:16]}: refused, nothing was written")
    except (OSError, http.client.HTTPException, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise GanpriorError(f"cannot download {name} from {w.url} ({reason}); offline? Put "
                            f"{w.filename} into {cache_dir()} by hand{_or_elsewhere(w)}")
    finally:
        socket.setdefaulttimeout(previous)
    return dest


def _or_elsewhere(w: WeightFile) -> str:
    if TORCH_CACHE in w.also_in:
        return f" (or into torchvision's cache {torch_cache_dir()})"
    if LPIPS_PACKAGE in w.also_in:
        return " (or `pip install lpips --no-deps`, which ships it)"
    return ""


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
