"""The training recipe's numbers, against values computed by hand, and checks that the training
loop really uses them (NVIDIA's training_loop.py / loss.py: lazy-regularisation Adam correction,
G EMA with ramp-up, R1 and path-length terms scaled by their intervals)."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ganprior.data import ImageDataset
from ganprior.train.stylegan2 import (Trainer, ema_beta, lazy_adam_settings, pl_loss, r1_loss,
                                      r1_penalty, resolve_config)


def test_lazy_adam_settings_by_hand():
    # G every 4 minibatches: c = 4/5; D every 16: c = 16/17
    lr, betas = lazy_adam_settings(0.0025, (0.0, 0.99), 4)
    assert lr == pytest.approx(0.002, rel=1e-12)
    assert betas == pytest.approx((0.0, 0.99199196782), rel=1e-10)  # exp(0.8 ln 0.99)
    lr, betas = lazy_adam_settings(0.0025, (0.5, 0.99), 16)
    assert lr == pytest.approx(0.0025 * 16 / 17, rel=1e-12)  # 0.00235294...
    assert betas == pytest.approx((0.52080801, 0.99058546), rel=1e-7)  # 0.5^(16/17), 0.99^(16/17)
    assert lazy_adam_settings(0.0025, (0.0, 0.99), None) == (0.0025, (0.0, 0.99))


def test_ema_beta_by_hand():
    # half-life 10 kimg, batch 4: beta = 0.5^(4 / 10000)
    assert ema_beta(4, 10, None, 0) == pytest.approx(0.99972277, rel=1e-8)
    # ramp-up: the half-life is min(10000, 0.05 x images seen): 0 at the start -> G_ema = G
    assert ema_beta(4, 10, 0.05, 0) == 0.0
    assert ema_beta(4, 10, 0.05, 2000) == pytest.approx(0.97265495, rel=1e-8)  # 0.5^(4/100)
    assert ema_beta(4, 10, 0.05, 10 ** 6) == pytest.approx(0.99972277, rel=1e-8)  # ramp over
    assert ema_beta(64, 20, None, 5000) == pytest.approx(0.99778439, rel=1e-8)  # 0.5^(64/20000)


def test_r1_and_path_length_gains_by_hand():
    pen = torch.tensor([1.0, 3.0])  # mean 2
    assert r1_loss(pen, gamma=0.5, interval=16).item() == pytest.approx(2 * 0.25 * 16)
    assert pl_loss(pen, pl_weight=2.0, interval=4).item() == pytest.approx(2 * 2.0 * 4)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.RandomState(0)
    for i in range(40):
        Image.fromarray(rng.randint(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return ImageDataset(root, 16)


def small_trainer(dataset, **kw):
    spec = resolve_config("auto", 16, batch=4, channel_base=128, channel_max=16, map=2,
                          z_dim=16, w_dim=16, aug="noaug", **kw)
    return Trainer(dataset, spec)


def test_the_trainer_builds_adam_with_the_correction(dataset):
    t = small_trainer(dataset, lrate=0.0025)
    for name, c in (("G", 4 / 5), ("D", 16 / 17)):
        (group,) = t.opts[name].param_groups
        assert group["lr"] == pytest.approx(0.0025 * c, rel=1e-12), name
        assert group["betas"] == pytest.approx((0.0, 0.99 ** c), rel=1e-12), name
        assert group["eps"] == 1e-8


@pytest.mark.parametrize("nimg, ramp, beta", [(2000, 0.05, 0.5 ** (4 / 100)),
                                               (0, 0.05, 0.0),
                                               (2000, None, 0.5 ** (4 / 10000))])
def test_one_step_moves_g_ema_by_the_hand_computed_beta(dataset, nimg, ramp, beta):
    t = small_trainer(dataset)
    t.spec["ramp"] = ramp
    t.nimg = nimg  # as if resumed after `nimg` images
    with torch.no_grad():  # G_ema away from G, so that beta shows in the result
        for p in t.G_ema.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in t.G_ema.parameters()]
    t.train_step()
    for ema, old, g in zip(t.G_ema.parameters(), before, t.G.parameters()):
        torch.testing.assert_close(ema, beta * old + (1 - beta) * g, rtol=1e-5, atol=1e-6)
    for b_ema, b in zip(t.G_ema.buffers(), t.G.buffers()):  # w_avg etc.: copied, not averaged
        torch.testing.assert_close(b_ema, b)
    assert t.nimg == nimg + 4


def test_the_loop_scales_r1_and_path_length_by_their_intervals(dataset):
    gamma = 0.5
    t = small_trainer(dataset, gamma=gamma)
    reals, losses, expected_r1 = [], [], []
    real_batch, apply = t.real_batch, t._apply
    t.real_batch = lambda n: reals.append(real_batch(n)) or reals[-1]

    def watched(name, net, loss):
        if len(losses) == 3:  # Dreg: the same R1, computed here from D as it is now
            x, c = reals[0]
            expected_r1.append(r1_penalty(t.D, x, c).mean().item() * gamma / 2 * 16)
        losses.append(loss.item())
        apply(name, net, loss)
    t._apply = watched
    logs = t.train_step()  # minibatch 0: Gmain, Greg, Dmain, Dreg
    assert len(losses) == 4
    assert losses[0] == pytest.approx(logs["loss_G"]) and losses[2] == pytest.approx(logs["loss_D"])
    assert losses[1] == pytest.approx(logs["pl_penalty"] * 2.0 * 4, rel=1e-6)  # pl_weight x 4
    assert logs["r1_penalty"] > 0
    assert losses[3] == pytest.approx(logs["r1_penalty"] * gamma / 2 * 16, rel=1e-6)
    assert losses[3] == pytest.approx(expected_r1[0], rel=1e-5)


def test_r1_gradient_is_the_hand_computed_one():
    # D(x) = sum(w * x^2 / 2): grad_x D = w * x, penalty = sum (w x)^2, d penalty / dw = 2 w x^2
    w = torch.tensor([0.5, -2.0, 3.0], requires_grad=True)
    x = torch.tensor([[[[1.0]], [[2.0]], [[-1.0]]]])
    D = lambda img, c: (w[None, :, None, None] * img.square() / 2).sum(dim=[1, 2, 3])  # noqa: E731
    loss = r1_loss(r1_penalty(D, x, None), gamma=0.5, interval=16)
    assert loss.item() == pytest.approx((0.25 + 16 + 9) * 0.25 * 16)
    (grad,) = torch.autograd.grad(loss, w)
    torch.testing.assert_close(grad, 2 * w.detach() * x.flatten().square() * 0.25 * 16)


def test_ema_half_life_is_ema_kimg():
    # after ema_kimg thousand images (without ramp-up) the old weights have half their weight
    beta = ema_beta(32, 10, None, 0)
    assert beta ** (10_000 / 32) == pytest.approx(0.5, rel=1e-9)
    assert math.isclose(ema_beta(32, 10, 0.05, 10_000), 0.5 ** (32 / 500))
