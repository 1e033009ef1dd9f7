"""FID/KID: the statistics against closed forms, and the detector plumbing with a stand-in
TorchScript detector (NVIDIA's real one cannot be downloaded here)."""
import numpy as np
import pytest
import torch
from PIL import Image

from ganprior.data import ImageDataset
from ganprior.errors import GanpriorError
from ganprior.metrics import fid
from ganprior.train.stylegan2 import Trainer, resolve_config


def hadamard(n):
    h = np.ones((1, 1))
    while len(h) < n:
        h = np.block([[h, h], [h, -h]])
    return h


def with_moments(mean, var):
    """8 features whose sample mean is `mean` and sample covariance (1/N) is diag(var)."""
    cols = hadamard(8)[:, 1:1 + len(mean)]  # zero-mean, orthogonal, unit variance columns
    return np.asarray(mean) + cols * np.sqrt(var)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    mu_a, var_a = np.array([0.0, 1.0, -2.0]), np.array([1.0, 4.0, 0.25])
    mu_b, var_b = np.array([1.0, 1.0, 0.0]), np.array([9.0, 1.0, 0.25])
    expect = ((mu_a - mu_b) ** 2).sum() + (var_a + var_b - 2 * np.sqrt(var_a * var_b)).sum()
    got = fid.frechet_distance(with_moments(mu_a, var_a), with_moments(mu_b, var_b))
    assert got == pytest.approx(expect, rel=1e-9)  # 1 + 4 + 4 + 1 + 0 = 10
    a = np.random.default_rng(0).normal(size=(300, 6))
    assert abs(fid.frechet_distance(a, a)) < 1e-6


def with_covariance(mean, cov, n=64, seed=0):
    """n features whose sample mean is `mean` and population covariance (1/N) exactly `cov`."""
    x = np.random.default_rng(seed).normal(size=(n, len(mean)))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(x.T @ x / n)).T  # whitened: covariance I
    return np.asarray(mean) + x @ np.linalg.cholesky(cov).T


def test_frechet_distance_matches_closed_form_for_non_commuting_covariances():
    # 2x2: AB has positive eigenvalues l1, l2, so Tr (AB)^(1/2) = sqrt(l1) + sqrt(l2)
    #      = sqrt(Tr AB + 2 sqrt(det AB))
    A, B = np.array([[2.0, 0.8], [0.8, 1.0]]), np.array([[0.5, -0.3], [-0.3, 3.0]])
    mu_a, mu_b = np.array([1.0, -1.0]), np.array([0.0, 2.0])
    tr_root = np.sqrt(np.trace(A @ B) + 2 * np.sqrt(np.linalg.det(A @ B)))
    expect = 1 + 9 + np.trace(A) + np.trace(B) - 2 * tr_root
    got = fid.frechet_distance(with_covariance(mu_a, A), with_covariance(mu_b, B, seed=1))
    assert got == pytest.approx(expect, rel=1e-9)
    assert fid.frechet_distance(with_covariance(mu_b, B, seed=1), with_covariance(mu_a, A)) == pytest.approx(expect, rel=1e-9)
    # the same Gaussian twice, from different samples: 0
    assert abs(fid.frechet_distance(with_covariance(mu_a, A), with_covariance(mu_a, A, seed=2))) < 1e-9


def test_kernel_distance_is_the_unbiased_mmd():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1.0, size=(12, 5))
    k = lambda a, b: (a @ b / 5 + 1) ** 3  # noqa: E731
    m = 12
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m ** 2
    # one subset of all features: a permutation, which the estimator does not see
    assert fid.kernel_distance(x, y, num_subsets=1) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)
    same = rng.normal(size=(400, 5))
    assert abs(fid.kernel_distance(same[:200], same[200:], num_subsets=20, max_subset_size=200)) < 0.05


class StandInDetector(torch.nn.Module):
    """The detector's interface (uint8 NCHW in, features out) with a trivial body."""
    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 2).flatten(1)


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path / "weights"))
    return tmp_path / "weights"


def test_missing_detector_says_where_to_put_it(weights_dir):
    with pytest.raises(GanpriorError, match="inception-2015-12-05.pt"):
        fid.load_detector()


