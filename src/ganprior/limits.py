"""Bounds on untrusted inputs: checked *before* the expensive step, so a small hostile file can
neither hang the tool nor make it allocate gigabytes.

- check_regular_file: FIFOs, devices and sockets block or never end when read; refuse them.
- check_zip_members: a zip member's declared size and compression ratio, before inflating it
  (torch.save files, zipped pickles and datasets are zips).
- check_tree: an unpickled structure whose containers are shared or cyclic can expand
  exponentially (or forever) when walked, copied or written as JSON; measure its size as a tree
  in linear time, iteratively (no recursion limit), and refuse cycles, depth and size.
"""
from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from .errors import GanpriorError

MAX_ZIP_MEMBER = 16 << 30      # bytes, uncompressed: far above any real checkpoint member
MAX_ZIP_TOTAL = 32 << 30
MAX_ZIP_RATIO = 50             # weights barely compress; a bomb inflates 1000x or more
ZIP_RATIO_FREE = 64 << 20      # small members (zero buffers compress well) are not ratio-checked
MAX_TREE_NODES = 2_000_000     # a 1024 px StyleGAN2 snapshot has ~1e5 containers
MAX_TREE_DEPTH = 100


def check_regular_file(path, what: str = "") -> Path:
    """`path` as a Path, or GanpriorError when it is missing or not a regular file."""
    p = Path(path)
    label = what or str(p)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise GanpriorError(f"{label}: no such file") from None
    except OSError as e:
        raise GanpriorError(f"{label}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device" if
                (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) else "not a regular file")
        raise GanpriorError(f"{label}: is {kind}, not a regular file")
    return p


def check_zip_members(zf: zipfile.ZipFile, what: str, max_member: int = MAX_ZIP_MEMBER,
                      max_total: int = MAX_ZIP_TOTAL, max_ratio: float = MAX_ZIP_RATIO,
                      names=None):
    """Refuse members whose declared size or compression ratio is out of bounds. Python's
    zipfile and torch's reader both stop at the declared size, so checking it bounds memory."""
    total = 0
    infos = zf.infolist() if names is None else [zf.getinfo(n) for n in names]
    for info in infos:
        size = info.file_size
        total += size
        if size > max_member:
            raise GanpriorError(f"{what}: zip member {info.filename} would inflate to "
                                f"{size / 2**30:.1f} GiB (limit {max_member / 2**30:.1f} GiB)")
        if size > ZIP_RATIO_FREE and size > max_ratio * max(info.compress_size, 1):
            raise GanpriorError(f"{what}: zip member {info.filename} inflates "
                                f"{size / max(info.compress_size, 1):.0f}x (a zip bomb?)")
    if total > max_total:
        raise GanpriorError(f"{what}: zip contents would inflate to {total / 2**30:.1f} GiB "
                            f"(limit {max_total / 2**30:.1f} GiB)")


def _children(obj):
    """Contained objects of a container, None for an atom (tensors, arrays, numbers, strings)."""
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    state = getattr(obj, "state", None)  # nvlabs.PersistentObject
    if type(obj).__name__ == "PersistentObject" and isinstance(state, dict):
        return [state]
    return None


def check_tree(root, what: str, max_nodes: int = MAX_TREE_NODES,
               max_depth: int = MAX_TREE_DEPTH) -> int:
    """Number of nodes `root` has when every shared container is counted each time it is
    reached (the cost of any recursive walk or JSON dump); GanpriorError when it is cyclic,
    deeper than max_depth or larger than max_nodes. Linear in the number of distinct objects."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, 0, None)]
    while stack:
        obj, depth, kids = stack.pop()
        i = id(obj)
        if kids is not None:  # second visit: all children are sized
            on_path.discard(i)
            sizes[i] = 1 + sum(sizes.get(id(k), 1) for k in kids)
            if sizes[i] > max_nodes:
                raise GanpriorError(f"{what}: the file's structure expands to more than "
                                    f"{max_nodes:,} objects (shared references; refused)")
            continue
        if i in sizes:
            continue
        if i in on_path:
            raise GanpriorError(f"{what}: the file's structure contains itself (a cycle; refused)")
        children = _children(obj)
        if children is None:
            continue
        if depth > max_depth:
            raise GanpriorError(f"{what}: the file's structure is nested deeper than "
                                f"{max_depth} levels (refused)")
        on_path.add(i)
        stack.append((obj, depth, children))
        stack.extend((k, depth + 1, None) for k in children if _children(k) is not None)
    return sizes.get(id(root), 1)
