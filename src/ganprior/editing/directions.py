"""Linear semantic directions in latent space, how they are found, applied and stored.

    d = sefa(G, k=5)[0]                        # SeFa: closed form from the generator's weights
    d = train_boundary(latents, scores)        # InterFaceGAN: a linear classifier's unit normal
    d = conditional(d, [other])                # the same edit with `other` projected out
    p = apply_direction("w+", params, d, 3.0)  # params of any inversion method, moved by 3 d
    save_direction("brightness", d); d = load_direction("brightness", G)

A Direction is a unit vector in one latent space: "z" [z_dim], "w" [w_dim] (moves every W+
layer, or only `layers` when given) or "w+" [num_ws, w_dim] (each layer its own part). For
generators without a mapping network (DCGAN) W is z itself, so a z direction also moves their
ws (`w_is_z`). Files: NAME.safetensors holds the vector ("direction"), NAME.json the metadata
(the model's fingerprint, space, method, attribute, accuracy, how it was made).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..nets.base import GeneratorBase

FORMAT = "ganprior-direction"
SPACES = ("z", "w", "w+")


@dataclass
class Direction:
    vector: torch.Tensor          # unit norm; [z_dim], [w_dim] or [num_ws, w_dim]
    space: str                    # "z", "w" or "w+"
    num_ws: int = 1               # the model's W+ layer count (to expand a single-w latent)
    layers: list[int] | None = None  # "w" only: the W+ layers it moves (None = all)
    w_is_z: bool = False          # the model has no mapping network: ws = z[:, None]
    meta: dict = field(default_factory=dict)

    def flat(self) -> torch.Tensor:
        return self.vector.reshape(-1)


def _unit(v: torch.Tensor, what: str = "direction") -> torch.Tensor:
    n = v.norm()
    if not torch.isfinite(n) or n < 1e-8:
        raise ValueError(f"the {what} has zero length (or is not finite)")
    return v / n


def _layer_subset(G: GeneratorBase, layers) -> list[int] | None:
    if layers is None:
        return None
    layers = sorted(set(int(i) for i in layers))
    bad = [i for i in layers if not 0 <= i < G.num_ws]
    if bad or not layers:
        raise ValueError(f"layers {bad or layers} out of range 0..{G.num_ws - 1}")
    return None if layers == list(range(G.num_ws)) else layers


def _space_of(G: GeneratorBase) -> str:
    return "w" if "w" in G.latent_spaces else "z"


# --- SeFa ------------------------------------------------------------------------------------

def sefa_matrix(G: GeneratorBase, layers=None) -> torch.Tensor:
    """A [features, w_dim]: the modulation weights of the chosen W+ layers stacked row-wise,
    each row (one style's weight vector) scaled to unit norm, as SeFa's official code does."""
    chosen = _layer_subset(G, layers)
    rows = [s.weight.detach().double().cpu() for s in G.modulation_weights()
            if chosen is None or s.ws_index in chosen]
    if not rows:
        raise ValueError(f"no style inputs read W+ layers {layers}")
    A = torch.cat(rows)
    return A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)


def sefa(G: GeneratorBase, k: int = 5, layers=None) -> list[Direction]:
    """SeFa (Shen & Zhou, CVPR 2021): the top-k eigenvectors of A^T A (A = sefa_matrix), the
    latent directions that change the chosen layers' styles the most, by eigenvalue."""
    A = sefa_matrix(G, layers)
    values, vectors = torch.linalg.eigh(A.T @ A)  # ascending, orthonormal columns
    order = torch.argsort(values, descending=True)[:k]
    chosen, space = _layer_subset(G, layers), _space_of(G)
    like = next(G.parameters())
    out = []
    for rank, i in enumerate(order.tolist()):
        v = vectors[:, i]
        v = v * torch.sign(v[v.abs().argmax()])  # a fixed sign: the largest entry positive
        meta = dict(method="sefa", index=rank, eigenvalue=float(values[i]),
                    layers=chosen, attribute=None)
        out.append(Direction(v.to(like.dtype), space, G.num_ws, chosen,
                             w_is_z=space == "z", meta=meta))
    return out


# --- InterFaceGAN ----------------------------------------------------------------------------

def check_sample_count(n: int, ratio: float, val_fraction: float = 0.3) -> int:
    """The positives (= negatives) n latents give at `ratio`; ValueError when too few to train
    and check a boundary (callers check before sampling anything)."""
    chosen = int(n * ratio)
    train_n = int(chosen * (1 - val_fraction))
    if train_n < 2 or chosen - train_n < 1:
        raise ValueError(f"{n} latents at ratio {ratio} give {chosen} positives and "
                         f"negatives: too few to train and check a boundary (use more latents "
                         "or a larger ratio)")
    return chosen


def train_boundary(latents, scores, method: str = "svm", ratio: float = 0.02,
                   val_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, float]:
    """InterFaceGAN (Shen et al., CVPR 2020): the latents with the top `ratio` of scores are
    positives, the bottom `ratio` negatives; a linear SVM (or logistic regression) separates
    them and its unit normal, pointing towards higher scores, is the direction.

    latents [N, D], scores [N]. Returns (unit normal [D], accuracy on the held-out
    `val_fraction` of the chosen positives and negatives)."""
    X = np.asarray(latents, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"latents must be [N, D] with one score per row; got latents "
                         f"{list(X.shape)} and {y.shape[0]} scores")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("latents and scores must be finite numbers")
    if method not in ("svm", "logistic"):
        raise ValueError(f"method must be svm or logistic, not {method!r}")
    if not 0 < ratio <= 0.5:
        raise ValueError(f"ratio must be in (0, 0.5], not {ratio}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), not {val_fraction}")
    chosen = check_sample_count(len(y), ratio, val_fraction)
    train_n = int(chosen * (1 - val_fraction))
    order = np.argsort(-y, kind="stable")
    if y[order[chosen - 1]] <= y[order[-chosen]]:
        raise ValueError("the top and bottom scores overlap: the scores do not vary enough")
    rng = np.random.RandomState(seed)
    pos, neg = rng.permutation(order[:chosen]), rng.permutation(order[-chosen:])
    train = np.concatenate([pos[:train_n], neg[:train_n]])
    val = np.concatenate([pos[train_n:], neg[train_n:]])
    labels = np.zeros(len(y), dtype=np.int64)
    labels[pos] = 1
    clf = _classifier(method).fit(X[train], labels[train])
    accuracy = float((clf.predict(X[val]) == labels[val]).mean())
    normal = clf.coef_.reshape(-1)
    return normal / np.linalg.norm(normal), accuracy


def _classifier(method: str):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC
    if method == "svm":
        return LinearSVC(C=1.0, max_iter=20000)
    return LogisticRegression(C=1.0, max_iter=5000)


def latents_in_space(z: torch.Tensor, ws: torch.Tensor, space: str) -> torch.Tensor:
    """[N, D] rows for InterFaceGAN: z, the single w (every W+ layer must agree) or W+ flat."""
    if space == "z":
        return z
    if space == "w":
        if ws.shape[1] > 1 and not torch.allclose(ws, ws[:, :1].expand_as(ws)):
            raise ValueError("the ws differ between layers (truncation cutoff or W+ latents): "
                             "train in --space w+ instead")
        return ws[:, 0]
    if space == "w+":
        return ws.flatten(1)
    raise ValueError(f"space must be one of {', '.join(SPACES)}, not {space!r}")


def boundary_direction(G: GeneratorBase, normal, space: str, meta: dict) -> Direction:
    """A Direction for G from train_boundary's normal in `space`."""
    _check_space(G, space)
    shape = _vector_shape(G, space)
    v = torch.as_tensor(np.asarray(normal), dtype=next(G.parameters()).dtype)
    if v.numel() != math.prod(shape):
        raise ValueError(f"a {space} direction for this model has {math.prod(shape)} numbers, "
                         f"not {v.numel()}")
    return Direction(_unit(v.reshape(shape).cpu()), space, G.num_ws,
                     w_is_z="w" not in G.latent_spaces, meta=dict(meta))


def conditional(primal: Direction, conditions: list[Direction]) -> Direction:
    """InterFaceGAN's conditional manipulation: the primal direction with its components along
    the conditions removed (Gram-Schmidt over any number of them), renormalised; moving along it
    leaves the conditions' linear scores unchanged."""
    basis = []
    for c in conditions:
        if c.layers != primal.layers:
            raise ValueError(f"a condition moving layers {c.layers or 'all'} cannot condition a "
                             f"direction moving layers {primal.layers or 'all'}")
        if c.space != primal.space or c.vector.shape != primal.vector.shape:
            raise ValueError(f"a condition direction in {c.space} {list(c.vector.shape)} cannot "
                             f"condition one in {primal.space} {list(primal.vector.shape)}")
        v = c.flat().double()
        for b in basis:
            v = v - (v @ b) * b
        if v.norm() > 1e-6:  # a condition already in the span adds nothing
            basis.append(v / v.norm())
    p = primal.flat().double()
    for b in basis:
        p = p - (p @ b) * b
    if p.norm() < 1e-6:
        raise ValueError("the direction lies in the span of its conditions: nothing is left")
    names = [c.meta.get("attribute") or c.meta.get("name") for c in conditions]
    meta = dict(primal.meta, conditions=names)
    return Direction((p / p.norm()).reshape(primal.vector.shape).to(primal.vector.dtype),
                     primal.space, primal.num_ws, primal.layers, primal.w_is_z, meta)


# --- applying a direction to any method's parameters -----------------------------------------

def _ws_shift(d: Direction, k: int, dim: int) -> torch.Tensor:
    """The unit step [k', dim] for ws-like latents with k layers (k' = k, or num_ws where a
    single-w latent has to become W+)."""
    if d.space == "z" and not d.w_is_z:
        raise ValueError("a z-space direction moves z before the mapping network; these "
                         "parameters are W latents (use a w or w+ direction)")
    if d.vector.shape[-1] != dim:
        raise ValueError(f"the direction has {d.vector.shape[-1]} latent dimensions, the "
                         f"parameters {dim}")
    if d.space == "w+":
        return d.vector
    if d.layers is None:
        return d.vector.reshape(1, -1).expand(k, -1)
    shift = torch.zeros(d.num_ws, dim, dtype=d.vector.dtype)
    shift[d.layers] = d.vector
    return shift


def _move_ws(ws: torch.Tensor, d: Direction, strength: float) -> torch.Tensor:
    """ws [..., k, dim] + strength * step; a one-layer w becomes W+ when the step has layers."""
    k, dim = ws.shape[-2:]
    step = _ws_shift(d, k, dim).to(ws)
    if step.shape[0] != k:
        if k != 1:
            raise ValueError(f"the direction has {step.shape[0]} W+ layers, the parameters {k}")
        ws = ws.expand(*ws.shape[:-2], step.shape[0], dim)
    return ws + strength * step


def apply_direction(method_name: str, params: dict, direction: Direction,
                    strength: float) -> dict:
    """Copy of an inversion method's `params` moved by `strength` x the unit direction.

    z / encoder(z): z moves (z directions). w / w+ / padinv / encoder / hybrid: the ws move (a W
    direction moves every layer, or its `layers`; a W+ direction each layer its own part);
    PadInv's constant and padding maps stay. mganprior: every code moves, and so does the W+
    code of the layers after the split (`ws_tail`, StyleGAN2), while the importances alpha stay
    as they are."""
    if not math.isfinite(strength):
        raise ValueError(f"strength must be a finite number, not {strength}")
    out = dict(params)
    if method_name == "mganprior" or "codes" in params:
        out["codes"] = _move_ws(params["codes"], direction, strength)
        if "ws_tail" in params:
            out["ws_tail"] = _move_ws(params["ws_tail"], direction, strength)
        return out
    if "w" in params:
        out["w"] = _move_ws(params["w"], direction, strength)
        return out
    if "z" in params:
        if direction.space != "z":
            raise ValueError(f"a {direction.space} direction cannot move a z latent (method "
                             f"{method_name!r}); invert in W to use it")
        z = params["z"]
        if direction.vector.shape != z.shape[1:]:
            raise ValueError(f"the direction has {list(direction.vector.shape)} numbers, the "
                             f"latent {list(z.shape[1:])}")
        out["z"] = z + strength * direction.vector.to(z)
        return out
    raise ValueError(f"method {method_name!r} has no latent a direction can move "
                     f"(parameters {', '.join(params) or 'none'})")


# --- files -----------------------------------------------------------------------------------

def _check_space(G: GeneratorBase, space: str):
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(SPACES)}, not {space!r}")
    if space in ("w", "w+") and "w" not in G.latent_spaces:
        raise ValueError(f"a {space} direction needs a model with a W space; {G.arch} has only "
                         f"{', '.join(G.latent_spaces)}")