def test_trainer_reports_fid_and_kid_when_the_detector_is_installed(weights_dir, tmp_path):
    rng = np.random.RandomState(0)
    for i in range(80):
        Image.fromarray(rng.randint(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    spec = resolve_config("auto", 16, batch=4, channel_base=128, channel_max=16, map=2,
                          z_dim=16, w_dim=16, aug="noaug")
    ds = ImageDataset(tmp_path, resolution=16)
    trainer = Trainer(ds, spec, fid_images=40)
    assert trainer.fid_kid() == {}  # no detector: no FID/KID (C2ST only)
    with torch.no_grad():  # G differs from G_ema: the measure must be of G_ema
        for p in trainer.G.parameters():
            p.add_(torch.randn_like(p))
    weights_dir.mkdir()
    torch.jit.script(StandInDetector()).save(str(weights_dir / "inception-2015-12-05.pt"))
    q = trainer.quality()
    # what it measured: 40 training images against 40 samples of G_ema, both through the detector
    det = StandInDetector()
    real = fid.inception_features(det, fid.dataset_batches(ds, 40))
    fake = fid.inception_features(det, fid.generator_batches(trainer.G_ema, 40))
    assert len(real) == len(fake) == 40
    assert q["fid40"] == pytest.approx(fid.frechet_distance(real, fake), rel=1e-6)
    assert q["kid40"] == pytest.approx(fid.kernel_distance(real, fake), rel=1e-6)
    assert "c2st_accuracy" in q
    other = fid.inception_features(det, fid.generator_batches(trainer.G, 40))
    assert fid.frechet_distance(real, other) != pytest.approx(q["fid40"], rel=1e-3)
    # the same real features and seeds: the measurement is deterministic
    assert trainer.fid_kid()["fid40"] == q["fid40"]


def test_features_need_uint8():
    with pytest.raises(ValueError, match="uint8"):
        fid.inception_features(StandInDetector(), [torch.zeros(1, 3, 8, 8)])


def test_fid_command(weights_dir, tmp_path):
    import json

    from conftest import small_stylegan2
    from typer.testing import CliRunner

    from ganprior.checkpoints import load_networks, save_native
    from ganprior.cli import app
    rng = np.random.RandomState(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(24):
            Image.fromarray(rng.randint(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    r = CliRunner().invoke(app, ["fid", str(tmp_path / "a"), str(tmp_path / "b")])
    assert r.exit_code == 1 and "inception-2015-12-05.pt" in r.output  # not installed
    weights_dir.mkdir()
    torch.jit.script(StandInDetector()).save(str(weights_dir / "inception-2015-12-05.pt"))
    r = CliRunner().invoke(app, ["fid", str(tmp_path / "a"), str(tmp_path / "a"), "--json"])
    same = json.loads(r.output)
    assert r.exit_code == 0 and abs(same["fid"]) < 1e-6 and same["n_real"] == 24
    save_native(tmp_path / "g", small_stylegan2(res=32))
    r = CliRunner().invoke(app, ["fid", str(tmp_path / "a"), str(tmp_path / "g.safetensors"),
                                 "--n", "16", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["n_fake"] == 16 and out["n_real"] == 16
    # 16 of the 24 real images (seed 0) against 16 samples of the model (seed 0)
    G = load_networks(tmp_path / "g.safetensors")["G"]
    real = fid.inception_features(StandInDetector(), fid.dataset_batches(tmp_path / "a", 16, 32))
    fake = fid.inception_features(StandInDetector(), fid.generator_batches(G, 16))
    assert out["fid"] == pytest.approx(fid.frechet_distance(real, fake), rel=1e-6)
    assert out["kid"] == pytest.approx(fid.kernel_distance(real, fake), rel=1e-6)


def test_dataset_batches_give_the_stored_pixels(tmp_path):
    rng = np.random.RandomState(3)
    stored = [rng.randint(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(5)]
    for i, arr in enumerate(stored):
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
    got = torch.cat(list(fid.dataset_batches(tmp_path, 5, 16, batch=2)))
    assert got.dtype == torch.uint8 and got.shape == (5, 3, 16, 16)
    key = lambda a: a.tobytes()  # noqa: E731  (order is a random subset's)
    assert sorted(map(key, got.permute(0, 2, 3, 1).numpy())) == sorted(map(key, stored))


def test_generator_samples_are_reproducible_and_use_random_noise():
    from conftest import small_stylegan2
    G = small_stylegan2(res=16)
    a = torch.cat(list(fid.generator_batches(G, 6, batch=4, seed=1)))
    b = torch.cat(list(fid.generator_batches(G, 6, batch=4, seed=1)))
    assert torch.equal(a, b) and a.shape == (6, 3, 16, 16)
    with torch.no_grad():  # same z, constant noise: a different image (NVIDIA's metrics use random)
        z = torch.randn(6, G.z_dim, generator=torch.Generator().manual_seed(1))
        const = G.synthesize(G.z_to_w(z[:4]), noise_mode="const")
    assert not torch.equal(a[:4], (const * 127.5 + 128).clamp(0, 255).to(torch.uint8))
