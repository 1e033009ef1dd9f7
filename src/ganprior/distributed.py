"""Where this process stands among the processes torchrun started."""
from __future__ import annotations

import os


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment (RANK, WORLD_SIZE); (0, 1) when the
    process was started alone. Refuses values that cannot describe a process group."""
    try:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        raise ValueError(f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE="
                         f"{os.environ.get('WORLD_SIZE')!r} must be integers")
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return rank, world
