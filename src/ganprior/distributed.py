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


def average_gradients(params, world: int) -> None:
    """Average the gradients of `params` over the `world` processes of the default group, in
    place: one all_reduce of all of them flattened (a parameter without a gradient is left
    out). An inf on any rank reaches every rank, so an AMP scaler skips the same steps
    everywhere."""
    if world == 1:
        return
    import torch
    import torch.distributed as dist
    params = [p for p in params if p.grad is not None]
    if params:
        flat = torch.cat([p.grad.flatten() for p in params])
        dist.all_reduce(flat)
        flat /= world
        for p, g in zip(params, flat.split([p.numel() for p in params])):
            p.grad.copy_(g.reshape(p.shape))
