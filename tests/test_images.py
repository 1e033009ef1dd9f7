"""Image files in and out: every kind of input is converted or refused with a clear error."""
import numpy as np
import pytest
import torch
from PIL import Image

from ganprior.errors import ImageError
from ganprior.images import MAX_PIXELS, grid, load_image, save_image, to_uint8


def test_quantisation_matches_nvidia_formula():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.999, 1.0, 2.0]).reshape(1, 1, 1, -1)
    # (x * 127.5 + 128).clamp(0, 255) truncated: -1 -> 0.5 -> 0, 0 -> 128, 1 -> 255.5 -> 255
    assert to_uint8(x).ravel().tolist() == [0, 0, 64, 128, 255, 255, 255]


@pytest.mark.parametrize("mode,shape", [("L", (40, 30)), ("RGBA", (40, 30, 4)), ("RGB", (40, 30, 3)),
                                        ("I;16", (40, 30))])
def test_modes_are_converted_to_rgb(tmp_path, mode, shape):
    rng = np.random.RandomState(0)
    if mode == "I;16":
        arr = rng.randint(0, 65535, size=shape).astype(np.uint16)
    else:
        arr = rng.randint(0, 255, size=shape).astype(np.uint8)
    Image.fromarray(arr, mode=mode if mode != "I;16" else None).save(tmp_path / "x.png")
    x = load_image(tmp_path / "x.png", resolution=16)
    assert x.shape == (1, 3, 16, 16) and x.min() >= -1 and x.max() <= 1 and x.std() > 0.1


def test_round_trip_and_centre_crop(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, 10:30] = 255  # the centre square is white, the sides black
    save_image(arr, tmp_path / "a.png")
    x = load_image(tmp_path / "a.png", resolution=20)
    assert torch.allclose(x, torch.ones_like(x))


def test_unreadable_and_truncated(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageError, match="cannot read image"):
        load_image(tmp_path / "bad.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError):
        load_image(tmp_path / "cut.png")
    with pytest.raises(ImageError):
        load_image(tmp_path / "missing.png")


def test_huge_image_is_refused_before_decoding(tmp_path, monkeypatch):
    import ganprior.images as images
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="larger than"):
        images.load_image(tmp_path / "big.png")
    assert MAX_PIXELS >= 16_000_000


def test_grid_layout():
    imgs = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(5)])
    g = grid(imgs, cols=3, pad=1)
    assert g.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    assert g[1, 1, 0] == 0 and g[1, 6, 0] == 1 and g[6, 6, 0] == 4 and g[6, 11, 0] == 255


def test_outputs_get_normal_permissions(tmp_path):
    import os
    path = save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.png")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
