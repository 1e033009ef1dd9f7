"""pix2pixHD after training (synthesis/): instance features against a loop reference, k-means
per class sorted by size, the clusters file beside the model, cluster choice per class and per
instance (changing one instance's cluster changes only its own feature pixels), instance maps
made from labels, `ganprior encode-features` and `ganprior synth`."""
import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image
from test_train_pix2pixhd import TINY, write_pairs

from ganprior.errors import CheckpointError
from ganprior.synthesis import encode_features, load_clusters, load_pix2pixhd, synthesize_scene
from ganprior.synthesis.clusters import (clusters_path, cluster_features, file_sha256,
                                         instance_features)
from ganprior.synthesis.scene import feature_map, instances_from_labels
from ganprior.train.pix2pixhd import train


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_run(root, features=True):
    """A run folder of a tiny model trained for two minibatches on `root`'s data."""
    out = root.parent / f"run-{'feat' if features else 'plain'}"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(root, out, dict(TINY, features=features, niter=1, niter_decay=0),
              progress=False)
    finally:
        torch.set_num_threads(n)
    return out


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = write_pairs(tmp_path_factory.mktemp("synth") / "data", n=6)
    return {"data": root, "run": tiny_run(root), "plain": tiny_run(root, features=False)}


@pytest.fixture(scope="module")
def model(fx):
    m = load_pix2pixhd(fx["run"], "cpu")
    encode_features(m, fx["data"], n_clusters=3, progress=False)
    return m


def read(path):
    return np.asarray(Image.open(path)).astype(np.int64)


# --- features and clusters -----------------------------------------------------------------

def test_instance_features_equal_a_loop_reference():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 6, 5, generator=g)
    label = torch.randint(0, 3, (2, 1, 6, 5), generator=g)
    inst = label * 1000 + torch.randint(0, 2, (2, 1, 6, 5), generator=g)
    got, classes, areas = instance_features(feats, inst, label, label_nc=3)
    want = []
    for b in range(2):
        for i in inst[b].unique():
            mask = inst[b, 0] == i
            majority = torch.bincount(label[b, 0][mask], minlength=3).argmax()
            want.append((feats[b][:, mask].mean(1), int(majority), mask.sum().item() / 30))
    assert len(got) == len(want)
    for (f, c, a), g_f, g_c, g_a in zip(want, got, classes.tolist(), areas.tolist()):
        assert torch.allclose(f, g_f, atol=1e-6) and c == g_c and a == pytest.approx(g_a)


def test_kmeans_per_class_numbers_clusters_by_size():
    rng = np.random.default_rng(0)
    blobs = [np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])]
    pts = np.concatenate([b + 0.01 * rng.standard_normal((n, 3))
                          for b, n in zip(blobs, (2, 5, 3))])
    centres, counts = cluster_features({1: pts, 2: pts[:2]}, n_clusters=3, seed=0)
    assert counts[1].tolist() == [5, 3, 2]  # largest first
    for got, blob in zip(centres[1], (blobs[1], blobs[2], blobs[0])):
        assert np.allclose(got.numpy(), blob, atol=0.02)
    assert centres[2].shape == (2, 3) and counts[2].tolist() == [1, 1]  # K = min(3, 2)
    again, _ = cluster_features({1: pts}, n_clusters=3, seed=0)
    assert torch.equal(again[1], centres[1])


def test_encode_features_writes_the_clusters_beside_the_weights(fx, model):
    path = clusters_path(model.weights)
    assert path.name == "pix2pixhd-epoch0001.clusters.safetensors" and path.exists()
    table = load_clusters(path, model)
    meta = table.meta
    # 6 images: sky and ground halves, one car and one tree (1/16 of the image > 1/64) each
    assert meta["instances"] == {"sky": 6, "ground": 6, "car": 6, "tree": 6}
    assert meta["clusters"] == {"sky": 3, "ground": 3, "car": 3, "tree": 3}
    assert meta["model_sha256"] == file_sha256(model.weights) and meta["images"] == 6
    assert all(table.centres[c].shape == (3, 3) and int(table.counts[c].sum()) == 6
               for c in range(4))
    # the run folder's model now comes with its clusters
    assert load_pix2pixhd(fx["run"], "cpu").clusters.meta == meta


def test_only_instances_above_min_area_are_clustered(fx, tmp_path):
    m = load_pix2pixhd(fx["run"], "cpu", clusters=False)
    m.weights = tmp_path / "copy.safetensors"  # write beside a copy, not the shared model
    m.weights.write_bytes(fx["run"].joinpath("pix2pixhd-epoch0001.safetensors").read_bytes())
    _, table = encode_features(m, fx["data"], n_clusters=2, min_area=1 / 16, progress=False)
    assert table.meta["instances"] == {"sky": 6, "ground": 6}  # a car is exactly 1/16: out
    assert set(table.centres) == {0, 1}


def test_clusters_of_other_weights_are_refused(fx, model, tmp_path):
    import shutil
    for p in fx["run"].glob("pix2pixhd-epoch0001.*"):
        shutil.copy(p, tmp_path / p.name)
    weights = tmp_path / "pix2pixhd-epoch0001.safetensors"
    load_pix2pixhd(weights, "cpu")  # the copy matches
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckpointError, match="computed for other weights"):
        load_pix2pixhd(weights, "cpu")


