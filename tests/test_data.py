"""Training datasets: folders, zips, labels, bad input; sampling from a teacher."""
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ganprior.data import ImageDataset
from ganprior.data.images import DatasetError
from ganprior.errors import ImageError


def make_folder(root, n=4, labels=None):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    for i in range(n):
        Image.fromarray(rng.randint(0, 255, (40, 50, 3), dtype=np.uint8)).save(root / f"im{i}.png")
    if labels is not None:
        (root / "dataset.json").write_text(json.dumps({"labels": labels}))
    return root


def test_folder_with_labels(tmp_path):
    ds = ImageDataset(make_folder(tmp_path / "d", labels=[[f"im{i}.png", i % 3] for i in range(4)]), 32)
    img, c = ds[2]
    assert len(ds) == 4 and ds.c_dim == 3 and img.shape == (3, 32, 32) and c.tolist() == [0, 0, 1]


def test_zip_matches_folder(tmp_path):
    folder = make_folder(tmp_path / "d")
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        for p in sorted(folder.iterdir()):
            z.write(p, p.name)
    a, b = ImageDataset(folder, 16), ImageDataset(tmp_path / "d.zip", 16)
    torch.testing.assert_close(a[1][0], b[1][0])
    assert b.c_dim == 0 and b[0][1].shape == (0,)


@pytest.mark.parametrize("labels,msg", [
    ([["im0.png", 0], ["im1.png", -1], ["im2.png", 0], ["im3.png", 0]], "label of im1.png is -1"),
    ([["im0.png", 0], ["im1.png", "cat"], ["im2.png", 0], ["im3.png", 0]], "label of im1.png is 'cat'"),
    ([["im0.png", 0]], "no label for im1.png"),
])
def test_bad_labels_name_file_and_value(tmp_path, labels, msg):
    with pytest.raises(DatasetError, match=msg):
        ImageDataset(make_folder(tmp_path / "d", labels=labels), 16)


def test_bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        ImageDataset(tmp_path / "empty", 16)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        ImageDataset(tmp_path / "bad.zip", 16)
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.writestr("x.png", b"corrupt")
    with pytest.raises(ImageError, match=r"c.zip:x.png: cannot read image"):
        ImageDataset(tmp_path / "c.zip", 16)[0]


def test_sample_from_teacher_matches_generate(tmp_path):
    from ganprior.checkpoints import load_generator
    from ganprior.data.sample import sample_dataset
    from ganprior.generate import generate
    G = load_generator("dcgan-digiface64")
    path = sample_dataset(G, 5, tmp_path / "faces.zip", batch=2, seed_start=10, progress=False)
    with zipfile.ZipFile(path) as z:
        assert json.loads(z.read("dataset.json"))["labels"] is None
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
        assert names[0] == "00000/img00000000.png" and len(names) == 5
        img = np.asarray(Image.open(z.open("00000/img00000003.png")))
    np.testing.assert_array_equal(img, generate(G, [13])[0][0])
    with pytest.raises(ValueError, match="must be a .zip"):
        sample_dataset(G, 1, tmp_path / "x.tar")
