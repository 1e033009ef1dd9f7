"""Classifier two-sample test (C2ST; Lopez-Paz & Oquab, 2017): an offline quality measure.

A small CNN is trained to tell real from generated images on one half of each set and tested
on the other half. Test accuracy near 0.5 means the classifier cannot tell them apart (better);
near 1.0 means the generated images are easy to spot. Deterministic for a given seed.

Both sets are first put on the 8-bit grid a saved image has (clamped to [-1, 1], quantised as
`images.to_uint8`, read back as `load_image` does). Real images loaded from files already are;
a generator's raw float output is not, and without this the classifier can score by spotting
off-grid or out-of-range values that nobody viewing the images would ever see.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..images import as_saved_image  # the 8-bit round trip every saved image takes


def _classifier(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))


def c2st_accuracy(real: torch.Tensor, fake: torch.Tensor, steps: int = 300, batch: int = 64,
                  lr: float = 2e-3, seed: int = 0) -> float:
    """Held-out accuracy of a classifier trained to separate `real` from `fake` ([N, C, H, W])."""
    real, fake = as_saved_image(real), as_saved_image(fake)
    n = min(len(real), len(fake))
    if n < 8:
        raise ValueError("C2ST needs at least 8 images of each kind")
    g = torch.Generator().manual_seed(seed)
    real, fake = real[torch.randperm(len(real), generator=g)[:n]], fake[torch.randperm(len(fake), generator=g)[:n]]
    half = n // 2
    x_train = torch.cat([real[:half], fake[:half]])
    y_train = torch.cat([torch.ones(half), torch.zeros(half)])
    x_test = torch.cat([real[half:], fake[half:]])
    y_test = torch.cat([torch.ones(n - half), torch.zeros(n - half)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _classifier(real.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(len(x_train), (min(batch, len(x_train)),), generator=g)
            loss = F.binary_cross_entropy_with_logits(net(x_train[idx]).squeeze(1), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = torch.cat([net(x_test[i:i + 256]).squeeze(1) for i in range(0, len(x_test), 256)]) > 0
    return (pred.float() == y_test).float().mean().item()


@torch.no_grad()
def generator_c2st(G, real: torch.Tensor, seed: int = 0) -> float:
    """C2ST of `len(real)` samples of a StyleGAN2 generator (psi 1, constant noise; z and, for
    a conditional G, uniform labels drawn from `seed`) against `real`, classifier seeded alike."""
    device = next(G.parameters()).device
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(real), G.z_dim, generator=g)
    c = torch.zeros(len(real), G.c_dim)
    if G.c_dim:
        c[torch.arange(len(real)), torch.randint(G.c_dim, (len(real),), generator=g)] = 1
    fake = torch.cat([G(z[i:i + 64].to(device), c[i:i + 64].to(device), noise_mode="const").cpu()
                      for i in range(0, len(z), 64)])
    return c2st_accuracy(real, fake, seed=seed)
