"""StyleGAN2 training: loss terms against hand-computed values, steps change weights, exact resume."""
import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ganprior.data import ImageDataset
from ganprior.train.stylegan2 import (Trainer, path_length_penalty, r1_penalty, resolve_config,
                                      train)


def test_r1_matches_hand_computed():
    W = torch.randn(3, 4, 4)
    D = lambda x, c: (x * W).sum(dim=[1, 2, 3]) ** 1  # noqa: E731  linear: grad = W
    pen = r1_penalty(D, torch.randn(2, 3, 4, 4), None)
    torch.testing.assert_close(pen, torch.full((2,), W.square().sum().item()))


def test_path_length_matches_hand_computed():
    A = torch.randn(5, 3 * 4 * 4)  # img = ws[:, 0] @ A (a linear "generator")
    synth = lambda ws: (ws[:, 0] @ A).reshape(-1, 3, 4, 4) + 0 * ws.sum()  # noqa: E731
    ws = torch.randn(2, 3, 5, requires_grad=True)
    img = synth(ws)
    torch.manual_seed(7)
    pen, mean = path_length_penalty(img, ws, torch.tensor(0.0), decay=0.01)
    torch.manual_seed(7)
    y = torch.randn(2, 3, 4, 4) / 4.0  # / sqrt(H W)
    grad = torch.zeros(2, 3, 5)
    grad[:, 0] = y.reshape(2, -1) @ A.t()  # J^T y lands on the first w only
    lengths = grad.square().sum(2).mean(1).sqrt()
    expect_mean = 0.01 * lengths.mean()
    torch.testing.assert_close(mean, expect_mean)
    torch.testing.assert_close(pen, (lengths - expect_mean).square())