# --- synthesis ----------------------------------------------------------------------------------

def test_one_instances_cluster_changes_only_its_own_features(fx, model):
    label = read(fx["data"] / "train_label" / "000.png")
    inst = read(fx["data"] / "train_inst" / "000.png")
    _, base = synthesize_scene(model, label, inst)
    assert {r["cluster"] for r in base["instances"].values()} == {0}  # default: cluster 0
    car = next(int(i) for i, r in base["instances"].items() if r["class"] == "car")
    img1, rec1 = synthesize_scene(model, label, inst, clusters={"car": 2})
    assert rec1["instances"][str(car)]["cluster"] == 2
    classes = {int(i): model.class_id(r["class"]) for i, r in base["instances"].items()}
    t_inst = torch.as_tensor(inst)[None, None]
    f0 = feature_map(model, t_inst, classes, {i: r["cluster"] for i, r in
                                              ((int(k), v) for k, v in base["instances"].items())})
    f1 = feature_map(model, t_inst, classes, {int(k): v["cluster"]
                                              for k, v in rec1["instances"].items()})
    changed = (f0 != f1).any(1)[0]
    assert torch.equal(changed, t_inst[0, 0] == car)
    assert torch.equal(f1[0, :, t_inst[0, 0] == car].T[0], model.clusters.centres[2][2])
    # by instance id, the same
    img2, _ = synthesize_scene(model, label, inst, instance_clusters={car: 2})
    assert torch.equal(img1, img2)
    assert img1.shape == (1, 3, 16, 16) and img1.abs().max() <= 1


def test_random_features_are_seeded_and_fixing_one_keeps_the_others(fx, model):
    label = read(fx["data"] / "train_label" / "001.png")
    inst = read(fx["data"] / "train_inst" / "001.png")
    draws = [synthesize_scene(model, label, inst, random_features=True, seed=s)[1]["instances"]
             for s in range(6)]
    assert len({json.dumps(d, sort_keys=True) for d in draws}) > 1
    again = synthesize_scene(model, label, inst, random_features=True, seed=3)[1]["instances"]
    assert again == draws[3]
    fixed = synthesize_scene(model, label, inst, clusters={"sky": 1}, random_features=True,
                             seed=3)[1]["instances"]
    assert fixed["0"]["cluster"] == 1
    assert {k: v for k, v in fixed.items() if k != "0"} == \
        {k: v for k, v in draws[3].items() if k != "0"}


def test_instances_from_labels_split_things_into_regions():
    label = torch.tensor([[0, 2, 0, 2],
                          [0, 2, 0, 2],
                          [1, 1, 3, 3]])[None, None]
    inst = instances_from_labels(label, things=[2, 3])
    assert inst[0, 0].tolist() == [[0, 2000, 0, 2001],
                                   [0, 2000, 0, 2001],
                                   [1, 1, 3000, 3000]]


def test_encoded_image_features_and_models_without_features(fx, model):
    from ganprior.images import load_image
    label = read(fx["data"] / "train_label" / "002.png")
    inst = read(fx["data"] / "train_inst" / "002.png")
    real = load_image(fx["data"] / "train_img" / "002.png")
    img, rec = synthesize_scene(model, label, inst, image=real)
    assert rec["features"] == "encoded from the image" and img.shape == (1, 3, 16, 16)
    plain = load_pix2pixhd(fx["plain"], "cpu")
    assert plain.feat_num == 0 and plain.E is None
    out, rec = synthesize_scene(plain, label, inst)
    assert rec["instances"] == {} and out.shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="trained without instance features"):
        synthesize_scene(plain, label, inst, clusters={"car": 0})


# --- the commands --------------------------------------------------------------------------------

def test_encode_features_and_synth_commands(fx, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(fx["run"], run)
    for p in run.glob("*.clusters.safetensors"):
        p.unlink()
    r = run_cli("encode-features", "--model", run, "--data", fx["data"], "--clusters", "2",
                "--min-area", "1/64", "--device", "cpu")
    assert "sky 2, ground 2, car 2, tree 2; from 6 images" in r.stdout
    out = tmp_path / "out"
    label = fx["data"] / "train_label" / "003.png"
    run_cli("synth", "--model", run, "--label", label, "--inst",
            fx["data"] / "train_inst" / "003.png", "--cluster", "car=1", "--out", out,
            "--device", "cpu")
    assert sorted(p.name for p in out.iterdir()) == ["003.png", "synth.json"]
    assert Image.open(out / "003.png").size == (16, 16)
    rec = json.loads((out / "synth.json").read_text())
    assert rec["clusters"] == {"car": 1} and len(rec["samples"]) == 1
    cars = [v for v in rec["samples"][0]["instances"].values() if v["class"] == "car"]
    assert cars and all(v["cluster"] == 1 for v in cars)
    many = tmp_path / "many"
    run_cli("synth", "--model", run, "--label", label, "--samples", "3", "--seed", "5",
            "--out", many, "--device", "cpu")
    assert sorted(p.name for p in many.iterdir()) == ["003_0.png", "003_1.png", "003_2.png",
                                                       "synth.json"]
    rec = json.loads((many / "synth.json").read_text())
    assert [s["seed"] for s in rec["samples"]] == [5, 6, 7]
    assert all(s["random_features"] and s["instances_from_labels"] for s in rec["samples"])
