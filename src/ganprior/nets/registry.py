"""Architecture registry: every network class, the constructor config it was built with, and a
`build` that checks a config (from a file: untrusted) before anything is allocated.

    @register("G", "stylegan2")
    class StyleGAN2Generator(...): ...      # G.config = its constructor arguments, captured

    build("stylegan2", {"z_dim": 512, ...}, role="G")   # -> StyleGAN2Generator, checked first

Checks, in this order, before the real network exists: the (role, arch) is known; every config
key is a constructor argument (nested `*_kwargs` dicts: arguments of the layers they reach);
sizes are sane (resolution a power of two in 4..4096, dims and channel counts non-negative
integers below MAX_DIM, layer counts below MAX_LAYERS); then the parameter count, taken on
PyTorch's meta device (shapes only, no memory), is at most MAX_PARAMETERS.
"""
from __future__ import annotations

import functools
import inspect
import math

import torch

MAX_PARAMETERS = 500_000_000  # 2 GB in fp32; NVIDIA's 1024 px StyleGAN2 G has 30 M
MAX_DIM = 1 << 16             # z_dim, w_dim, c_dim, channel counts, ...
MAX_LAYERS = 64               # mapping depth and similar counts
RESOLUTION_RANGE = (4, 4096)

ARCHS: dict[tuple[str, str], type] = {}
_RESOLUTION_KEYS = {"img_resolution"}
_LAYER_KEYS = {"num_layers"}
_SIZE_KEYS = {"z_dim", "w_dim", "c_dim", "img_channels", "channel_base", "channel_max", "ngf",
              "channels", "max_channels", "width", "embed_features", "layer_features",
              "cmap_dim", "num_ws", "mbstd_group_size", "mbstd_num_channels", "num_fp16_res",
              "conv_clamp"}


def _plain(value):
    """JSON-ready copy: tuples -> lists, integer dict keys -> strings."""
    if isinstance(value, dict):
        return {str(k) if isinstance(k, int) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _arguments(sig: inspect.Signature, bound: inspect.BoundArguments) -> dict:
    """Bound constructor arguments, defaults filled in, **kwargs merged in at the top level."""
    out = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if name == "self":
            continue
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            out[name] = value
    return out


def register(role: str, arch: str, normalise=None, nested: dict | None = None):
    """Class decorator: record the class under (role, arch) and capture every instance's
    constructor arguments as `self.config` (after `normalise(args)`, a class-specific tidy-up
    such as folding flat options into their nested dict). `nested` names, for each `*_kwargs`
    argument (or "**" for the class's own **kwargs), the classes whose arguments it may hold."""
    def decorate(cls):
        init = cls.__init__
        sig = inspect.signature(init)

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            init(self, *args, **kwargs)
            config = _arguments(sig, bound)
            self.config = _plain(normalise(config) if normalise else config)

        cls.__init__ = __init__
        cls.arch, cls.role = arch, role
        cls._registry_nested = nested or {}
        ARCHS[(role, arch)] = cls
        return cls
    return decorate


def _parameter_names(*classes) -> set[str]:
    names = set()
    for c in classes:
        if isinstance(c, (set, frozenset)):
            names |= c
            continue
        params = inspect.signature(c.__init__).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                  and p.name != "self"}
    return names


def check_keys(cls, config: dict, what: str):
    """Refuse keys the constructor would swallow or choke on."""
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise ValueError(f"{what}: the config is not a dict of option names")
    own = _parameter_names(cls)
    nested = cls._registry_nested
    for key, value in config.items():
        if key in nested and key != "**":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ValueError(f"{what}: option {key} must be a dict, not {type(value).__name__}")
            allowed = _parameter_names(*nested[key])
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise ValueError(f"{what}: unknown option {key}.{unknown[0]} (known: "
                                 f"{', '.join(sorted(allowed))})")
        elif key not in own and ("**" not in nested or key not in _parameter_names(*nested["**"])):
            known = own | (_parameter_names(*nested["**"]) if "**" in nested else set())
            raise ValueError(f"{what}: unknown option {key!r} for {cls.__name__} (known: "
                             f"{', '.join(sorted(known))})")


def check_sizes(config: dict, what: str, where: str = ""):
    """Bounds on every size-like number, wherever it is nested."""
    for key, value in config.items():
        name = f"{where}{key}"
        if isinstance(value, dict):
            check_sizes(value, what, f"{name}.")
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{what}: option {name} = {value} is not finite")
        if key in _RESOLUTION_KEYS:
            lo, hi = RESOLUTION_RANGE
            if (not isinstance(value, int) or not lo <= value <= hi or value & (value - 1)):
                raise ValueError(f"{what}: {name} = {value!r} must be a power of two in {lo}..{hi}")
        elif key in _LAYER_KEYS:
            if not isinstance(value, int) or not 1 <= value <= MAX_LAYERS:
                raise ValueError(f"{what}: {name} = {value!r} must be an integer in 1..{MAX_LAYERS}")
        elif key in _SIZE_KEYS and value is not None:
            if not isinstance(value, (int, float)) or not 0 <= value <= MAX_DIM:
                raise ValueError(f"{what}: {name} = {value!r} must be a number in 0..{MAX_DIM}")
        elif key.endswith("_shape") or key == "pads":
            items = value.values() if isinstance(value, dict) else value
            if not isinstance(items, (list, tuple, type({}.values()))) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_DIM
                    for v in items):
                raise ValueError(f"{what}: {name} = {value!r} must hold integers in 1..{MAX_DIM}")


def count_parameters(cls, config: dict) -> int:
    """Parameters + buffers of cls(**config), counted on the meta device (no memory used)."""
    with torch.device("meta"):
        probe = cls(**config)
    return sum(t.numel() for t in probe.parameters()) + sum(t.numel() for t in probe.buffers())


def build(arch: str, config: dict, role: str = "G", what: str = "network",
          max_parameters: int = MAX_PARAMETERS):
    """The network `arch` (for `role` G, D or E) built from `config`, after every check in the
    module docstring. ValueError (one line, naming `what`) when a check fails."""
    from . import dcgan, encoders, pix2pixhd, stylegan2  # noqa: F401  (they register themselves)
    cls = ARCHS.get((role, arch))
    if cls is None:
        known = ", ".join(sorted(a for r, a in ARCHS if r == role))
        raise ValueError(f"{what}: unknown {role} architecture {arch!r} (known: {known})")
    check_keys(cls, config, what)
    check_sizes(config, what)
    try:
        count = count_parameters(cls, config)
        if count > max_parameters:
            raise ValueError(f"{what}: the network would have {count:,} parameters (limit "
                             f"{max_parameters:,}); refusing to build it")
        return cls(**config)
    except (TypeError, AssertionError, ZeroDivisionError, OverflowError, KeyError,
            IndexError, RuntimeError) as e:
        raise ValueError(f"{what}: unusable options for {arch} ({type(e).__name__}: {e})")