def test_path_length_gradient_flows_through_the_running_mean():
    # as NVIDIA's loss: pl_mean.lerp(lengths.mean(), decay) is not detached inside the penalty
    A = torch.randn(5, 3 * 4 * 4, requires_grad=True)
    ws = torch.randn(2, 3, 5, requires_grad=True)
    img = (ws[:, 0] @ A).reshape(-1, 3, 4, 4) + 0 * ws.sum()
    torch.manual_seed(7)
    pen, _ = path_length_penalty(img, ws, torch.tensor(0.5), decay=0.3)
    (got,) = torch.autograd.grad(pen.sum(), A)
    torch.manual_seed(7)
    y = torch.randn(2, 3, 4, 4) / 4.0
    lengths = (y.reshape(2, -1) @ A.t()).square().sum(1).div(3).sqrt()  # J^T y on w 0 of 3
    through = ((lengths - torch.tensor(0.5).lerp(lengths.mean(), 0.3)).square().sum(),)
    detached = ((lengths - torch.tensor(0.5).lerp(lengths.mean().detach(), 0.3)).square().sum(),)
    torch.testing.assert_close(got, torch.autograd.grad(through, A, retain_graph=True)[0])
    assert not torch.allclose(got, torch.autograd.grad(detached, A)[0])


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.RandomState(0)
    for i in range(80):  # 72 for training, 8 held out for the C2ST
        Image.fromarray(rng.randint(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return tmp_path


def small_spec(**kw):
    return resolve_config("auto", 16, batch=4, channel_base=128, channel_max=16, map=2,
                          z_dim=16, w_dim=16, **kw)


def test_presets_follow_nvidia():
    auto = resolve_config("auto", 256)
    assert auto["mb"] == 16 and auto["mbstd"] == 4 and auto["gamma"] == pytest.approx(0.8192)
    assert auto["ema"] == pytest.approx(5.0) and auto["G_kwargs"]["synthesis_kwargs"]["channel_base"] == 16384
    assert resolve_config("paper256", 256)["gamma"] == 1 and resolve_config("cifar", 32)["pl_weight"] == 0
    with pytest.raises(ValueError, match="unknown --cfg"):
        resolve_config("nope", 64)


def test_each_term_changes_the_weights(dataset):
    spec = small_spec()
    t = Trainer(ImageDataset(dataset, 16), spec)
    # the regularisers produce gradients for their network
    ws = t.G.mapping(torch.randn(2, 16)).detach().requires_grad_(True)
    pen, _ = path_length_penalty(t.G.synthesis(ws, noise_mode="random"), ws, t.pl_mean, 0.01)
    pen.mean().backward()
    assert sum(p.grad.abs().sum() for p in t.G.synthesis.parameters() if p.grad is not None) > 0
    r1 = r1_penalty(t.D, t.real_batch(2)[0], None)
    r1.mean().backward()
    assert sum(p.grad.abs().sum() for p in t.D.parameters() if p.grad is not None) > 0
    # step 0 runs main losses + path length + R1; G, D and G_ema all move
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in
              (("G", t.G), ("D", t.D), ("E", t.G_ema))}
    logs = t.train_step()
    assert {"loss_G", "loss_D", "pl_penalty", "r1_penalty"} <= set(logs)
    for k, n in (("G", t.G), ("D", t.D), ("E", t.G_ema)):
        assert any((a - b).abs().max() > 0 for a, b in zip(before[k], n.parameters())), k
    assert "pl_penalty" not in t.train_step()  # lazy: only every 4th minibatch


def test_each_phase_moves_its_own_network(dataset):
    # a regularised minibatch: Gmain, Greg, Dmain, Dreg; each optimiser step must change weights
    t = Trainer(ImageDataset(dataset, 16), small_spec())
    moved, apply = [], t._apply

    def watched(name, net, loss):
        before = [p.detach().clone() for p in net.parameters()]
        apply(name, net, loss)
        moved.append((name, max((a - p).abs().max().item() for a, p in zip(before, net.parameters()))))
    t._apply = watched
    t.train_step()
    assert [name for name, _ in moved] == ["G", "G", "D", "D"]
    assert all(change > 0 for _, change in moved), moved


def test_regularisers_take_their_own_optimiser_steps(dataset):
    # NVIDIA's phases: a regularised minibatch steps G (or D) twice, main loss then regulariser,
    # which is what the lazy-regularisation correction c = k / (k + 1) assumes
    t = Trainer(ImageDataset(dataset, 16), small_spec())
    adam_steps = lambda net: max(int(st["step"]) for st in t.opts[net].state.values())  # noqa: E731
    expect = {"G": 0, "D": 0}
    for step in range(17):
        t.train_step()
        expect["G"] += 2 if step % 4 == 0 else 1
        expect["D"] += 2 if step % 16 == 0 else 1
        assert {k: adam_steps(k) for k in expect} == expect, step


def test_resume_reproduces_the_next_step(dataset):
    spec = small_spec()
    a = Trainer(ImageDataset(dataset, 16), spec, seed=1)
    for _ in range(3):
        a.train_step()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    a.train_step()
    b = Trainer(ImageDataset(dataset, 16), spec, seed=99)  # different init, then resumed
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    b.train_step()
    for (k, x), y in zip(a.G.state_dict().items(), b.G.state_dict().values()):
        torch.testing.assert_close(x, y, msg=k)
    for x, y in zip(a.D.parameters(), b.D.parameters()):
        torch.testing.assert_close(x, y)


def test_train_command_writes_snapshots_and_resumes(dataset, tmp_path):
    from ganprior.checkpoints import load_networks
    out = tmp_path / "run"
    kw = dict(cfg="auto", kimg=0.016, snap_kimg=0.008, sample_kimg=0.008, batch=4,
              channel_base=128, channel_max=16, map=2, z_dim=16, w_dim=16, progress=False)
    train(dataset, out, **kw)
    snaps = sorted(p.name for p in out.glob("network-snapshot-*.json"))
    assert snaps and (out / "state.pt").exists() and list(out.glob("fakes*.png"))
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["kimg"] == pytest.approx(0.016) and "sec_per_kimg" in log[-1]
    nets = load_networks(out / snaps[-1].replace(".json", ".safetensors"))
    assert nets["G"].img_resolution == 16 and "D" in nets
    # the logged quality is the C2ST of the snapshot's G_ema against the 8 held-out images
    from ganprior.metrics.c2st import generator_c2st
    from ganprior.train.stylegan2 import holdout_images
    held_out = holdout_images(ImageDataset(dataset, 16))
    assert log[-1]["c2st_images"] == 8 and len(held_out) == 8
    assert log[-1]["c2st_accuracy"] == generator_c2st(nets["G"], held_out)
    t = train(dataset, out, **kw)  # finished: resumes and does nothing more
    assert t.nimg == 16
    with pytest.raises(ValueError, match=r"other settings \(gamma\)"):
        train(dataset, out, **dict(kw, gamma=5.0))
    t = train(dataset, out, **dict(kw, kimg=0.024))  # a finished run can be taken further
    assert t.nimg == 24 and t.spec["kimg"] == 0.024
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["kimg"] == pytest.approx(0.024)


def test_batch_must_hold_whole_minibatch_stddev_groups(dataset):
    with pytest.raises(ValueError, match="minibatch-stddev group of 4"):
        Trainer(ImageDataset(dataset, 16), dict(small_spec(), mb=6))
    with pytest.raises(ValueError, match="at least 1"):
        Trainer(ImageDataset(dataset, 16), dict(small_spec(), mbstd=0))


def test_holdout_is_never_trained_on(dataset):
    ds = ImageDataset(dataset, 16)
    t = Trainer(ds, small_spec())
    seen = []
    original = ds.__class__.__getitem__
    ds.__class__.__getitem__ = lambda self, i: (seen.append(i), original(self, i))[1]
    try:
        for _ in range(50):
            t.real_batch(4)
    finally:
        ds.__class__.__getitem__ = original
    assert t.n_holdout == 8 and max(seen) < 72


DDP_TRAIN = """
import sys
from ganprior.train.stylegan2 import train
train(sys.argv[1], sys.argv[2], kimg=0.016, snap_kimg=1, sample_kimg=1, batch=8, channel_base=128,
      channel_max=16, map=2, z_dim=16, w_dim=16, progress=False, device="cpu")
"""


def test_torchrun_two_processes_stay_in_sync_fast(dataset, tmp_path):
    # the library under torchrun for two minibatches (the 1-kimg CLI run below is `slow`)
    import os
    import subprocess
    import sys
    from pathlib import Path
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_TRAIN)
    torchrun = Path(sys.executable).parent / "torchrun"
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29534",
                        str(script), str(dataset), str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    log = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["processes"] == 2 and log[-1]["ddp_consistent"] is True
    assert log[-1]["kimg"] == pytest.approx(0.016)
    per_rank = torch.load(tmp_path / "run" / "state.pt", weights_only=True)["per_rank"]
    assert len(per_rank) == 2 and per_rank[0]["pl_mean"] != per_rank[1]["pl_mean"]