def _vector_shape(G: GeneratorBase, space: str) -> tuple[int, ...]:
    return {"z": (G.z_dim,), "w": (G.w_dim,), "w+": (G.num_ws, G.w_dim)}[space]


def direction_paths(path) -> tuple[Path, Path]:
    """(NAME.safetensors, NAME.json) for NAME, NAME.json or NAME.safetensors."""
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def direction_meta(d: Direction, G: GeneratorBase, **extra) -> dict:
    """The JSON record of `d` for G (fingerprint, space, layers) plus d.meta and `extra`."""
    from ..inversion.files import model_fingerprint
    return dict(d.meta, **extra, format=FORMAT, version=1, model_sha256=model_fingerprint(G),
                arch=G.arch, space=d.space, shape=list(d.vector.shape), num_ws=d.num_ws,
                layers=d.layers, w_is_z=d.w_is_z)


def save_direction(path, d: Direction, G: GeneratorBase, **extra) -> tuple[Path, Path]:
    """Write NAME.safetensors (the vector) and NAME.json (direction_meta); returns both."""
    from safetensors.torch import save_file

    from ..files import atomic_write, write_json, json_safe
    tensors, meta_path = direction_paths(path)
    meta = direction_meta(d, G, **extra)
    vector = d.vector.detach().float().cpu().contiguous()
    atomic_write(tensors, lambda tmp: save_file({"direction": vector}, tmp))
    write_json(meta_path, json_safe(meta))
    d.meta = meta
    return tensors, meta_path


