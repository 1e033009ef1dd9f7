"""Device selection: never hard-code cuda."""
from __future__ import annotations

import re

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu. An unavailable explicit choice is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(name, str) or not re.fullmatch(r"cpu|mps|cuda(:\d{1,3})?", name):
        # torch.device() accepts 'meta', 'xpu', ... (no real computation, or an accelerator we
        # never test) and raises a RuntimeError for nonsense: refuse both in one line
        raise ValueError(f"--device must be auto, cpu, cuda, cuda:N or mps, not {name!r}")
    dev = torch.device(name)
    if dev.type == "cuda" and (not torch.cuda.is_available()
                               or (dev.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"device {name} is not available "
                         f"({torch.cuda.device_count()} CUDA GPUs found)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None)
                                  and torch.backends.mps.is_available()):
        raise ValueError("device mps is not available")
    return dev


def describe_device(dev) -> str:
    """One line naming the hardware a measurement ran on (for logs and model provenance)."""
    import os
    dev = torch.device(dev)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    elif dev.type == "mps":
        name = "Apple GPU (mps)"
    else:
        name = f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} threads"
    return f"{name}, torch {torch.__version__}"