@pytest.mark.slow
def test_torchrun_two_processes_stay_in_sync(dataset, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    torchrun = Path(sys.executable).parent / "torchrun"
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29533",
                        "-m", "ganprior.cli", "train", "stylegan2", "--data", str(dataset),
                        "--out", str(tmp_path / "run"), "--kimg", "1", "--batch", "8",
                        "--snap", "1", "--sample-kimg", "1", "--channel-base", "128",
                        "--channel-max", "16", "--map", "2", "--z-dim", "16", "--w-dim", "16",
                        "--device", "cpu"],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    log = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["processes"] == 2 and log[-1]["ddp_consistent"] is True
    assert log[-1]["kimg"] == pytest.approx(1.0, abs=0.01)
    per_rank = torch.load(tmp_path / "run" / "state.pt", weights_only=True)["per_rank"]
    assert len(per_rank) == 2 and per_rank[0]["pl_mean"] != per_rank[1]["pl_mean"]


def test_each_process_resumes_its_own_path_length_mean_and_ada_counters(dataset):
    spec = small_spec(aug="ada")
    st = Trainer(ImageDataset(dataset, 16), spec).state_dict()
    st["per_rank"] = [{"pl_mean": torch.tensor(float(r + 1)), "augment": [0.1, 5.0 * r, 8, 3]}
                      for r in range(2)]
    second = Trainer(ImageDataset(dataset, 16), spec, rank=1, world=2)
    second.load_state_dict(st)
    assert second.pl_mean.item() == 2.0 and second.augment.state() == [0.1, 5.0, 8, 3]
    single = Trainer(ImageDataset(dataset, 16), spec)  # a different process count: rank 0's
    single.load_state_dict(dict(st, pl_mean=torch.tensor(7.0)))
    assert single.pl_mean.item() == 7.0


