"""Train a latent encoder on pairs the generator makes itself: (G(latent), latent).

Loss = MSE(E(x), latent) + recon_weight * MSE(G(E(x)), x); Adam. Checkpoints (weights +
optimiser + step) are written atomically every `save_every` steps, so a killed run resumes.
The encoder's file is NAME.safetensors + NAME.json (config, generator, training figures).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..errors import CheckpointError
from ..files import atomic_write, atomic_write_text
from ..nets.encoders import LatentEncoder, encoder_for


@torch.no_grad()
def sample_pairs(G, n, rng):
    z = torch.randn(n, G.z_dim, generator=rng).to(G.device)
    if "w" in G.latent_spaces:
        latent = G.z_to_w(z)  # W+ targets: one w broadcast to every layer
    else:
        latent = z
    return G.synthesize(latent if latent.ndim == 3 else latent[:, None]), latent


def render(G, latent):
    return G.synthesize(latent if latent.ndim == 3 else latent[:, None])


def train_encoder(G, out, steps=2000, batch=32, lr=1e-3, recon_weight=1.0, seed=0,
                  save_every=200, model_name="", progress=True) -> dict:
    out = Path(out)
    ckpt = out.with_name(out.name + ".ckpt.pt")
    with torch.random.fork_rng(devices=[]):  # initial weights from `seed`: reproducible runs
        torch.manual_seed(seed)
        E = encoder_for(G).to(G.device)
    opt = torch.optim.Adam(E.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    start, history = 0, []
    if ckpt.exists():  # resume
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        E.load_state_dict(state["encoder"])
        opt.load_state_dict(state["optimizer"])
        rng.set_state(state["rng"])
        start, history = state["step"], state["history"]
    G.requires_grad_(False)
    t0 = time.time()
    bar = tqdm(range(start, steps), desc="train encoder", unit="step", disable=not progress,
               initial=start, total=steps)
    for step in bar:
        x, latent = sample_pairs(G, batch, rng)
        pred = E(x)
        latent_loss = (pred - latent).square().mean()
        recon_loss = (render(G, pred) - x).square().mean() if recon_weight else torch.zeros(())
        loss = latent_loss + recon_weight * recon_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append([step, latent_loss.item(), recon_loss.item()])
        bar.set_postfix(latent=f"{latent_loss.item():.4f}", recon=f"{recon_loss.item():.4f}")
        if (step + 1) % save_every == 0 or step + 1 == steps:
            state = {"encoder": E.state_dict(), "optimizer": opt.state_dict(),
                     "rng": rng.get_state(), "step": step + 1, "history": history}
            atomic_write(ckpt, lambda tmp: torch.save(state, tmp))
    info = {"generator": model_name, "steps": steps, "batch": batch, "lr": lr,
            "recon_weight": recon_weight, "seed": seed, "seconds_this_run": time.time() - t0,
            "final_latent_mse": history[-1][1] if history else None,
            "final_recon_mse": history[-1][2] if history else None}
    save_encoder(E, out, info)
    return info


def save_encoder(E: LatentEncoder, out, info: dict):
    out = Path(out)
    tensors = {k: v.detach().cpu().contiguous() for k, v in E.state_dict().items()}
    atomic_write(out.with_suffix(".safetensors"), lambda tmp: save_file(tensors, tmp))
    atomic_write_text(out.with_suffix(".json"), json.dumps(
        {"format": "ganprior-encoder", "config": E.config, "training": info}, indent=1) + "\n")


ZOO_ENCODERS = Path(__file__).resolve().parent.parent / "zoo" / "encoders"


def zoo_encoder(model_name: str) -> Path | None:
    """The shipped encoder of a zoo model (e.g. dcgan-digiface64), if there is one."""
    path = ZOO_ENCODERS / model_name
    return path if path.with_suffix(".json").exists() else None


def load_encoder(path, device="cpu") -> tuple[LatentEncoder, dict]:
    path = Path(path)
    cfg_path, w_path = path.with_suffix(".json"), path.with_suffix(".safetensors")
    try:
        cfg = json.loads(cfg_path.read_text())
        E = LatentEncoder(**cfg["config"])
        E.load_state_dict(load_file(w_path))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a usable encoder ({e})")
    return E.eval().requires_grad_(False).to(device), cfg
