"""Segmentation scores (exact, on hand-made maps), the scene segmenter (learns, repeats from a
seed, saves and loads) and the edit-locality share used by benchmarks/pix2pixhd.py."""
import json
import math

import numpy as np
import pytest
import torch

from ganprior.data.scenes import scene
from ganprior.errors import CheckpointError
from ganprior.metrics.segmentation import (SceneSegmenter, SegmentationScore, balanced_weights,
                                           confusion_matrix, edit_locality, load_segmenter,
                                           save_segmenter, segment, segmentation_scores,
                                           train_segmenter)


# --- scores on hand-made maps ---------------------------------------------------------------
def test_confusion_matrix_counts_truth_rows_prediction_columns():
    truth = torch.tensor([[0, 0, 1], [1, 2, 2]])
    pred = torch.tensor([[0, 1, 1], [1, 2, 0]])
    cm = confusion_matrix(pred, truth, 4)
    want = torch.zeros(4, 4, dtype=torch.int64)
    for t, p in [(0, 0), (0, 1), (1, 1), (1, 1), (2, 2), (2, 0)]:
        want[t, p] += 1
    assert torch.equal(cm, want)


def test_scores_by_hand_with_absent_classes():
    # 4 classes. Class 3 appears nowhere (left out of the mean); class 2 is in the truth only
    # (never predicted: IoU 0, counted); class 1 is predicted but never true (IoU 0, counted).
    truth = torch.tensor([[0, 0, 0, 0],
                          [2, 2, 0, 0]])
    pred = torch.tensor([[0, 0, 0, 1],
                         [0, 0, 0, 0]])
    s = segmentation_scores(confusion_matrix(pred, truth, 4))
    # class 0: TP 5 (row 0: 3 of 4, row 1: 2), FP 2 (the two true 2s), FN 1 (the predicted 1)
    assert s["iou"][0] == 5 / 8
    assert s["iou"][1] == 0.0          # predicted once, true never: union 1
    assert s["iou"][2] == 0.0          # true twice, predicted never: union 2
    assert s["iou"][3] is None         # no pixel in truth or prediction
    assert s["present"] == [0, 1, 2]
    assert s["mean_iou"] == pytest.approx((5 / 8 + 0 + 0) / 3, abs=1e-15)
    assert s["pixel_accuracy"] == 5 / 8
    assert s["pixels"] == 8


def test_scores_accumulate_over_the_set_not_per_image():
    # image A: class 1 fully right (4 px); image B: one pixel of class 1 missed.
    # Per-image IoUs of class 1 would average (1 + 0) / 2; over the set it is 4 / 5.
    a_truth = torch.ones(2, 2, dtype=torch.long)
    b_truth = torch.tensor([[1, 0], [0, 0]])
    b_pred = torch.zeros(2, 2, dtype=torch.long)
    score = SegmentationScore(2).update(a_truth, a_truth).update(b_pred, b_truth)
    r = score.result()
    assert r["iou"][1] == 4 / 5
    assert r["iou"][0] == 3 / 4        # TP 3, FN 0, FP 1
    assert r["pixel_accuracy"] == 7 / 8
    assert r["mean_iou"] == pytest.approx((4 / 5 + 3 / 4) / 2, abs=1e-15)


def test_perfect_and_empty():
    y = torch.tensor([[0, 1], [2, 2]])
    s = segmentation_scores(confusion_matrix(y, y, 5))
    assert s["pixel_accuracy"] == 1.0 and s["mean_iou"] == 1.0 and s["present"] == [0, 1, 2]
    e = segmentation_scores(torch.zeros(3, 3, dtype=torch.long))
    assert math.isnan(e["pixel_accuracy"]) and math.isnan(e["mean_iou"]) and e["present"] == []