def smooth_images(n=2, size=32):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    imgs = [torch.stack([torch.sin(2 * xx + k), torch.cos(3 * yy - k), xx * yy]) for k in range(n)]
    return torch.stack(imgs) * 0.8


def test_ada_geometry_resamples_exact_transforms_of_smooth_images():
    from ganprior.nets.ops import setup_filter
    from ganprior.train.augment import SYM6, _rotate2d, _scale2d, _translate2d, resample
    x = smooth_images()
    eye = torch.eye(3).expand(2, 3, 3)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # away from reflected borders
    # symlet-6 is asymmetric (it delays the upsampled content by 0.2 px): exact transforms must
    # still land on the right pixels, mirrored and turned ones included (0.2 px would be ~0.03)
    for f in (setup_filter(SYM6), setup_filter([1, 3, 3, 1])):
        ref = resample(x, eye, f)  # the filters' own (slight) smoothing, to compare against
        if f.shape[0] == 12:
            torch.testing.assert_close(ref[inner], x[inner], atol=2e-3, rtol=0)
        flipped = resample(x, _scale2d(-torch.ones(2), torch.ones(2)), f)
        torch.testing.assert_close(flipped[inner], ref.flip(3)[inner], atol=2e-3, rtol=0)
        turned = resample(x, _rotate2d(torch.full((2,), math.pi / 2)), f)
        torch.testing.assert_close(turned[inner], torch.rot90(ref, 1, dims=(2, 3))[inner], atol=2e-3, rtol=0)
        # the inverse maps output to input: out[y, x] = in[y - 2, x + 3]
        shifted = resample(x, _translate2d(torch.full((2,), 3.0), torch.full((2,), -2.0)), f)
        torch.testing.assert_close(shifted[:, :, 6:-6, 6:-6], ref[:, :, 4:24, 9:29], atol=2e-3, rtol=0)


def test_ada_random_transforms_follow_nvidia_distributions():
    from ganprior.train.augment import AugmentPipe
    torch.manual_seed(0)
    pipe, n = AugmentPipe(p=1.0), 4000
    m = pipe.geometry_matrix(n, 32, 32, "cpu")
    det = torch.linalg.det(m[:, :2, :2])
    assert 0.45 < (det < 0).float().mean() < 0.55  # x-flip: half of the samples at p = 1
    # only the isotropic scale changes the area: log2 |det| = -2 log2 s, s ~ 2^N(0, 0.2)
    assert abs(det.abs().log2().std().item() / 2 - 0.2) < 0.01
    c = pipe.colour_matrix(n, "cpu")
    luma = torch.ones(3) / 3 ** 0.5
    gain = (c[:, :3, :3] @ luma) @ luma  # contrast x (+-1 luma flip) along the luma axis
    assert 0.45 < (gain < 0).float().mean() < 0.55
    assert abs(gain.abs().log2().std().item() - 0.5) < 0.02  # contrast ~ 2^N(0, 0.5)
    pipe.p = 0.5
    m = pipe.geometry_matrix(n, 32, 32, "cpu")
    flipped = (torch.linalg.det(m[:, :2, :2]) < 0).float().mean()
    assert 0.22 < flipped < 0.28  # gated at p, then flipped half of the time


