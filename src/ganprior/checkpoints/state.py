"""Building a network from a checkpoint's config and pouring its weights in, with one clear
error line when they do not fit, and bounds checked before anything large is allocated."""
from __future__ import annotations

import math

import torch

from ..errors import CheckpointError
from ..nets.registry import ARCHS, MAX_PARAMETERS, build  # one limit for every format

MAX_OPTION = 1 << 20          # no size option of a real network (z_dim, channels, px) is larger


def _check_numbers(value, where: str, what: str):
    """Every number in a constructor config must be finite, >= 0 and below MAX_OPTION."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_numbers(v, f"{where}.{k}" if where else str(k), what)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_numbers(v, f"{where}[{i}]", what)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if not 0 <= value <= MAX_OPTION:
            raise CheckpointError(f"{what}: option {where} = {value} is out of range "
                                  f"(0 .. {MAX_OPTION})")
    elif isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise CheckpointError(f"{what}: option {where} = {value} is not a finite number >= 0")


def build_bounded(cls, kwargs: dict, what: str, max_parameters: int = MAX_PARAMETERS):
    """cls(**kwargs) from a foreign file's options (NVIDIA .pkl, rosinality .pt), after the
    registry's checks (known keys, sizes, parameters counted on the meta device): a 300-byte
    config asking for z_dim 8e6 is refused, not built."""
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise CheckpointError(f"{what}: network options are not a dict of names")
    _check_numbers(kwargs, "", what)
    # then the registry's checks, the same as for native files: known keys, sizes, and the
    # parameter count on the meta device
    role, arch = next(key for key, c in ARCHS.items() if c is cls)
    try:
        return build(arch, kwargs, role, what, max_parameters)
    except ValueError as e:
        raise CheckpointError(str(e)) from None


def _check_values(state: dict, own: dict, what: str):
    """Weights must be floating point where the network's are, and finite: NaN/Inf or integer
    weights would render black or grey images without any error."""
    for k, v in state.items():
        if own[k].is_floating_point() and not v.is_floating_point():
            raise CheckpointError(f"{what}: tensor {k} holds {str(v.dtype).replace('torch.', '')}"
                                  ", not floating-point weights")
        if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            raise CheckpointError(f"{what}: tensor {k} has {bad} non-finite values (NaN or Inf)")


def load_state_strict(net: torch.nn.Module, state: dict, what: str):
    own = net.state_dict()
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointError(f"{what}: {not_tensors[0]} is not a tensor")
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
    _check_values(state, own, what)  # after the shapes: they bound the work
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
