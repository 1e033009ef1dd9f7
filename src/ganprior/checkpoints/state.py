"""Pouring a state dict into a network, with one clear error line when they do not fit."""
from __future__ import annotations

import torch

from ..errors import CheckpointError


def load_state_strict(net: torch.nn.Module, state: dict, what: str):
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}"
                         + (" ..." if len(unexpected) > 3 else ""))
        if wrong:
            k = wrong[0]
            parts.append(f"shape of {k} is {tuple(state[k].shape)}, expected {tuple(own[k].shape)}")
        raise CheckpointError(f"{what}: weights do not match the network ({'; '.join(parts)})")
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
