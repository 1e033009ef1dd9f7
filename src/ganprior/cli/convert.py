"""`ganprior convert`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import validate
from .common import _load, console, user_errors


@user_errors
def convert(
    src: str = typer.Argument(..., help="Input: zoo name, .pkl, .pt or .safetensors."),
    dst: Path = typer.Argument(..., help="Output: NAME.safetensors (native, + NAME.json), "
                               "NAME.pt (rosinality layout) or NAME.pkl (NVIDIA, needs "
                               "--nvlabs-code)."),
    nvlabs_code: Optional[Path] = typer.Option(
        None, envvar="NVLABS_SG2ADA", show_default="$NVLABS_SG2ADA",
        help="For .pkl output: your stylegan2-ada-pytorch checkout. "
        "NVIDIA's pickles carry their source code, so the file is built with their classes "
        "from that folder."),
):
    """Convert a checkpoint between formats (NVIDIA .pkl / rosinality .pt -> native, etc.)."""
    from ..checkpoints import save_networks
    validate.out_file(dst, "DST")
    nets = _load(src, "cpu")
    written = save_networks(nets, dst, nvlabs_code=nvlabs_code)
    console.print("wrote " + ", ".join(str(p) for p in written))