@pytest.mark.parametrize("pred, truth, match", [
    (torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long), "shape"),
    (torch.full((2, 2), 4), torch.zeros(2, 2, dtype=torch.long), "class 4 is outside 0..3"),
    (torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), -1), "class -1"),
    (torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long), "integers"),
])
def test_confusion_matrix_refuses_bad_maps(pred, truth, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(pred, truth, 4)


# --- edit locality --------------------------------------------------------------------------
def test_edit_locality_share_by_hand():
    before = torch.zeros(3, 4, 4, dtype=torch.float64)
    after = before.clone()
    after[0, 1, 1] = 0.5      # inside the mask
    after[1, 1, 1] = -0.25    # inside (channels add: 0.75 at (1, 1))
    after[2, 1, 2] = 1.0      # inside
    after[0, 3, 3] = 0.25     # outside, far from the mask
    after[1, 0, 3] = -0.5     # outside, next to the mask's corner (1, 2)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[1, 1:3] = True
    total = 0.5 + 0.25 + 1.0 + 0.25 + 0.5
    assert edit_locality(before, after, mask) == pytest.approx(1.75 / total, abs=1e-15)
    # grown by one pixel the mask reaches (0, 3) but not (3, 3)
    assert edit_locality(before, after, mask, dilate=1) == pytest.approx(2.25 / total,
                                                                         abs=1e-15)
    assert edit_locality(before[None], after[None], mask[None, None]) == pytest.approx(
        1.75 / total, abs=1e-15)
    assert math.isnan(edit_locality(before, before, mask))
    with pytest.raises(ValueError, match="differ in shape"):
        edit_locality(before, after[:, :3], mask)


# --- the segmenter --------------------------------------------------------------------------
def _scenes(seed, n, size=64):
    sc = [scene(seed, i, size) for i in range(n)]
    x = torch.from_numpy(np.stack([s.image for s in sc])).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(np.stack([s.label for s in sc])).long()
    return x, y


def test_segmenter_shapes_and_size_check():
    net = SceneSegmenter(3, 8, width=4, depth=2)
    assert net(torch.zeros(2, 3, 16, 8)).shape == (2, 8, 16, 8)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.zeros(1, 3, 18, 16))
    with pytest.raises(ValueError, match="depth"):
        SceneSegmenter(depth=9)


def test_segmenter_overfits_two_scenes(one_thread):
    x, y = _scenes(11, 2, size=32)
    chance = float(torch.bincount(y.flatten()).max()) / y.numel()  # the majority class: 0.28
    net, log = train_segmenter(x, y, 8, steps=40, batch=2, lr=1e-2, width=8, depth=2,
                               jitter=0.0, progress=False)
    acc = segmentation_scores(confusion_matrix(segment(net, x), y, 8))["pixel_accuracy"]
    assert acc > max(0.7, chance + 0.35), (acc, chance)  # 0.82 here
    assert log["loss"][-1] < log["loss"][0]


def test_training_repeats_from_its_seed_and_differs_with_another(one_thread):
    x, y = _scenes(12, 3, size=32)
    a, _ = train_segmenter(x, y, 8, steps=4, batch=2, width=4, depth=2, seed=5, progress=False)
    b, _ = train_segmenter(x, y, 8, steps=4, batch=2, width=4, depth=2, seed=5, progress=False)
    c, _ = train_segmenter(x, y, 8, steps=4, batch=2, width=4, depth=2, seed=6, progress=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_save_and_load_round_trip(tmp_path, one_thread):
    x, y = _scenes(13, 2, size=32)
    net, _ = train_segmenter(x, y, 8, steps=2, batch=2, width=4, depth=2, progress=False)
    weights, config = save_segmenter(tmp_path / "seg", net, {"classes": ["a"] * 8})
    assert weights.name == "seg.safetensors" and config.name == "seg.json"
    back, meta = load_segmenter(tmp_path / "seg.safetensors")
    assert meta == {"classes": ["a"] * 8}
    assert torch.equal(segment(back, x), segment(net, x))
    # running batch-norm statistics travel too (eval mode uses them)
    assert torch.equal(back.state_dict()["down.0.1.running_mean"],
                       net.state_dict()["down.0.1.running_mean"])


def test_load_refuses_foreign_or_broken_files(tmp_path):
    net = SceneSegmenter(3, 8, width=4, depth=2)
    save_segmenter(tmp_path / "seg", net)
    cfg = json.loads((tmp_path / "seg.json").read_text())
    with pytest.raises(CheckpointError, match="no such segmenter file"):
        load_segmenter(tmp_path / "missing")
    (tmp_path / "bad.json").write_text(json.dumps(dict(cfg, kwargs={"depth": 2, "width": 5})))
    (tmp_path / "bad.safetensors").write_bytes((tmp_path / "seg.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_segmenter(tmp_path / "bad")          # weights of another width
    (tmp_path / "bad.json").write_text(json.dumps(dict(cfg, kwargs={"colour": 1})))
    with pytest.raises(CheckpointError, match="unknown option 'colour'"):
        load_segmenter(tmp_path / "bad")
    (tmp_path / "bad.json").write_text(json.dumps(dict(cfg, kwargs={"depth": 40})))
    with pytest.raises(CheckpointError, match="depth"):
        load_segmenter(tmp_path / "bad")
    (tmp_path / "bad.json").write_text(json.dumps(dict(cfg, format="other")))
    with pytest.raises(CheckpointError, match="not a ganprior-segmenter config"):
        load_segmenter(tmp_path / "bad")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_segmenter(tmp_path / "bad")


def test_balanced_weights_by_hand():
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2])   # frequencies 6, 2, 1; class 3 absent
    w = balanced_weights(labels, 4)
    assert torch.allclose(w, torch.tensor([2 / 6, 2 / 2, 2 / 1, 1.0]))
