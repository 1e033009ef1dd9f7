"""NVIDIA stylegan2-ada-pytorch / stylegan3-repo `.pkl` files, read without running their code.

Such a file is a pickled dict {G, D, G_ema, augment_pipe, training_set_kwargs}. Each network was
pickled by `torch_utils.persistence` as a call `_reconstruct_persistent_obj(meta)`, where `meta`
carries the module's *source code*, its class name and its `__dict__` (parameters, buffers,
child modules, `_init_kwargs`). NVIDIA's loader `exec`s that source. We never do: a restricted
unpickler maps the persistence call and `EasyDict` to inert stand-ins, allows only the globals
that tensor storage needs, and refuses everything else. The weights are then poured into our own
classes, which use the same parameter names.
"""
from __future__ import annotations

import collections
import inspect
import io
import pickle
import struct
import sys
from pathlib import Path

import torch

from ..errors import CheckpointError, GanpriorError
from ..limits import check_regular_file, check_tree
from ..nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from .state import build_bounded, load_state_strict


class PersistentObject:
    """What a `torch_utils.persistence` object becomes here: its class name and state, inert."""

    def __init__(self, class_name: str, state: dict):
        self.class_name, self.state = class_name, state


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict (a dict with attribute access; only the dict matters)."""


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise CheckpointError("unsupported torch_utils.persistence record (not a class)")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise CheckpointError("malformed torch_utils.persistence record (state is not a dict)")
    return PersistentObject(str(meta.get("class_name")), state)


def _load_storage_from_bytes(data: bytes):
    # torch pickles each storage as torch.save(...) bytes; read them with torch's safe loader.
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


_ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
}


def _add_numpy_globals(allowed):
    """numpy arrays and scalars (plain data) may appear in attributes; numpy 1.x and 2.x paths."""
    import numpy as np
    multiarray = getattr(np, "_core", None) or np.core
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray.multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.multiarray.scalar
    for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType"):
        if hasattr(getattr(np, "dtypes", None), name):
            allowed[("numpy.dtypes", name)] = getattr(np.dtypes, name)


_add_numpy_globals(_ALLOWED)


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler: its memo is a dict, while the C one grows an array to the
    largest memo index a file names (a 5-byte LONG_BINPUT can ask for gigabytes)."""

    def find_class(self, module, name):
        fn = _ALLOWED.get((module, name))
        if fn is None:
            raise CheckpointError(
                f"refusing to load: the pickle asks for '{module}.{name}', which is not part of a "
                "StyleGAN2 network (a malicious or unsupported file)")
        return fn

    def persistent_load(self, pid):
        raise CheckpointError("refusing to load: unexpected persistent id in pickle")


def read_pickle(path) -> dict:
    check_regular_file(path)
    try:
        with open(path, "rb") as f:
            data = _RestrictedUnpickler(f).load()
    except CheckpointError:
        raise
    except GanpriorError as e:
        raise CheckpointError(str(e))
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, RuntimeError, MemoryError, OverflowError, struct.error) as e:
        msg = str(e).splitlines()[0][:200] if str(e) else ""
        raise CheckpointError(f"{path}: not a readable NVIDIA pickle ({type(e).__name__}: {msg})")
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: pickle holds a {type(data).__name__}, not a dict of networks")
    try:  # shared or cyclic containers would make every later walk exponential or endless
        check_tree(data, str(path))
    except GanpriorError as e:
        raise CheckpointError(str(e))
    return data


def _field(obj: PersistentObject, key: str, kinds=(dict,)):
    """obj.state[key] (empty when absent), refused when a hostile file put another type there."""
    value = obj.state.get(key)
    if value is None:
        return kinds[0]()
    if not isinstance(value, kinds):
        raise CheckpointError(f"malformed network record: {key} of a {obj.class_name} is a "
                              f"{type(value).__name__}, not a {kinds[0].__name__}")
    return value


