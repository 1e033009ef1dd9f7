"""Atomic file writes: a killed job never leaves half a file behind."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path, write: Callable[[str], None]) -> Path:
    """Call write(tmp_path) on a temporary file in the same folder, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs are for sharing
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path, obj, **kwargs) -> Path:
    """Atomic JSON file that other tools can parse: NaN / Infinity are refused (ValueError),
    not written as the non-standard tokens json.dumps emits by default."""
    return atomic_write_text(path, json.dumps(obj, allow_nan=False, **kwargs) + "\n")


def json_safe(value):
    """Non-finite floats -> None (JSON has no NaN/Infinity: a diverged loss or the PSNR of
    identical images is written as null), recursively through dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
