"""FID (Heusel et al., 2017) and KID (Binkowski et al., 2018) with NVIDIA's Inception detector.

The detector is the one stylegan2-ada-pytorch's metrics use: NVIDIA's TorchScript translation of
TensorFlow's Inception-v3 ("inception-2015-12-05.pt"), which takes uint8 images of any size and
returns 2048 pool features; with it the numbers are comparable with published ones. It is an
optional weight file (`ganprior weights download inception-fid`, or copy it into the weights
folder); without it these functions raise a GanpriorError that says so. The statistics follow
NVIDIA's code: population covariance (1/N) for FID; KID as the mean over 100 random subsets of
at most 1000 features of the unbiased MMD^2 with the cubic polynomial kernel.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import scipy.linalg
import torch

from ..errors import GanpriorError
from ..images import quantize_8bit


def load_detector(device="cpu") -> torch.jit.ScriptModule:
    """NVIDIA's Inception feature detector from the weights folder (TorchScript, no pickle)."""
    from .. import weights
    path = weights.find("inception-fid")
    if path is None:
        raise GanpriorError(f"FID/KID need NVIDIA's Inception detector: put "
                            f"{weights.REGISTRY['inception-fid'].filename} into "
                            f"{weights.cache_dir()} (or `ganprior weights download inception-fid`)")
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is the file's format
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError) as e:
        raise GanpriorError(f"{path}: not a TorchScript Inception detector ({e})")


@torch.no_grad()
def inception_features(detector, batches: Iterable[torch.Tensor], device="cpu") -> np.ndarray:
    """[N, 2048] float64 features of uint8 image batches [B, C, H, W] (grey is repeated to RGB)."""
    out = []
    for x in batches:
        if x.dtype != torch.uint8:
            raise ValueError("inception_features expects uint8 images (0-255)")
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        out.append(detector(x.to(device), return_features=True).double().cpu().numpy())
    return np.concatenate(out)


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets [N, D]."""
    mu_a, mu_b = feat_a.mean(0), feat_b.mean(0)
    cov_a = np.cov(feat_a, rowvar=False, bias=True)
    cov_b = np.cov(feat_b, rowvar=False, bias=True)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    return float(np.real(np.square(mu_a - mu_b).sum() + np.trace(cov_a + cov_b - 2 * root)))


def kernel_distance(feat_real: np.ndarray, feat_fake: np.ndarray, num_subsets: int = 100,
                    max_subset_size: int = 1000, seed: int = 0) -> float:
    """KID: unbiased MMD^2 with k(x, y) = (x.y / D + 1)^3, averaged over random subsets."""
    d = feat_real.shape[1]
    m = min(len(feat_real), len(feat_fake), max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 features of each kind")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = feat_fake[rng.choice(len(feat_fake), m, replace=False)]
        y = feat_real[rng.choice(len(feat_real), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        total += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(total / num_subsets / m)


def generator_batches(G, n: int, batch: int = 64, seed: int = 0, device="cpu", labels=None):
    """uint8 batches of n samples of G as NVIDIA's metrics draw them: psi 1, random noise;
    a conditional G gets the classes of random `labels` (the dataset's), else uniform ones.
    Reproducible from `seed` (the global RNG is left as it was)."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[] if torch.device(device).type == "cpu" else [device]):
        torch.manual_seed(seed)  # the per-pixel noise
        for i in range(0, n, batch):
            b = min(batch, n - i)
            z = torch.randn(b, G.z_dim, generator=g).to(device)
            c = None
            if G.c_dim:
                classes = (torch.as_tensor(labels)[torch.randint(len(labels), (b,), generator=g)]
                           if labels is not None else torch.randint(G.c_dim, (b,), generator=g))
                c = torch.nn.functional.one_hot(classes, G.c_dim).float().to(device)
            with torch.no_grad():
                img = G.synthesize(G.z_to_w(z, c), noise_mode="random")
            yield quantize_8bit(img)


def dataset_batches(source, n: int, resolution: int | None = None, batch: int = 64, seed: int = 0):
    """uint8 batches of up to n images (a random subset when there are more) of an ImageDataset,
    or of a folder or zip, centre-cropped and resized to `resolution` as training data is."""
    from ..data import ImageDataset
    ds = source if isinstance(source, ImageDataset) else ImageDataset(source, resolution)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    for k in range(0, len(idx), batch):
        imgs = torch.stack([ds.image(i) for i in idx[k:k + batch]])
        yield quantize_8bit(imgs)


def fid_kid(real_batches, fake_batches, device="cpu", detector=None) -> dict:
    """{'fid', 'kid', 'n_real', 'n_fake'} between two streams of uint8 image batches."""
    detector = detector if detector is not None else load_detector(device)
    real = inception_features(detector, real_batches, device)
    fake = inception_features(detector, fake_batches, device)
    return {"fid": frechet_distance(real, fake), "kid": kernel_distance(real, fake),
            "n_real": len(real), "n_fake": len(fake)}