def _flatten_state(obj: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for group in ("_parameters", "_buffers"):
        for name, t in _field(obj, group).items():
            if t is not None:
                if not isinstance(t, torch.Tensor):
                    raise CheckpointError(f"{prefix}{name} is not a tensor")
                out[prefix + name] = t.detach()
    for name, child in _children(obj).items():
        if isinstance(child, PersistentObject):
            out.update(_flatten_state(child, f"{prefix}{name}."))
        elif child is not None:
            raise CheckpointError(f"{prefix}{name}: unsupported module type in pickle")
    return out


def _plain(x):
    """EasyDicts -> dicts, recursively (so configs serialise as JSON)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# persistence records the bare class name (`Generator`); the module is anonymous.
_CLASSES = {
    "Generator": StyleGAN2Generator,
    "Discriminator": StyleGAN2Discriminator,
}


def _children(obj: PersistentObject) -> dict:
    return _field(obj, "_modules")


def _is_stylegan3(obj: PersistentObject) -> bool:
    """StyleGAN3's synthesis network has an `input` layer and `L0_...` layers, not `b4` blocks."""
    synthesis = _children(obj).get("synthesis")
    return isinstance(synthesis, PersistentObject) and "input" in _children(synthesis)


def build_network(obj: PersistentObject, what: str) -> torch.nn.Module:
    """Rebuild one pickled network with our classes and load its weights."""
    cls = _CLASSES.get(obj.class_name)
    if cls is None:
        raise CheckpointError(f"{what} is a '{obj.class_name}', not a StyleGAN2 network")
    if cls is StyleGAN2Generator and _is_stylegan3(obj):
        raise CheckpointError(f"{what} is a StyleGAN3 (alias-free) network; only StyleGAN2 "
                              "networks are supported")
    kwargs = _plain(dict(_field(obj, "_init_kwargs")))
    args = list(_field(obj, "_init_args", (tuple, list)))
    if args:  # bind positional constructor arguments by name
        names = [p for p in inspect.signature(cls).parameters if p not in ("self",)]
        kwargs.update(zip(names, args))
    net = build_bounded(cls, kwargs, what)
    load_state_strict(net, _flatten_state(obj), what)
    return net.eval().requires_grad_(False)


def load_nvlabs_pickle(path) -> dict[str, torch.nn.Module]:
    """{'G': generator (G_ema when present), 'D': discriminator when present, 'meta': {...}}."""
    data = read_pickle(path)
    g_key = "G_ema" if "G_ema" in data else "G" if "G" in data else None
    if g_key is None:
        raise CheckpointError(f"{path}: no 'G_ema' or 'G' network in the pickle "
                              f"(keys: {', '.join(map(str, list(data)[:8]))})")
    out = {}
    for key, name in ((g_key, "G"), ("D", "D")):
        obj = data.get(key)
        if obj is None:
            continue
        if not isinstance(obj, PersistentObject):
            raise CheckpointError(f"{path}: '{key}' is not a pickled network")
        out[name] = build_network(obj, f"{path}:{key}")
    if not isinstance(out["G"], StyleGAN2Generator):
        raise CheckpointError(f"{path}: '{g_key}' is not a generator")
    out["meta"] = {"source": "nvlabs-pkl", "generator_key": g_key,
                   "training_set_kwargs": _plain(data.get("training_set_kwargs"))}
    return out


def save_nvlabs_pickle(nets: dict, out, code_dir) -> Path:
    """Write `nets` as an NVIDIA `.pkl` that their `legacy.load_network_pkl` reads.

    Such a file must carry NVIDIA's source code (their persistence pickles it), so it is built
    from the user's own stylegan2-ada-pytorch checkout at `code_dir`: their Generator and
    Discriminator are constructed from our config and given our weights (the parameter names
    are theirs), then pickled by their code. Nothing of theirs ships with ganprior."""
    from ..files import atomic_write

    if nets.get("D") is None:
        raise CheckpointError("NVIDIA's loader needs a discriminator and this checkpoint has only "
                              "G; export a training snapshot (network-snapshot-*.safetensors)")
    code_dir = Path(code_dir).expanduser()
    if not (code_dir / "training" / "networks.py").is_file() or \
            not (code_dir / "torch_utils" / "persistence.py").is_file():
        raise CheckpointError(f"{code_dir}: not a stylegan2-ada-pytorch checkout "
                              "(training/networks.py and torch_utils/persistence.py are needed)")
    sys.path.insert(0, str(code_dir))
    try:
        from training import networks  # noqa: E402  (the user's NVIDIA checkout)
    except ModuleNotFoundError as e:
        for name in [m for m in sys.modules if m.split(".")[0] in ("training", "torch_utils", "dnnlib")]:
            del sys.modules[name]  # half-imported: let a later attempt start clean
        raise CheckpointError(f"NVIDIA's code at {code_dir} needs the Python module '{e.name}', "
                              "which is not installed")
    finally:
        # Their modules (training, torch_utils, dnnlib) stay imported: a second export in the
        # same process uses the first checkout. The CLI runs one per process.
        sys.path.remove(str(code_dir))
    theirs = {}
    for key, cls, ours_cls in (("G", networks.Generator, StyleGAN2Generator),
                               ("D", networks.Discriminator, StyleGAN2Discriminator)):
        ours = nets[key]
        if not isinstance(ours, ours_cls):
            raise CheckpointError(f"only StyleGAN2 networks can be written as NVIDIA .pkl; "
                                  f"{key} is a {type(ours).__name__}")
        try:
            net = cls(**_without_stylegan3_options(ours.config)).eval().requires_grad_(False)
            missing, unexpected = net.load_state_dict(ours.state_dict(), strict=False)
        except (TypeError, ValueError, AssertionError, RuntimeError) as e:
            raise CheckpointError(f"{key}: NVIDIA's {cls.__name__} cannot take this network ({e})")
        if missing or unexpected:
            raise CheckpointError(f"{key}: NVIDIA's {cls.__name__} differs from ours "
                                  f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        theirs[key] = net
    # G is the averaged generator our snapshots keep; NVIDIA's tools read G_ema first.
    data = {"G": theirs["G"], "D": theirs["D"], "G_ema": theirs["G"], "augment_pipe": None,
            "training_set_kwargs": nets.get("meta", {}).get("training_set_kwargs")}
    out = Path(out)

    def write(tmp):
        with open(tmp, "wb") as f:
            pickle.dump(data, f)
    atomic_write(out, write)
    return out


def _without_stylegan3_options(config: dict) -> dict:
    """Our config minus the stylegan3 repo's `fused_modconv_default` (stylegan2-ada lacks it)."""
    return {k: _without_stylegan3_options(v) if isinstance(v, dict) else v
            for k, v in config.items() if k != "fused_modconv_default"}
