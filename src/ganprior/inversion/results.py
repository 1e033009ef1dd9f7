"""Reload a saved inversion (or restoration) result and render it again.

    r = load_result("out/invert/photo", G)   # OUT/STEM, OUT/STEM.json or OUT/STEM.safetensors
    image = r.render()                        # [1, C, H, W] in [-1, 1], exactly as saved
    r.params["w"]                             # the latents (batch dimension 1)

`G` must be the model the result was made with (its fingerprint is in STEM.json's
`made_from`); a result tuned with `--tune` carries OUT/STEM_tuned.safetensors, and `r.G` is
then the tuned generator rebuilt from it (G itself is not changed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..nets.base import GeneratorBase
from .methods import LatentW, LatentZ, Method, PaddingSpace, make_method


@dataclass
class LoadedResult:
    G: GeneratorBase                 # the tuned generator when the result was tuned, else G
    method: Method                   # renders `params` (encoder results: the space they are in)
    params: dict[str, torch.Tensor]  # every tensor with batch dimension 1, on G's device
    record: dict                     # STEM.json
    stem: Path

    def render(self) -> torch.Tensor:
        with torch.no_grad():
            return self.method.render(self.G, self.params)


def result_paths(path) -> tuple[Path, Path, Path]:
    """(STEM.json, STEM.safetensors, STEM_tuned.safetensors) for OUT/STEM[.json|.safetensors]."""
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return (p.with_name(p.name + ".json"), p.with_name(p.name + ".safetensors"),
            p.with_name(p.name + "_tuned.safetensors"))


def method_for(name: str, options: dict, params: dict) -> Method:
    """A method object that renders saved `params` of method `name`."""
    if name in ("encoder", "hybrid"):  # rendered from what the encoder predicted
        if "const" in params:
            return PaddingSpace(sum(k.startswith("pad") for k in params))
        return LatentW(plus=True) if "w" in params else LatentZ()
    known = {"codes", "layer", "pad_resolutions", "noise_maps", "noise_reg"}
    return make_method(name, **{k: v for k, v in options.items() if k in known})


def load_result(path, G: GeneratorBase) -> LoadedResult:
    """Load OUT/STEM's parameters (and tuned generator, if any) for G; see module doc."""
    json_path, tensors_path, tuned_path = result_paths(path)
    for p in (json_path, tensors_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: not an inversion result "
                                    "(expected OUT/STEM.json and OUT/STEM.safetensors)")
    try:
        record = json.loads(json_path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{json_path} is not a readable result file ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("method"), str):
        raise ValueError(f"{json_path} does not name the method of the result")
    try:
        raw = load_file(str(tensors_path))
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{tensors_path} is not a readable safetensors file ({e})") from None
    if not raw:
        raise ValueError(f"{tensors_path} holds no parameters (a classical baseline's result "
                         "has no latents to reload)")
    for key in ("made_from", "options"):
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise ValueError(f"{json_path}: {key!r} must be an object")
    from .files import model_fingerprint
    made_for = (record.get("made_from") or {}).get("model_sha256")
    if made_for is not None and made_for != model_fingerprint(G):
        raise ValueError(f"{json_path.name} was made with another model; load the model it "
                         f"names ({record.get('options', {}).get('model', 'see the JSON')})")
    like = next(G.parameters())
    params = {k: v.unsqueeze(0).to(device=like.device, dtype=like.dtype) for k, v in raw.items()}
    options = record.get("options") or {}
    method = method_for(record["method"], options, params)
    if record["method"] == "mganprior":
        method.split_layer(G)  # the recorded layer, or the same default the run used
    tuned = G
    if tuned_path.is_file():
        from .tuning import load_delta
        tuned = load_delta(tuned_path, G)
    result = LoadedResult(tuned, method, params, record, json_path.with_suffix(""))
    try:
        result.render()  # shapes checked now, with one line naming the result
    except (RuntimeError, KeyError, IndexError) as e:
        raise ValueError(f"{tensors_path} does not fit {record['method']} on this model "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return result
