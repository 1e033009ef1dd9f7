"""Option checks run before any model is loaded or any file written: each bad value is one
ValueError (one `error:` line, exit 1), never NaN flowing into the maths, a list of 10^12 seeds
in memory, or a traceback after minutes of work."""
from __future__ import annotations

import math
import os
from pathlib import Path

MAX_SEEDS = 100_000         # generate / mix hold per-seed latents; more is a typo, not a run
MAX_SEED = 2 ** 32 - 1      # NVIDIA's seeds are numpy RandomState seeds
MAX_MIX_CELLS = 4096        # rows x cols images of the mixing grid, all in memory
MAX_BATCH = 4096
MAX_STEPS = 10_000_000
MAX_SIZE = 1 << 20          # channels, dims, resolutions


def finite(value: float, option: str, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False) -> float:
    """A finite number in [lo, hi] (or (lo, hi] with lo_open)."""
    if value is None or not math.isfinite(value):
        raise ValueError(f"{option} must be a finite number, not {value}")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ValueError(f"{option} must be {'>' if lo_open else '>='} {lo:g}, not {value:g}")
    if hi is not None and value > hi:
        raise ValueError(f"{option} must be <= {hi:g}, not {value:g}")
    return value


def integer(value: int | None, option: str, lo: int = 0, hi: int = MAX_SIZE,
            optional: bool = False) -> int | None:
    """An integer in [lo, hi]; None passes when `optional` (the option was not given)."""
    if value is None and optional:
        return None
    if value is None or not lo <= value <= hi:
        raise ValueError(f"{option} must be an integer from {lo} to {hi}, not {value}")
    return value


def count_range(text: str, option: str) -> int:
    """How many values '0-3,7,10-11' stands for, without building the list."""
    from ..generate import range_parts
    return sum(hi - lo + 1 for lo, hi in range_parts(text, option, MAX_SEED))


def seed_list(text: str, option: str = "--seeds", limit: int = MAX_SEEDS) -> list[int]:
    """The seeds of a range list, refused when it stands for more than `limit` values."""
    from ..generate import parse_range
    n = count_range(text, option)
    if n > limit:
        raise ValueError(f"{option} {text!r} stands for {n:,} values; at most {limit:,} per run")
    return parse_range(text, option.lstrip("-"))


def mix_grid(rows: str, cols: str) -> tuple[list[int], list[int]]:
    r, c = seed_list(rows, "--rows"), seed_list(cols, "--cols")
    if len(r) * len(c) > MAX_MIX_CELLS:
        raise ValueError(f"a {len(r)} x {len(c)} mixing grid is {len(r) * len(c):,} images; "
                         f"at most {MAX_MIX_CELLS:,} (all of them are held in memory)")
    return r, c


def noise_mode(value: str) -> str:
    if value not in ("const", "random", "none"):
        raise ValueError(f"--noise-mode must be const, random or none, not {value!r}")
    return value


def truncation(psi: float, cutoff: int | None) -> None:
    finite(psi, "--trunc")
    integer(cutoff, "--trunc-cutoff", 0, 1024, optional=True)


def _first_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def out_dir(path, option: str = "--out") -> Path:
    """A folder the command may create or write into: not an existing file, and under a
    writable existing ancestor (a read-only place fails here, before the work)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{option} {p} is an existing file, not a folder")
    base = _first_existing(p)
    if not base.is_dir():
        raise ValueError(f"{option} {p}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {p}: {base} is not writable")
    return p


def out_file(path, option: str = "--out") -> Path:
    """A file the command will write (atomically, into its folder): not a folder, and its
    folder creatable/writable."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option} {p} is a folder, not a file")
    out_dir(p.parent, option)
    return p


def device(name: str):
    from ..device import pick_device
    return pick_device(name)