def load_direction(path, G: GeneratorBase, space: str | None = None) -> Direction:
    """Read NAME.{safetensors,json}; refuse a direction made for another model or space, or a
    file that is not a direction, with one line."""
    tensors_path, meta_path = direction_paths(path)
    name = meta_path.with_suffix("").name
    for p in (tensors_path, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: a direction is NAME.safetensors + NAME.json")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{meta_path} is not a readable direction file ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path} is not a ganprior direction file")
    from ..inversion.files import model_fingerprint
    if meta.get("model_sha256") != model_fingerprint(G):
        raise ValueError(f"direction {name!r} was made for another model ({meta.get('arch')}, "
                         f"fingerprint {str(meta.get('model_sha256'))[:12]}); make one for this "
                         "model with `ganprior directions`")
    got = meta.get("space")
    if got not in SPACES:
        raise ValueError(f"{meta_path} names no latent space")
    if space is not None and got != space:
        raise ValueError(f"direction {name!r} is in {got}, not {space}")
    _check_space(G, got)
    try:
        from safetensors.torch import load_file
        v = load_file(str(tensors_path)).get("direction")
    except Exception as e:  # safetensors has its own error types for corrupt files
        raise ValueError(f"{tensors_path} is not a readable safetensors file ({e})") from None
    want = _vector_shape(G, got)
    if not isinstance(v, torch.Tensor) or tuple(v.shape) != want or not v.is_floating_point():
        raise ValueError(f"{tensors_path} must hold a float 'direction' of shape {list(want)}")
    if not torch.isfinite(v).all() or abs(float(v.double().norm()) - 1) > 1e-3:
        raise ValueError(f"{tensors_path}: the direction is not a finite unit vector")
    layers = meta.get("layers")
    if layers is not None:
        if got != "w":
            raise ValueError(f"{meta_path}: only w directions can be limited to layers")
        if not isinstance(layers, list) or not all(isinstance(i, int) for i in layers):
            raise ValueError(f"{meta_path}: layers must be a list of W+ layer indices")
        layers = _layer_subset(G, layers)
    for key in ("attribute", "name"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise ValueError(f"{meta_path}: {key} must be a string")
    meta.setdefault("name", name)
    return Direction(v.to(next(G.parameters()).dtype), got, G.num_ws, layers,
                     w_is_z="w" not in G.latent_spaces, meta=meta)


# --- shipped directions and edits ------------------------------------------------------------

ZOO_DIRECTIONS = Path(__file__).resolve().parent.parent / "zoo" / "directions"


def shipped_directions(G: GeneratorBase) -> dict[str, Path]:
    """{name: ZOO_DIRECTIONS/<model>/NAME} of the shipped directions made for G's weights."""
    from ..inversion.files import model_fingerprint
    fingerprint, out = model_fingerprint(G), {}
    for meta_path in sorted(ZOO_DIRECTIONS.glob("*/*.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("model_sha256") == fingerprint:
            out[meta_path.stem] = meta_path.with_suffix("")
    return out


def find_direction(spec: str, G: GeneratorBase) -> Direction:
    """A shipped direction by NAME, or a direction file (NAME.json / NAME.safetensors / NAME)."""
    s = str(spec)
    if s.endswith((".json", ".safetensors")) or "/" in s or direction_paths(s)[1].is_file():
        return load_direction(s, G)
    shipped = shipped_directions(G)
    if s not in shipped:
        names = ", ".join(shipped) or "none"
        raise ValueError(f"unknown direction {s!r}; this model ships: {names} (or give a "
                         "direction file NAME.json)")
    return load_direction(shipped[s], G)


@torch.no_grad()
def edit_frames(G: GeneratorBase, method, method_name: str, params: dict, direction: Direction,
                strengths) -> tuple[torch.Tensor, dict]:
    """Render `params` (batch 1) moved by each strength: (images [steps, C, H, W],
    {name: the moved parameters stacked over the steps})."""
    moved = [apply_direction(method_name, params, direction, float(s)) for s in strengths]
    stacked = {k: torch.cat([p[k] for p in moved]) for k in moved[0]}
    return method.render(G, stacked), stacked  # every frame in one forward pass