def test_ada_ops_keep_grey_grey_and_constant_constant():
    from ganprior.train.augment import AugmentPipe, _colour_rotation
    torch.manual_seed(0)
    pipe = AugmentPipe(p=1.0)
    grey = torch.rand(64, 1, 8, 8).expand(64, 3, 8, 8) * 2 - 1
    out = pipe.colour(grey)  # no colour op tints a grey image (all act about the luma axis)
    torch.testing.assert_close(out[:, 0], out[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 1], out[:, 2], atol=1e-5, rtol=0)
    assert (out - grey).abs().mean() > 0.1
    # a hue rotation of 120 degrees about the luma axis cycles the channels
    rgb = torch.rand(1, 3, 4, 4)
    cyc = pipe.colour(rgb, _colour_rotation(torch.tensor([2 * math.pi / 3]), torch.ones(3) / math.sqrt(3)))
    torch.testing.assert_close(cyc, rgb[:, [2, 0, 1]], atol=1e-5, rtol=0)
    const = torch.full((16, 3, 16, 16), 0.3)
    torch.testing.assert_close(pipe.geometry(const), const, atol=1e-4, rtol=0)


def test_ada_pipe_changes_images_differentiably_and_adapts_p():
    from ganprior.train.augment import AugmentPipe
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    pipe = AugmentPipe(p=0.0)
    assert pipe(x) is x
    pipe.p = 1.0
    xr = x.clone().requires_grad_(True)
    y = pipe(xr)
    assert y.shape == x.shape and (y - x).abs().mean() > 0.05
    (g,) = torch.autograd.grad(y.square().sum(), xr, create_graph=True)  # R1 goes through aug
    g.square().sum().backward()
    assert xr.grad.abs().sum() > 0
    # adjustment: D overfits (all real logits positive) -> p rises; the opposite -> p falls to 0
    pipe = AugmentPipe(p=0.0, interval=2)
    for _ in range(4):
        pipe.accumulate(torch.ones(8))
        pipe.adjust(batch=1000)
    assert pipe.p == pytest.approx(2 * 1000 * 2 / 500_000)
    for _ in range(20):
        pipe.accumulate(-torch.ones(8))
        pipe.adjust(batch=1000)
    assert pipe.p == 0.0
    # bounded below only, as NVIDIA's: above 1 every op applies to every image, and stays finite
    pipe = AugmentPipe(p=0.999, interval=1)
    pipe.accumulate(torch.ones(8))
    pipe.adjust(batch=1000)
    assert pipe.p > 1 and torch.isfinite(pipe(x)).all()


def test_ada_in_training_and_resume(dataset):
    spec = small_spec(aug="ada")
    t = Trainer(ImageDataset(dataset, 16), spec)
    t.augment.p = 0.3
    logs = t.train_step()
    assert "augment_p" in logs
    st = t.state_dict()
    u = Trainer(ImageDataset(dataset, 16), spec)
    u.load_state_dict(st)
    assert u.augment.p == t.augment.p
    # resumed mid-interval (1 of every 4 minibatches), p moves at the same minibatch as before
    for _ in range(3):
        t.train_step()
        u.train_step()
    assert t.augment.p != 0.3 and u.augment.p == t.augment.p
    # a state.pt written before the counters were saved holds only p
    old_state = {k: v for k, v in t.state_dict().items() if k != "augment"}
    v = Trainer(ImageDataset(dataset, 16), spec)
    v.load_state_dict(dict(old_state, augment_p=0.25))
    assert v.augment.p == 0.25
    assert small_spec(aug="noaug")["aug"] == "noaug"
    with pytest.raises(ValueError, match="unknown --aug"):
        small_spec(aug="bogus")


def test_conditional_training_step(dataset):
    names = sorted(p.name for p in dataset.glob("*.png"))
    (dataset / "dataset.json").write_text(json.dumps({"labels": [[n, i % 3] for i, n in enumerate(names)]}))
    ds = ImageDataset(dataset, 16)
    spec = resolve_config("auto", 16, c_dim=ds.c_dim, batch=4, channel_base=128, channel_max=16,
                          map=2, z_dim=16, w_dim=16)
    t = Trainer(ds, spec)
    c = t.random_c(5)
    assert c.shape == (5, 3) and (c.sum(1) == 1).all()
    assert {"loss_G", "loss_D"} <= set(t.train_step())
