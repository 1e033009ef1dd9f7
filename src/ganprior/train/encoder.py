"""Train encoders on images the generator makes itself.

- latent encoder (mGANprior's baseline): loss = MSE(E(x), latent) + recon_weight * MSE(G(E(x)), x).
- PadInv encoder (`padinv=True`, StyleGAN2): predicts W+ and the padding-space maps; loss as
  PadInv's official code: pixel L2 x 1.0 + perceptual x 0.8 + ||E(x) - w_avg||_2 x 0.003.
  The perceptual term is LPIPS (VGG backbone; the official default backbone is AlexNet) when
  its weights are installed, else 1 - MS-SSIM (the run records which); PadInv's identity
  (face-ID net) and adversarial terms are not used.
  Optional real images (`data`, a folder) are mixed with generated ones, half and half.

Adam. Checkpoints (weights + optimiser + RNG + step) are written atomically every `save_every`
steps, so a killed run resumes exactly. The encoder is NAME.safetensors + NAME.json.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..files import atomic_write
# Encoder file I/O and padinv_params live in nets/ (inference needs them).
from ..nets.encoder_files import save_encoder
from ..nets.encoders import encoder_for, padinv_encoder_for, padinv_params
from ..progress import progress_bar


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


def _latent_step(G, E, x, latent, recon_weight, loss_fn):
    pred = E(x)
    latent_loss = (pred - latent).square().mean()
    recon_loss = (render(G, pred) - x).square().mean() if recon_weight else torch.zeros(())
    return latent_loss + recon_weight * recon_loss, [latent_loss.item(), recon_loss.item()]


def _padinv_step(G, E, x, latent, recon_weight, loss_fn):
    params = padinv_params(G, E, x)
    img = G.synthesize(params["w"], noise_mode="const", const=params["const"],
                       paddings={r: params[f"pad{r}"] for r in E.pads})
    pixel = (img - x).square().flatten(1).mean(1).mean()
    perceptual = loss_fn(img, x).mean()
    reg = (params["w"] - G.w_avg).flatten(1).norm(dim=1).mean()
    loss = 1.0 * pixel + 0.8 * perceptual + 0.003 * reg
    return loss, [pixel.item(), perceptual.item(), reg.item()]


def _real_batch(files, n, rng, G):
    from ..images import load_image
    idx = torch.randint(len(files), (n,), generator=rng).tolist()
    return torch.cat([load_image(files[i], G.img_resolution, G.img_channels) for i in idx]).to(G.device)


def train_encoder(G, out, steps=2000, batch=32, lr=1e-3, recon_weight=1.0, seed=0,
                  save_every=200, model_name="", progress=True, padinv=False, data=None,
                  pad_resolutions=4) -> dict:
    out = Path(out)
    ckpt = out.with_name(out.name + ".ckpt.pt")
    with torch.random.fork_rng(devices=[]):  # initial weights from `seed`: reproducible runs
        torch.manual_seed(seed)
        E = (padinv_encoder_for(G, pad_resolutions) if padinv else encoder_for(G)).to(G.device)
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
    loss_fn, step_fn, files = None, _latent_step, []
    if padinv:
        from ..inversion.losses import ReconstructionLoss
        loss_fn = ReconstructionLoss("lpips:1" if _has_lpips() else "ms-ssim:1", G.device)
        step_fn = _padinv_step
        if data:
            from ..inputs import list_inputs
            files = list_inputs([data])
    t0 = time.time()
    bar = progress_bar(range(start, steps), desc="train encoder", unit="step",
                       enabled=progress, initial=start, total=steps)
    for step in bar:
        x, latent = sample_pairs(G, batch, rng)
        if files:  # half generated, half real
            x = torch.cat([x[: batch // 2], _real_batch(files, batch - batch // 2, rng, G)])
        loss, parts = step_fn(G, E, x, latent, recon_weight, loss_fn)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append([step, *parts])
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % save_every == 0 or step + 1 == steps:
            state = {"encoder": E.state_dict(), "optimizer": opt.state_dict(),
                     "rng": rng.get_state(), "step": step + 1, "history": history}
            atomic_write(ckpt, lambda tmp: torch.save(state, tmp))
    info = {"generator": model_name, "kind": "padinv" if padinv else "latent", "steps": steps,
            "batch": batch, "lr": lr, "seed": seed, "seconds_this_run": time.time() - t0,
            "data": str(data) if data else None,
            "final_losses": history[-1][1:] if history else None}
    if padinv:
        info["loss"] = {"pixel_l2": 1.0, "perceptual": 0.8, "w_reg": 0.003,
                        "perceptual_kind": loss_fn.name, "identity": "not used (no face-ID net)",
                        "adversarial": "not used"}
    else:
        info["recon_weight"] = recon_weight
        info["final_latent_mse"], info["final_recon_mse"] = (history[-1][1:3] if history
                                                             else (None, None))
    save_encoder(E, out, info)
    return info


def _has_lpips():
    from .. import weights
    return weights.find("vgg16") is not None and weights.find("lpips-vgg") is not None
