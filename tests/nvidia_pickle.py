"""Test helper: write our networks in the structure of NVIDIA's `torch_utils.persistence` pickles.

The files it writes look, to an unpickler, exactly like stylegan2-ada-pytorch snapshots: a dict
{G, D, G_ema, augment_pipe, training_set_kwargs} whose networks are calls to
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with `module_src`, `class_name` and
the module `state` (parameters, buffers, children, `_init_kwargs` as `dnnlib.util.EasyDict`).
The embedded `module_src` is a booby trap: executing it would create a marker file.
No NVIDIA code is involved; the pickles are built in the test and never committed.
"""
from __future__ import annotations

import collections
import contextlib
import pickle
import sys
import types

# If a loader ever exec()s the embedded source, this file appears.
TRAP_SOURCE = ("import pathlib\npathlib.Path(__import__('os').environ.get("
               "'GANPRIOR_TRAP', '/tmp/ganprior_trap')).write_text('executed')\n")


def _reconstruct_persistent_obj(meta):  # pickled by reference only
    raise RuntimeError("writer-side stand-in; never called")


class EasyDict(dict):
    pass


_NVIDIA_NAMES = {"StyleGAN2Generator": "Generator", "StyleGAN2Discriminator": "Discriminator"}
_PLAIN_ATTRS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "num_ws")


@contextlib.contextmanager
def _fake_nvidia_modules():
    """Register module objects so pickle writes globals `torch_utils.persistence...` and
    `dnnlib.util.EasyDict`; removed again afterwards."""
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"]
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    mods["torch_utils"].persistence = mods["torch_utils.persistence"]
    mods["dnnlib"].util = mods["dnnlib.util"]
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    mods["dnnlib.util"].EasyDict = EasyDict
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__ = "dnnlib.util"
    sys.modules.update(mods)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


class _Persistent:
    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def _easy(x):
    if isinstance(x, dict):
        return EasyDict({k: _easy(v) for k, v in x.items()})
    return x


def as_persistent(module, init_kwargs=None):
    cls = _NVIDIA_NAMES.get(type(module).__name__, type(module).__name__)
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(module._parameters),
        "_buffers": collections.OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_forward_pre_hooks": collections.OrderedDict(),
        "_state_dict_hooks": collections.OrderedDict(),
        "_load_state_dict_pre_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(
            (n, as_persistent(c, {})) for n, c in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": _easy(init_kwargs or {}),
        "_orig_module_src": TRAP_SOURCE,
        "_orig_class_name": cls,
    }
    for a in _PLAIN_ATTRS:
        if hasattr(module, a) and isinstance(getattr(module, a), int):
            state[a] = getattr(module, a)
    # Like NVIDIA's persistence: the bare class name; the module itself is anonymous.
    meta = dict(type="class", version=4, module_src=TRAP_SOURCE, class_name=cls, state=state)
    return _Persistent(meta)


def write_nvidia_pickle(path, G=None, D=None, G_ema=None, G_kwargs=None, D_kwargs=None,
                        flat_synthesis_kwargs=False, edit=None):
    """Write a snapshot-like pickle. G_kwargs/D_kwargs default to the nets' own config."""
    def g_kwargs(net):
        kw = dict(G_kwargs or net.config)
        if flat_synthesis_kwargs:  # the stylegan3 repo's layout for StyleGAN2 networks
            kw.update(kw.pop("synthesis_kwargs", {}))
        return kw

    data = {}
    if G is not None:
        data["G"] = as_persistent(G, g_kwargs(G))
    if D is not None:
        data["D"] = as_persistent(D, D_kwargs or D.config)
    if G_ema is not None:
        data["G_ema"] = as_persistent(G_ema, g_kwargs(G_ema))
    if edit is not None:  # let a test reshape the records before they are written
        edit(data)
    data["augment_pipe"] = None
    data["training_set_kwargs"] = EasyDict(path="~/datasets/faces.zip", resolution=64)
    with _fake_nvidia_modules(), open(path, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
