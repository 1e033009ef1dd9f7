"""Procedural scenes (data/scenes.py, `ganprior data scenes`) and the paired dataset layout
with its validation (data/paired.py): determinism, classes and instance ids, each bad dataset
case named with its file and value, sizes rounded to the network's multiple."""
import hashlib
import json
import warnings

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from ganprior.data.images import DatasetError
from ganprior.data.paired import (Layout, PairedDataset, find_samples, pairing_key,
                                  plan_size, validate)
from ganprior.data.scenes import (CLASS, CLASSES, INSTANCE_BASE, LABEL_NC, THINGS, scene,
                                  write_scenes)


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


@pytest.fixture(scope="module")
def scenes64():
    return [scene(7, i, 64) for i in range(24)]


# --- the generator --------------------------------------------------------------------------

def test_same_seed_same_files_and_scenes_do_not_depend_on_n(tmp_path):
    write_scenes(tmp_path / "a", 3, size=64, seed=5, progress=False)
    write_scenes(tmp_path / "b", 3, size=64, seed=5, progress=False)
    write_scenes(tmp_path / "c", 2, size=64, seed=5, progress=False)
    write_scenes(tmp_path / "d", 2, size=64, seed=6, progress=False)
    a, b, c, d = (digest(tmp_path / k) for k in "abcd")
    assert len(a) == 9 and a == b
    assert c == {k: v for k, v in a.items() if not k.endswith("000002.png")}
    assert not set(d.values()) & set(c.values())
    assert {f.name for f in (tmp_path / "a").iterdir()} == {
        "train_label", "train_inst", "train_img", "scenes.json"}


def test_file_formats_and_manifest(tmp_path):
    entry = write_scenes(tmp_path, 2, size=64, seed=1, phase="test", progress=False)
    with Image.open(tmp_path / "test_label" / "000001.png") as im:
        assert (im.mode, im.size) == ("L", (64, 64))
    with Image.open(tmp_path / "test_inst" / "000001.png") as im:
        assert im.mode.startswith("I;16")
        inst = np.asarray(im).astype(np.int64)
    assert np.array_equal(inst, scene(1, 1, 64).inst)
    with Image.open(tmp_path / "test_img" / "000001.png") as im:
        assert im.mode == "RGB" and np.array_equal(np.asarray(im), scene(1, 1, 64).image)
    manifest = json.loads((tmp_path / "scenes.json").read_text())
    assert manifest["label_nc"] == LABEL_NC == 8 and manifest["classes"] == list(CLASSES)
    assert manifest["phases"]["test"] == entry and entry["n"] == 2
    write_scenes(tmp_path, 1, size=64, seed=2, phase="train", progress=False)
    assert set(json.loads((tmp_path / "scenes.json").read_text())["phases"]) == {"train", "test"}


