"""The image files a command works on: files and folders given on the command line."""
from __future__ import annotations

import stat
from collections import Counter
from pathlib import Path

from .images import IMAGE_SUFFIXES


def list_inputs(inputs) -> list[Path]:
    """Image files from files and folders (a folder's images sorted by name, not recursive).
    Stems must be unique, since outputs are named after them. A named input that is not a
    regular file (a FIFO, a device) is refused here, before anything would block reading it;
    a folder's entries are checked when they are read."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.exists():
            if not stat.S_ISREG(item.stat().st_mode):
                raise ValueError(f"{item}: not a regular file")
            files.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    dup = {s for s, k in Counter(p.stem for p in files).items() if k > 1}
    if dup:
        raise ValueError(f"inputs share names, outputs would collide: {', '.join(sorted(dup))}")
    if not files:
        raise ValueError("no input images found")
    return files
