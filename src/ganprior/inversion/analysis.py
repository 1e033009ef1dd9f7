"""Layer-wise analysis (mGANprior Fig. 4): how reconstruction quality depends on the
composition layer and on the number of codes."""
from __future__ import annotations

import numpy as np

from .engine import invert
from .methods import make_method


def layer_analysis(G, targets, layers=None, codes=(1, 5, 10, 20), fixed_codes=20,
                   fixed_layer=None, steps=300, lr=0.03, loss="mse", seed=0,
                   progress=False) -> dict:
    """Returns {"by_layer": [{layer, codes, psnr, ssim, seconds}], "by_codes": [...]}; quality
    is the mean over `targets` (all optimised in one batch)."""
    layers = list(layers or G.layer_names)
    fixed_layer = fixed_layer or make_method("mganprior").split_layer(G)

    def run(layer, n):
        r = invert(G, targets, make_method("mganprior", codes=n, layer=layer), steps=steps,
                   lr=lr, loss=loss, seed=seed, progress=progress)
        return {"layer": layer, "codes": n, "psnr": float(np.mean(r.psnr)),
                "ssim": float(np.mean(r.ssim)), "seconds": r.seconds / len(targets),
                "images": r.images}

    return {"by_layer": [run(layer, fixed_codes) for layer in layers],
            "by_codes": [run(fixed_layer, n) for n in codes],
            "settings": dict(steps=steps, lr=lr, loss=loss, seed=seed, fixed_codes=fixed_codes,
                             fixed_layer=fixed_layer, images=len(targets))}