def test_every_class_appears_with_several_instances(scenes64):
    seen = set().union(*(np.unique(s.label).tolist() for s in scenes64))
    assert seen == set(range(LABEL_NC))
    for cls in THINGS:
        counts = [len({i for i in np.unique(s.inst) if i // INSTANCE_BASE == CLASS[cls]})
                  for s in scenes64]
        assert max(counts) >= 2, (cls, counts)
    assert np.mean([len({i for i in np.unique(s.inst) if i // INSTANCE_BASE == CLASS["building"]})
                    for s in scenes64]) >= 3


def test_instance_ids_are_consistent_with_labels(scenes64):
    things = np.array([c in THINGS for c in CLASSES])
    for s in scenes64:
        thing = things[s.label]
        assert np.array_equal(s.inst[thing] // INSTANCE_BASE, s.label[thing])
        assert (s.inst[thing] % INSTANCE_BASE < 100).all()
        assert np.array_equal(s.inst[~thing], s.label[~thing])


def test_instances_differ_in_appearance(scenes64):
    """Per-instance colours are drawn per instance: car means spread over the colour cube."""
    car_means = [s.image[s.inst == i].mean(0) for s in scenes64 for i in np.unique(s.inst)
                 if i // INSTANCE_BASE == CLASS["car"] and (s.inst == i).sum() > 30]
    assert len(car_means) >= 20
    assert np.stack(car_means).std(0).mean() > 30          # 8-bit units
    # and the scene's lighting moves the sky
    skies = [s.image[s.label == CLASS["sky"]].mean() for s in scenes64]
    assert np.std(skies) > 10


def test_a_scene_looks_layered(scenes64):
    """Sky on top, ground at the bottom: a sanity check of the layout, per scene."""
    ground = {CLASS[c] for c in ("grass", "road", "sidewalk", "car")}
    for s in scenes64:
        assert not set(s.label[0].tolist()) & ground
        assert CLASS["sky"] not in s.label[-1] and CLASS["building"] not in s.label[-1]


# --- the CLI --------------------------------------------------------------------------------

def test_cli_writes_scenes(tmp_path):
    r = run_cli("data", "scenes", "--n", 2, "--size", 64, "--out", tmp_path / "s", "--seed", 3)
    assert "wrote 2 scenes of 64x64" in r.output
    assert digest(tmp_path / "s").keys() == {f"train_{k}/00000{i}.png" for k in
                                             ("label", "inst", "img") for i in (0, 1)}


@pytest.mark.parametrize("args, message", [
    (["--n", 0], "--n must be an integer from 1 to 1,000,000, not 0"),
    (["--size", 100], "--size must be a multiple of 32 from 32 to 1024, not 100"),
    (["--size", 2048], "--size must be a multiple of 32 from 32 to 1024, not 2048"),
    (["--phase", "../x"], "--phase must be a short name"),
    (["--seed", -1], "--seed must be an integer from 0"),
])
def test_cli_refuses_bad_options(tmp_path, args, message):
    r = run_cli("data", "scenes", "--out", tmp_path / "s", *args, ok=False)
    assert r.exit_code == 1 and r.output.startswith(f"error: {message}")
    assert len(r.output.strip().splitlines()) == 1  # one line, no traceback
    assert not (tmp_path / "s").exists()


def test_cli_refuses_a_file_or_a_used_folder_as_out(tmp_path):
    (tmp_path / "f").write_text("x")
    r = run_cli("data", "scenes", "--n", 1, "--size", 64, "--out", tmp_path / "f", ok=False)
    assert r.exit_code == 1 and "is an existing file, not a folder" in r.output
    run_cli("data", "scenes", "--n", 1, "--size", 64, "--out", tmp_path / "s")
    r = run_cli("data", "scenes", "--n", 1, "--size", 64, "--out", tmp_path / "s", ok=False)
    assert r.exit_code == 1 and "train_label already exists and is not an empty folder" in r.output
    run_cli("data", "scenes", "--n", 1, "--size", 64, "--out", tmp_path / "s", "--phase", "test")


# --- the paired layout and its validation ---------------------------------------------------

def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def dataset(tmp_path):
    """Three 64 px scenes in the standard layout."""
    write_scenes(tmp_path, 3, size=64, seed=0, progress=False)
    return tmp_path


def test_valid_scenes_pass(dataset):
    samples, notes = validate(Layout(dataset, LABEL_NC), progress=False)
    assert [s.key for s in samples] == ["000000", "000001", "000002"] and notes == []
    assert samples[1].inst == dataset / "train_inst" / "000001.png"


@pytest.mark.parametrize("damage, message", [
    (lambda d: save(d / "train_label" / "000001.png", np.full((64, 64), 9, np.uint8)),
     r"train_label/000001.png: label value 9 at x=0, y=0 is outside 0..7 \(label_nc 8; "
     r"4096 such pixels\)"),
    (lambda d: save(d / "train_inst" / "000002.png", np.zeros((32, 64), np.uint16)),
     r"train_inst/000002.png: 64x32, but its label map 000002.png is 64x64"),
    (lambda d: save(d / "train_img" / "000000.png", np.zeros((64, 48, 3), np.uint8)),
     r"train_img/000000.png: 48x64, but its label map 000000.png is 64x64"),
    (lambda d: (d / "train_img" / "000001.png").unlink(),
     r"train_label/000001.png: no partner in .*train_img \(looked for '000001' with an image "
     r"suffix\)$"),
    (lambda d: [(d / "train_img" / f"00000{i}.png").unlink() for i in (0, 2)],
     r"train_label/000000.png: no partner in .*train_img .*; 1 more like it$"),
    (lambda d: (d / "train_inst" / "000000.png").unlink(),
     r"train_label/000000.png: no partner in .*train_inst"),
    (lambda d: save(d / "train_img" / "000009.png", np.zeros((64, 64, 3), np.uint8)),
     r"train_img/000009.png: no label map '000009' in .*train_label"),
    (lambda d: save(d / "train_label" / "000000.png", np.zeros((64, 64, 3), np.uint8)),
     r"train_label/000000.png: an image of mode RGB; a label map holds one id per pixel"),
    (lambda d: save(d / "train_inst" / "000001.png", np.zeros((64, 64, 3), np.uint8)),
     r"train_inst/000001.png: an image of mode RGB; an instance map holds one id per pixel"),
    (lambda d: (d / "train_label" / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken"),
     r"train_label/000002.png: cannot read image"),
    (lambda d: [p.unlink() for p in (d / "train_inst").iterdir()] and
     (d / "train_inst").rmdir(),
     r"train_inst: no such folder \(instance maps for phase 'train'; pass --no-instance"),
])
def test_each_bad_dataset_is_one_error_naming_the_file(dataset, damage, message):
    damage(dataset)
    with pytest.raises(DatasetError, match=message) as e:
        validate(Layout(dataset, LABEL_NC), progress=False)
    assert "\n" not in str(e.value)


def test_a_fifo_among_the_files_is_refused_without_blocking(dataset):
    import os
    (dataset / "train_img" / "000002.png").unlink()
    os.mkfifo(dataset / "train_img" / "000002.png")
    with pytest.raises(DatasetError, match=r"train_img/000002.png: is a FIFO, not a regular"):
        validate(Layout(dataset, LABEL_NC), progress=False)


def test_the_label_range_follows_label_nc(dataset):
    validate(Layout(dataset, 8), progress=False)
    with pytest.raises(DatasetError, match=r"label value 7 at x=\d+, y=\d+ is outside 0..6"):
        validate(Layout(dataset, 7), progress=False)


def test_jpeg_label_maps_are_a_notice(dataset):
    label = np.asarray(Image.open(dataset / "train_label" / "000000.png"))
    (dataset / "train_label" / "000000.png").unlink()
    Image.fromarray(np.full_like(label, 3)).save(dataset / "train_label" / "000000.jpg")
    samples, notes = validate(Layout(dataset, LABEL_NC), progress=False)
    assert len(samples) == 3 and len(notes) == 1
    assert "000000.jpg: a JPEG label map; lossy compression changes class ids" in notes[0]
    with pytest.warns(UserWarning, match="a JPEG label map"):
        PairedDataset(Layout(dataset, LABEL_NC))
    # an out-of-range value in a JPEG map: the error says JPEG may be the cause
    Image.fromarray(np.full_like(label, 9)).save(dataset / "train_label" / "000000.jpg")
    with pytest.raises(DatasetError, match=r"000000.jpg: label value 9 at x=0, y=0 .* a JPEG "
                                           r"label map: lossy compression changes class ids"):
        validate(Layout(dataset, LABEL_NC), progress=False)


def test_no_instance_and_label_nc_0_layouts(tmp_path):
    rng = np.random.default_rng(0)
    for k in ("a", "b"):
        save(tmp_path / "train_A" / f"{k}.png", rng.integers(0, 255, (32, 48, 3), np.uint8))
        save(tmp_path / "train_B" / f"{k}.jpg", rng.integers(0, 255, (32, 48, 3), np.uint8))
    ds = PairedDataset(Layout(tmp_path, 0, instance=False))  # no train_inst looked for
    item = ds[1]
    assert set(item) == {"key", "label", "image"} and item["key"] == "b"
    assert item["label"].shape == (3, 32, 48) and item["label"].dtype == torch.float32
    with pytest.raises(DatasetError, match="train_inst: no such folder"):
        validate(Layout(tmp_path, 0), progress=False)
    labels_only = Layout(tmp_path, 0, instance=False, images=False)
    assert [s.image for s in find_samples(labels_only)] == [None, None]


def test_cityscapes_names_pair():
    assert pairing_key("aachen_000000_000019_gtFine_labelIds.png") == "aachen_000000_000019"
    assert pairing_key("aachen_000000_000019_leftImg8bit.png") == "aachen_000000_000019"
    assert pairing_key("aachen_000000_000019_gtFine_instanceIds.png") == "aachen_000000_000019"
    assert pairing_key("_labelIds.png") == "_labelIds" and pairing_key("x.y.png") == "x.y"


def test_bad_layout_options():
    with pytest.raises(ValueError, match="label_nc must be an integer from 0"):
        Layout("x", -1)
    with pytest.raises(ValueError, match="the phase must be a plain name"):
        Layout("x", 3, phase="../train")


# --- sizes and items ------------------------------------------------------------------------

@pytest.mark.parametrize("args, want", [
    ((100, 50, "scale_width", 64, None, 16), ((64, 32), None, (64, 32))),
    ((100, 60, "none", None, 50, 16), ((100, 60), (48, 48), (48, 48))),
    ((30, 30, "none", None, 64, 16), ((30, 30), (30, 30), (32, 32))),
    ((70, 41, "none", None, None, 16), ((70, 41), None, (64, 48))),
    ((5, 5, "none", None, None, 32), ((5, 5), None, (32, 32))),
    ((300, 200, "resize", 128, 100, 32), ((128, 128), (96, 96), (96, 96))),
])
def test_sizes_round_to_the_network_multiple(args, want):
    plan = plan_size(*args)
    assert (plan.resize_to, plan.crop, plan.final) == want


@pytest.mark.parametrize("args, message", [
    ((64, 64, "zoom", 64), "resize must be one of none, resize, scale_width"),
    ((64, 64, "resize", None), "needs a positive load size"),
    ((64, 64, "none", None, 0), "crop size must be a positive integer"),
    ((64, 64, "none", None, None, 24), "multiple must be a power of two"),
])
def test_bad_size_options(args, message):
    with pytest.raises(ValueError, match=message):
        plan_size(*args)


def test_items_crop_and_flip_label_instance_and_image_together(dataset):
    plain = PairedDataset(Layout(dataset, LABEL_NC), check=False)[2]
    assert plain["label"].dtype == torch.int64 and plain["label"].shape == (1, 64, 64)
    assert torch.equal(plain["inst"][0], torch.from_numpy(scene(0, 2, 64).inst.astype(np.int64)))
    assert plain["image"].shape == (3, 64, 64) and plain["image"].abs().max() <= 1
    ds = PairedDataset(Layout(dataset, LABEL_NC), crop_size=40, multiple=16, flip=True, seed=3)
    seen = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        item = ds[2]
        assert item["label"].shape == item["inst"].shape == (1, 32, 32)
        assert item["image"].shape == (3, 32, 32)
        # find where the crop came from (and whether it was flipped) from the instance map
        found = [(x, y, f) for f in (False, True) for y in range(33) for x in range(33)
                 if torch.equal((plain["inst"][0].flip(-1) if f else plain["inst"][0])
                                [y:y + 32, x:x + 32], item["inst"][0])]
        assert found, "the crop is not a window of the instance map"
        x, y, f = found[0]
        src = plain["label"].flip(-1) if f else plain["label"]
        img = plain["image"].flip(-1) if f else plain["image"]
        assert torch.equal(item["label"], src[:, y:y + 32, x:x + 32])
        assert torch.equal(item["image"], img[:, y:y + 32, x:x + 32])
        seen.add(found[0])
    assert len(seen) > 1                                   # epochs draw new crops
    ds.set_epoch(0)
    again = PairedDataset(Layout(dataset, LABEL_NC), crop_size=40, multiple=16, flip=True,
                          seed=3, check=False)
    assert torch.equal(ds[2]["image"], again[2]["image"])  # (seed, epoch, index) decide


def test_resizing_keeps_ids_exact(dataset):
    ds = PairedDataset(Layout(dataset, LABEL_NC), resize="scale_width", load_size=40,
                       multiple=16, check=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        item = ds[0]
    assert item["label"].shape == (1, 48, 48)  # 64 -> 40 -> rounded to 48
    assert set(item["label"].unique().tolist()) <= set(range(LABEL_NC))
    inst_ids = set(np.unique(scene(0, 0, 64).inst).tolist())
    assert set(item["inst"].unique().tolist()) <= inst_ids
