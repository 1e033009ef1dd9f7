"""Hostile inputs of `ganprior synth`, `ganprior encode-features` and `ganprior train pix2pixhd`:
each gives exactly one `error:` line, a non-zero exit, no traceback, unchanged inputs and
nothing written (test_hostile.py's harness, run in-process)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from test_hostile import Case, check_refused_in_process
from test_synth import tiny_run
from test_train_pix2pixhd import write_pairs

from ganprior.synthesis import encode_features, load_pix2pixhd


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile_synth")
    data = write_pairs(base / "data", n=4)
    run, plain = tiny_run(data), tiny_run(data, features=False)
    clustered = base / "clustered"
    shutil.copytree(run, clustered)
    encode_features(load_pix2pixhd(clustered, "cpu"), data, n_clusters=2, progress=False)
    root = base / "files"
    root.mkdir()
    lab = np.asarray(Image.open(data / "train_label" / "000.png"))
    inst = np.asarray(Image.open(data / "train_inst" / "000.png"))
    Image.fromarray(lab).save(root / "label.png")
    Image.fromarray(inst).save(root / "inst.png")
    bad = lab.copy()
    bad[3, 5] = 7
    Image.fromarray(bad).save(root / "unknown_class.png")
    Image.fromarray(np.zeros((18, 18), np.uint8)).save(root / "odd_size.png")
    Image.fromarray(np.zeros((32, 32), np.uint16)).save(root / "inst32.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "rgb.png")
    (root / "corrupt.clusters.safetensors").write_bytes(b"garbage")
    broken = base / "broken"
    shutil.copytree(clustered, broken)
    for p in broken.glob("*.clusters.safetensors"):
        p.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    badlabels = base / "badlabels"
    shutil.copytree(data, badlabels)
    Image.fromarray(bad).save(badlabels / "train_label" / "001.png")
    from conftest import small_stylegan2

    from ganprior.checkpoints import save_native
    save_native(root / "stylegan2", small_stylegan2(res=16))
    return dict(root=base, files=root, data=data, run=run, plain=plain, clustered=clustered,
                broken=broken, badlabels=badlabels)


S = ["synth", "--device", "cpu", "--out", "{out}"]
GOOD = [*S, "--model", "{clustered}", "--label", "{files}/label.png"]
ENC = ["encode-features", "--device", "cpu", "--data", "{data}"]
TP = ["train", "pix2pixhd", "--ngf", "4", "--ndf", "4", "--n-blocks", "1", "--n-downsample",
      "2", "--num-d", "1", "--n-layers-d", "1", "--niter", "1", "--niter-decay", "0",
      "--no-vgg", "--device", "cpu", "--out", "{out}"]

CASES = [
    Case("label-unknown-class", [*S, "--model", "{clustered}", "--label",
                                 "{files}/unknown_class.png"],
         r"unknown_class.png: label value 7 at x=5, y=3 is outside 0..3"),
    Case("label-wrong-size", [*S, "--model", "{clustered}", "--label", "{files}/odd_size.png"],
         r"odd_size.png: the label map is 18x18: this model needs sides that are multiples "
         r"of 4; it was trained at 16x16"),
    Case("inst-wrong-size", [*GOOD, "--inst", "{files}/inst32.png"],
         r"the instance map is 32x32, the label map 16x16"),
    Case("label-missing", [*S, "--model", "{clustered}", "--label", "{files}/nosuch.png"],
         r"nosuch.png: no such file \(label map\)"),
    Case("inst-missing", [*GOOD, "--inst", "{files}/nosuch.png"],
         r"nosuch.png: no such file \(instance map\)"),
    Case("label-colour-image", [*S, "--model", "{clustered}", "--label", "{files}/rgb.png"],
         r"rgb.png: .*RGB.*; a label map holds one id per pixel"),
    Case("cluster-unknown-class", [*GOOD, "--cluster", "bus=1"],
         r"unknown class 'bus' \(classes: sky, ground, car, tree\)"),
    Case("cluster-class-id-too-big", [*GOOD, "--cluster", "9=0"], r"class 9 is outside 0..3"),
    Case("cluster-index-out-of-range", [*GOOD, "--cluster", "car=5"],
         r"class car: cluster 5 is out of range 0..1"),
    Case("cluster-malformed", [*GOOD, "--cluster", "car"], r"--cluster 'car': expected NAME=K"),
    Case("cluster-negative", [*GOOD, "--cluster", "car=-1"], r"expected NAME=K"),
    Case("instance-not-in-map", [*GOOD, "--instance-cluster", "9999=0"],
         r"instance 9999 is not in the instance map"),
    Case("instance-cluster-not-an-id", [*GOOD, "--instance-cluster", "car=0"],
         r"--instance-cluster takes ID=K with ID an instance id"),
    Case("samples-zero", [*GOOD, "--samples", "0"], r"--samples must be an integer from 1"),
    Case("samples-huge", [*GOOD, "--samples", "100000"], r"--samples must be an integer"),
    Case("no-clusters-yet", [*S, "--model", "{run}", "--label", "{files}/label.png",
                             "--cluster", "car=0"],
         r"has no feature clusters yet: run `ganprior encode-features"),
    Case("no-features-cluster", [*S, "--model", "{plain}", "--label", "{files}/label.png",
                                 "--cluster", "car=0"], r"trained without instance features"),
    Case("no-features-samples", [*S, "--model", "{plain}", "--label", "{files}/label.png",
                                 "--samples", "2"], r"the same for every sample"),
    Case("clusters-corrupt", [*S, "--model", "{broken}", "--label", "{files}/label.png"],
         r"unreadable clusters file"),
    Case("model-not-pix2pixhd", [*S, "--model", "{files}/stylegan2.safetensors", "--label",
                                 "{files}/label.png"], r"not a pix2pixHD model"),
    Case("model-unknown", [*S, "--model", "no-such-model", "--label", "{files}/label.png"],
         r"no-such-model: no such file \(and not a zoo model: .*pix2pixhd-scenes128"),
    Case("model-run-without-snapshot", [*S, "--model", "{files}", "--label",
                                        "{files}/label.png"], r"expected one .safetensors"),
    Case("out-is-a-file", [*GOOD[:4], "{files}/label.png", *GOOD[5:]], r"is an existing file"),
    Case("encode-no-features", [*ENC, "--model", "{plain}"],
         r"trained without instance features"),
    Case("encode-clusters-zero", [*ENC, "--model", "{run}", "--clusters", "0"],
         r"--clusters must be an integer from 1 to 1000"),
    Case("encode-min-area-text", [*ENC, "--model", "{run}", "--min-area", "a/b"],
         r"--min-area 'a/b': expected a fraction"),
    Case("encode-min-area-one", [*ENC, "--model", "{run}", "--min-area", "1"],
         r"--min-area must be below 1"),
    Case("encode-min-area-zero-div", [*ENC, "--model", "{run}", "--min-area", "1/0"],
         r"expected a fraction"),
    Case("encode-data-missing", ["encode-features", "--device", "cpu", "--model", "{run}",
                                 "--data", "{root}/nodata"], r"nodata/train_label: no such"),
    Case("train-bad-label", [*TP, "--data", "{badlabels}", "--label-nc", "4"],
         r"001.png: label value 7 at x=5, y=3 is outside 0..3"),
    Case("train-label-nc-too-small", [*TP, "--data", "{data}", "--label-nc", "2"],
         r"label value 2 at .* is outside 0..1"),
    Case("train-fix-global-without-enhancer", [*TP, "--data", "{data}", "--niter-fix-global",
                                               "1"], r"needs --n-local-enhancers"),
    Case("train-features-no-instance", [*TP, "--data", "{data}", "--features",
                                        "--no-instance"], r"need instance maps"),
    Case("train-batch-too-big", [*TP, "--data", "{data}", "--batch", "5"],
         r"4 training samples are fewer than one batch of 5"),
    Case("train-too-small", [*TP[:9], "4", *TP[10:], "--data", "{data}"],
         r"16x16 are too small for these networks"),
    Case("train-data-missing", [*TP, "--data", "{root}/nodata"], r"--data .*nodata: no such"),
    Case("train-lr-nan", [*TP, "--data", "{data}", "--lr", "nan"], r"--lr must be a finite"),
    Case("train-bad-resize", [*TP, "--data", "{data}", "--resize", "huge"],
         r"resize must be one of none, resize, scale_width"),
    Case("train-init-global-not-global", [*TP, "--data", "{data}", "--n-local-enhancers", "1",
                                          "--n-downsample", "1", "--init-global",
                                          "{files}/stylegan2.safetensors"],
         r"--init-global takes a global-generator pix2pixHD model"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_synth(case, fx, tmp_path, one_thread):
    check_refused_in_process(case, fx, tmp_path / "out")
