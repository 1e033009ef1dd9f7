"""pix2pixHD training (train/pix2pixhd.py): the learning-rate schedule by hand, losses falling on
one fixed batch, --niter-fix-global freezing exactly the global generator, bit-identical resume
after an interruption, snapshots holding G + D + E, DDP with two gloo processes, the CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganprior.train.pix2pixhd import (Trainer, latest_snapshot, lr_at, make_spec,
                                      read_manifest, train)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def write_pairs(root, n=4, size=16, seed=0, phase="train", classes=True):
    """A dataset in pix2pixHD's layout: sky/ground halves (classes 0, 1, one instance each)
    and two square "things" per image (classes 2, 3; ids class*1000 + k), each red or green
    at random, so an instance's colour is what its feature has to carry."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for d in ("label", "inst", "img"):
        (root / f"{phase}_{d}").mkdir(parents=True, exist_ok=True)
    q = size // 4
    for i in range(n):
        label = np.zeros((size, size), np.uint8)
        label[size // 2:] = 1
        inst = label.astype(np.int32)
        img = np.zeros((size, size, 3), np.uint8)
        img[: size // 2] = (90, 140, 220)
        img[size // 2:] = (90, 90, 90)
        for k in range(2):
            y, x = (k * 2 * q, q * int(rng.integers(0, 3)))
            label[y:y + q, x:x + q] = 2 + k
            inst[y:y + q, x:x + q] = (2 + k) * 1000 + k
            img[y:y + q, x:x + q] = (220, 30, 30) if rng.random() < 0.5 else (30, 200, 40)
        name = f"{i:03d}.png"
        Image.fromarray(label).save(root / f"{phase}_label" / name)
        Image.fromarray(inst.astype(np.uint16)).save(root / f"{phase}_inst" / name)
        Image.fromarray(img).save(root / f"{phase}_img" / name)
    if classes:
        (root / "scenes.json").write_text(json.dumps({
            "label_nc": 4, "classes": ["sky", "ground", "car", "tree"], "things": ["car", "tree"],
            "palette": {"sky": [70, 130, 180], "ground": [107, 142, 35], "car": [0, 0, 142],
                        "tree": [0, 150, 0]}}))
    return root


TINY = dict(ngf=4, ndf=4, n_blocks=1, n_downsample=2, num_D=2, n_layers_D=2, nef=4,
            n_downsample_E=2, vgg=False, batch=2)


def tiny_spec(**kw):
    return make_spec(**{**TINY, "label_nc": 4, "features": True, "niter": 2, "niter_decay": 1,
                        **kw})


def dataset(root, spec):
    from ganprior.data.paired import Layout, PairedDataset
    from ganprior.train.pix2pixhd import size_multiple
    return PairedDataset(Layout(root, 4), multiple=size_multiple(spec), flip=spec["flip"],
                         seed=spec["seed"], check=False)


@pytest.fixture
def data(tmp_path):
    return write_pairs(tmp_path / "data")


# --- the recipe ---------------------------------------------------------------------------

def test_lr_schedule_by_hand():
    # niter 3, niter_decay 4: epochs 0-3 at lr, then lr - k * lr / 4 (the official loop
    # lowers it after epoch niter+1, niter+2, ...: the last epoch runs at lr / 4)
    lr = 2e-4
    want = [lr, lr, lr, lr, 0.75 * lr, 0.5 * lr, 0.25 * lr]
    assert [lr_at(e, lr, 3, 4) for e in range(7)] == pytest.approx(want)
    assert lr_at(7, lr, 3, 4) == 0.0  # where the decay ends
    assert [lr_at(e, 1.0, 2, 0) for e in range(4)] == [1.0] * 4  # no decay


def test_trainer_sets_the_epochs_learning_rate(data):
    spec = tiny_spec(niter=1, niter_decay=2, features=False)
    t = Trainer(dataset(data, spec), spec)
    assert t.steps_per_epoch == 2  # 4 samples, batch 2
    seen = []
    for _ in range(6):
        seen.append(t.train_step()["lr"])
        assert {g["lr"] for o in (t.opt_G, t.opt_D) for g in o.param_groups} == {seen[-1]}
    assert seen == pytest.approx([2e-4, 2e-4, 2e-4, 2e-4, 1e-4, 1e-4])
    assert t.opt_G.defaults["betas"] == (0.5, 0.999) and t.opt_D.defaults["betas"] == (0.5, 0.999)


def test_losses_fall_on_one_fixed_batch(tmp_path):
    root = write_pairs(tmp_path / "two", n=2)
    spec = tiny_spec(ngf=8, ndf=8, flip=False, niter=20)
    t = Trainer(dataset(root, spec), spec)  # batch 2 of 2 samples: the same batch every step
    logs = [t.train_step() for _ in range(6)]
    assert set(logs[0]) == {"G_GAN", "G_feat", "D_real", "D_fake", "loss_G", "loss_D", "lr"}
    for key in ("loss_G", "loss_D", "G_feat"):
        assert logs[-1][key] < 0.85 * logs[0][key], (key, [round(x[key], 3) for x in logs])
    # the totals are the official sums: G = GAN + FM (+ VGG), D = (real + fake) / 2
    last = logs[-1]
    assert last["loss_G"] == pytest.approx(last["G_GAN"] + last["G_feat"], rel=1e-5)
    assert last["loss_D"] == pytest.approx(0.5 * (last["D_real"] + last["D_fake"]), rel=1e-5)


def test_the_encoder_learns_through_the_generator_loss(data):
    spec = tiny_spec()
    t = Trainer(dataset(data, spec), spec)
    before = [p.detach().clone() for p in t.E.parameters()]
    t.train_step()
    assert all(not torch.equal(a, b) for a, b in zip(before, t.E.parameters()))
    assert {id(p) for p in t.E.parameters()} <= {id(p) for g in t.opt_G.param_groups
                                                 for p in g["params"]}


def test_niter_fix_global_freezes_exactly_the_global_generator(data):
    spec = tiny_spec(n_local_enhancers=1, n_blocks_local=1, niter_fix_global=1, niter=3)
    t = Trainer(dataset(data, spec), spec)
    glob = {id(p) for p in t.G.global_parameters()}
    named = lambda: {n: p.detach().clone() for n, p in t.G.named_parameters()}  # noqa: E731
    start = named()
    for _ in range(t.steps_per_epoch):  # epoch 0: fixed
        t.train_step()
    after = named()
    params = dict(t.G.named_parameters())
    frozen = sorted(n for n in start if torch.equal(start[n], after[n]))
    assert frozen == sorted(n for n, p in params.items() if id(p) in glob)
    assert frozen and all(n.startswith("global_body.") for n in frozen)
    assert len(frozen) < len(start)  # the enhancer and the head moved
    t.train_step()  # epoch 1: everything trains
    moved = named()
    assert all(not torch.equal(after[n], moved[n]) for n in frozen)


def test_bad_combinations_are_refused():
    with pytest.raises(ValueError, match="needs --n-local-enhancers"):
        make_spec(label_nc=3, niter_fix_global=2)
    with pytest.raises(ValueError, match="need instance maps"):
        make_spec(label_nc=3, features=True, instance=False)
    with pytest.raises(ValueError, match="longer than the run"):
        make_spec(label_nc=3, n_local_enhancers=1, niter=1, niter_decay=1, niter_fix_global=3)
    with pytest.raises(ValueError, match="at least one epoch"):
        make_spec(label_nc=3, niter=0, niter_decay=0)
    with pytest.raises(ValueError, match="unknown pix2pixHD training option 'bogus'"):
        make_spec(bogus=1)


# --- runs: outputs, resume -----------------------------------------------------------------

def run_kw(**kw):
    return dict(dict(snap_every=2, save_every=2, progress=False), **kw)


def test_run_writes_snapshots_grids_and_log(data, tmp_path):
    from ganprior.checkpoints import load_networks
    out = tmp_path / "run"
    notes = []
    t = train(data, out, dict(TINY, features=True, niter=2, niter_decay=1),
              say=notes.append, **run_kw(command="ganprior train pix2pixhd ..."))
    assert read_manifest(data)["classes"][2] == "car"
    assert t.spec["label_nc"] == 4  # from scenes.json
    assert sorted(p.name for p in out.glob("*.safetensors")) == [
        "pix2pixhd-epoch0002.safetensors", "pix2pixhd-epoch0003.safetensors"]
    assert latest_snapshot(out).name == "pix2pixhd-epoch0003.safetensors"
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "epoch0001.png", "epoch0002.png", "epoch0003.png"]
    grid = Image.open(out / "samples" / "epoch0003.png")
    assert grid.size == (3 * 16 + 4 * 2, 4 * 16 + 5 * 2)  # 4 rows of label | fake | real
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3] and log[-1]["step"] == 6
    assert log[-1]["lr"] == pytest.approx(2e-4) and log[-1]["img_per_s"] > 0
    assert {"G_GAN", "G_feat", "D_real", "D_fake"} <= set(log[-1])
    nets = load_networks(latest_snapshot(out), device="cpu")
    assert {"G", "D", "E"} <= set(nets)
    for key, net in (("G", t.G), ("D", t.D), ("E", t.E)):
        for a, b in zip(net.state_dict().values(), nets[key].state_dict().values()):
            assert torch.equal(a, b)
    info = nets["meta"]["provenance"]["pix2pixhd"]
    assert info == {"label_nc": 4, "instance": True, "feat_num": 3,
                    "classes": ["sky", "ground", "car", "tree"],
                    "palette": read_manifest(data)["palette"], "things": ["car", "tree"],
                    "size_multiple": 4, "resolution": [16, 16]}
    assert nets["meta"]["provenance"]["command"] == "ganprior train pix2pixhd ..."
    assert notes == []  # vgg=False: no notice


def final_state(out):
    st = torch.load(Path(out) / "state.pt", weights_only=True)
    return {f"{net}.{k}": v for net in ("G", "D", "E") for k, v in st[net].items()}


def test_resume_after_an_interruption_is_bit_identical(data, tmp_path):
    spec = dict(TINY, features=True, niter=2, niter_decay=1, n_local_enhancers=1,
                n_blocks_local=1, niter_fix_global=1)
    train(data, tmp_path / "whole", spec, **run_kw(save_every=4))
    # killed after 5 of 6 minibatches: the state on disk is the one of minibatch 4
    train(data, tmp_path / "cut", spec, **run_kw(save_every=4, _stop_after=5))
    assert torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["step"] == 4
    t = train(data, tmp_path / "cut", spec, **run_kw(save_every=4))
    assert t.step == 6
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    whole = (tmp_path / "whole" / "pix2pixhd-epoch0003.safetensors").read_bytes()
    assert (tmp_path / "cut" / "pix2pixhd-epoch0003.safetensors").read_bytes() == whole
    drop = ("sec", "img_per_s", "train_seconds")
    la, lb = ([{k: v for k, v in json.loads(x).items() if k not in drop}
               for x in (p / "log.jsonl").read_text().splitlines()]
              for p in (tmp_path / "whole", tmp_path / "cut"))
    assert la == lb and [r["epoch"] for r in lb] == [1, 2, 3]  # each epoch logged once


def test_resume_keeps_the_runs_settings(data, tmp_path):
    spec = dict(TINY, niter=1, niter_decay=0)
    train(data, tmp_path / "run", spec, **run_kw())
    with pytest.raises(ValueError, match=r"other settings \(ngf\)"):
        train(data, tmp_path / "run", dict(spec, ngf=8), **run_kw())
    t = train(data, tmp_path / "run", dict(spec, niter=2), **run_kw())  # longer: allowed
    assert t.step == 4 and t.spec["niter"] == 2


def test_too_small_samples_and_missing_label_nc_are_clear_errors(tmp_path):
    root = write_pairs(tmp_path / "d", classes=False)
    with pytest.raises(ValueError, match="pass --label-nc"):
        train(root, tmp_path / "r", dict(TINY), **run_kw())
    with pytest.raises(ValueError, match="16x16 are too small for these networks"):
        train(root, tmp_path / "r", dict(TINY, label_nc=4, n_downsample=4), **run_kw())


# --- several processes -----------------------------------------------------------------------

DDP_TRAIN = """
import sys
from ganprior.train.pix2pixhd import train
spec = dict(ngf=4, ndf=4, n_blocks=1, n_downsample=2, num_D=2, n_layers_D=2, nef=4,
            n_downsample_E=2, vgg=False, batch=2, features=True, niter=1, niter_decay=1)
train(sys.argv[1], sys.argv[2], spec, snap_every=2, save_every=100, progress=False)
"""


def test_torchrun_two_processes_agree_with_one(data, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_TRAIN)
    torchrun = Path(sys.executable).parent / "torchrun"
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29541",
                        str(script), str(data), str(tmp_path / "ddp")],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert [x["processes"] for x in log] == [2, 2] and all(x["ddp_consistent"] for x in log)
    # each rank took half of every minibatch of the same permutation: one process with the
    # whole minibatch trains the same function up to the order of float sums (weights whose
    # gradient is only rounding noise, the biases before instance norms, may differ: Adam
    # normalises that noise)
    spec = dict(TINY, features=True, niter=1, niter_decay=1)
    train(data, tmp_path / "one", spec, **run_kw(save_every=100))
    assert all(torch.isfinite(v).all() for v in final_state(tmp_path / "ddp").values())
    from ganprior.checkpoints import load_networks
    from ganprior.nets.pix2pixhd import make_input
    one, two = (load_networks(latest_snapshot(tmp_path / r), device="cpu") for r in ("one", "ddp"))
    ds = dataset(data, make_spec(**dict(spec, label_nc=4)))
    batch = {k: torch.stack([ds[i][k] for i in range(4)]) for k in ("label", "inst", "image")}
    outs = []
    for nets in (one, two):
        cond = make_input(batch["label"], batch["inst"], label_nc=4)
        fake = nets["G"](torch.cat([cond, nets["E"](batch["image"], batch["inst"])], 1))
        outs.append((fake, nets["D"](torch.cat([cond, batch["image"]], 1))[0][-1]))
    torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-4, rtol=0)  # measured: 1e-6
    torch.testing.assert_close(outs[1][1], outs[0][1], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_weights(data, tmp_path):
    import signal
    import time
    args = [sys.executable, "-m", "ganprior.cli", "train", "pix2pixhd", "--data", str(data),
            "--ngf", "4", "--ndf", "4", "--n-blocks", "1", "--n-downsample", "2", "--num-d",
            "2", "--n-layers-d", "2", "--features", "--nef", "4", "--n-downsample-e", "2",
            "--batch", "2", "--niter", "4", "--niter-decay", "4", "--save-every", "1",
            "--snap", "8", "--no-vgg", "--device", "cpu", "--out"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(args + [str(tmp_path / "whole")], check=True, env=env, timeout=600,
                   capture_output=True)
    proc = subprocess.Popen(args + [str(tmp_path / "cut")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = tmp_path / "cut" / "state.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and torch.load(state, weights_only=True)["step"] >= 5:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    assert torch.load(state, weights_only=True)["step"] < 16
    subprocess.run(args + [str(tmp_path / "cut")], check=True, env=env, timeout=600,
                   capture_output=True)
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
