"""Load generators (and discriminators) from any supported source.

    load_networks("dcgan-digiface64")        # a zoo name
    load_networks("ffhq.pkl")                # NVIDIA stylegan2-ada / stylegan3-repo pickle
    load_networks("550000.pt")               # rosinality checkpoint
    load_networks("model.safetensors")       # native (with model.json beside it)

Formats are recognised by content, not by extension.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, GanpriorError
from ..limits import check_regular_file
from ..nets.base import GeneratorBase
from .native import load_native, native_paths, save_native, to_device
from .nvlabs import load_nvlabs_pickle
from .rosinality import load_rosinality, load_torch_file, nvidia_to_rosinality
from .zoo import zoo_entries

__all__ = ["load_networks", "load_generator", "save_native", "detect_format", "zoo_entries",
           "save_networks"]

_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


def detect_format(path) -> str:
    """'native', 'nvlabs-pkl' or 'torch' (zip or legacy torch.save file)."""
    p = Path(path)
    if p.is_dir() or p.suffix in (".safetensors", ".json"):
        return "native"
    if not p.exists():
        raise CheckpointError(f"{p}: no such file (and not a zoo model: "
                              f"{', '.join(zoo_entries())})")
    try:
        check_regular_file(p)  # open() on a FIFO would block forever
    except GanpriorError as e:
        raise CheckpointError(str(e))
    with open(p, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") or head.startswith(_TORCH_LEGACY_MAGIC):
        return "torch"
    if head[:1] == b"\x80":
        return "nvlabs-pkl"
    if native_paths(p)[1].exists():
        return "native"
    raise CheckpointError(f"{p}: unknown checkpoint format (expected an NVIDIA .pkl, a "
                          "rosinality .pt or a ganprior .safetensors + .json)")


def load_networks(spec, device="auto") -> dict:
    """Load a model: {'G': generator, 'D': discriminator (when the file has one), 'meta':
    provenance}.

    `spec` is a zoo name (`ganprior models`) or a checkpoint file (NVIDIA .pkl, rosinality
    .pt, ganprior .safetensors + .json; recognised by content). `device` is "auto" (CUDA, then
    MPS, then CPU), "cpu", "cuda", "cuda:N", "mps" or a torch.device. The networks come back
    in eval mode with gradients off. Bad files raise CheckpointError (one line).
    """
    spec = str(spec)
    device = _device(device)
    zoo = zoo_entries()
    if spec in zoo:
        nets = zoo[spec].load()
        nets["meta"]["name"] = spec
    else:
        fmt = detect_format(spec)
        if fmt == "native":
            nets = load_native(spec)
        elif fmt == "nvlabs-pkl":
            nets = load_nvlabs_pickle(spec)
        else:
            data = load_torch_file(spec)
            if isinstance(data, dict) and "g_ema" in data:
                nets = load_rosinality(spec, data)
            else:
                raise CheckpointError(f"{spec}: a torch file, but not a rosinality StyleGAN2 "
                                      "checkpoint (no 'g_ema')")
        nets["meta"]["name"] = Path(spec).stem
    return to_device(nets, device)


def load_generator(spec, device="auto") -> GeneratorBase:
    """The generator of `spec` (a zoo name or checkpoint file), e.g.
    `load_generator("stylegan2-digiface64")`; see `load_networks` for `device`."""
    return load_networks(spec, device)["G"]


def _device(device):
    """A device name ("auto", "cpu", "cuda:1", ...) checked and resolved; torch.device as is."""
    if isinstance(device, str):
        from ..device import pick_device
        return pick_device(device)
    return device


def save_networks(nets: dict, out, nvlabs_code=None) -> list[Path]:
    """Write `nets` to `out`: native (.safetensors), rosinality (.pt) or NVIDIA (.pkl, built with
    the NVIDIA checkout at `nvlabs_code`), chosen by extension."""
    out = Path(out)
    if out.suffix == ".pt":
        import torch

        from ..files import atomic_write
        data = nvidia_to_rosinality(nets["G"])
        atomic_write(out, lambda tmp: torch.save(data, tmp))
        return [out]
    if out.suffix == ".pkl":
        if nvlabs_code is None:
            raise CheckpointError("writing NVIDIA .pkl needs NVIDIA's stylegan2-ada-pytorch "
                                  "checkout (that format embeds its source code): pass its folder "
                                  "with --nvlabs-code")
        from .nvlabs import save_nvlabs_pickle
        return [save_nvlabs_pickle(nets, out, nvlabs_code)]
    prov = dict(nets.get("meta", {}).get("provenance", {}))
    prov.setdefault("converted_from", nets.get("meta", {}).get("source"))
    return list(save_native(out, nets["G"], nets.get("D"), provenance=prov))
