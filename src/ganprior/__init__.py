"""ganprior: pretrained GANs as image priors.

    import ganprior
    G = ganprior.load_generator("stylegan2-digiface64")   # zoo name or checkpoint file
    img = G.synthesize(G.z_to_w(G.z_from_seed(0)))          # [1, 3, 64, 64] in [-1, 1]
    ganprior.save_image(img, "seed0000.png")
    r = ganprior.invert(G, ganprior.load_image("seed0000.png", G.img_resolution),
                        ganprior.make_method("w+"), steps=100)

The names below are imported when first used, so `import ganprior` (and the `ganprior`
command's `--help`) stays fast and does not load torch until it is needed.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

try:
    from importlib.metadata import PackageNotFoundError, version as _version
    __version__ = _version("ganprior")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# public name -> module that defines it
_EXPORTS = {
    "load_generator": "ganprior.checkpoints",
    "load_networks": "ganprior.checkpoints",
    "save_networks": "ganprior.checkpoints",
    "invert": "ganprior.inversion",
    "make_method": "ganprior.inversion",
    "InversionSession": "ganprior.inversion",
    "load_result": "ganprior.inversion.results",
    "load_image": "ganprior.images",
    "save_image": "ganprior.images",
    "read_latents": "ganprior.latent_files",
    "pick_device": "ganprior.device",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports lazily
    from .checkpoints import load_generator, load_networks, save_networks
    from .device import pick_device
    from .images import load_image, save_image
    from .inversion import InversionSession, invert, make_method
    from .inversion.results import load_result
    from .latent_files import read_latents


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ganprior' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
