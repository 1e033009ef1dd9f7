"""Image datasets for training: a folder or a .zip of images, optional class labels.

Labels come from `dataset.json` at the top of the folder/zip (NVIDIA's dataset_tool format:
{"labels": [["00000/img00000000.png", 3], ...]} or "labels": null) or from a JSON file given
explicitly. Images are centre-cropped to a square and resized to the training resolution.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import GanpriorError
from ..images import IMAGE_SUFFIXES as SUFFIXES
from ..images import check_image, load_image
from ..limits import check_regular_file, check_zip_members

MAX_MEMBER = 256 << 20   # one image (or dataset.json) in a zip, uncompressed
MAX_DATASET = 1 << 40    # all of a zip: FFHQ at 1024 px is ~90 GB


class DatasetError(GanpriorError):
    pass


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, path, resolution: int, labels=None, xflip: bool = False):
        self.path, self.resolution, self.xflip = Path(path), resolution, xflip
        self._zip = None
        if self.path.is_dir():
            self.names = sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*")
                                if p.suffix.lower() in SUFFIXES)
        elif self.path.suffix.lower() == ".zip" and self.path.exists():
            try:
                check_regular_file(self.path)
                with zipfile.ZipFile(self.path) as z:
                    # declared sizes, before any member is inflated (zip bombs)
                    check_zip_members(z, str(self.path), max_member=MAX_MEMBER,
                                      max_total=MAX_DATASET)
                    self.names = sorted(n for n in z.namelist() if Path(n).suffix.lower() in SUFFIXES)
            except (zipfile.BadZipFile, OSError, ValueError) as e:
                raise DatasetError(f"{self.path}: not a readable zip ({e})")
            except GanpriorError as e:
                raise DatasetError(str(e))
        else:
            raise DatasetError(f"{self.path}: not a folder or .zip of images")
        if not self.names:
            raise DatasetError(f"{self.path}: no images found")
        self.c_dim, self.labels = 0, None
        raw = self._read_labels(labels)
        if raw is not None:
            self._set_labels(raw)

    # --- files ---------------------------------------------------------------------------------
    def _open(self, name: str):
        if self.path.is_dir():  # a FIFO named x.png would block open() forever
            return open(check_regular_file(self.path / name, f"{self.path}:{name}"), "rb")
        if self._zip is None:  # opened lazily, once per worker process
            self._zip = zipfile.ZipFile(self.path)
        return io.BytesIO(self._zip.read(name))

    def _read_labels(self, labels):
        if labels is not None:
            try:
                if check_regular_file(labels).stat().st_size > MAX_MEMBER:
                    raise DatasetError(f"{labels}: a labels file above {MAX_MEMBER >> 20} MiB")
                text, where = Path(labels).read_text(), str(labels)
            except GanpriorError as e:
                raise DatasetError(str(e))
        elif self.path.is_dir() and (self.path / "dataset.json").exists():
            text, where = (self.path / "dataset.json").read_text(), str(self.path / "dataset.json")
        elif not self.path.is_dir():
            with zipfile.ZipFile(self.path) as z:
                if "dataset.json" not in z.namelist():
                    return None
                text, where = z.read("dataset.json").decode(), f"{self.path}:dataset.json"
        else:
            return None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise DatasetError(f"{where}: not valid JSON ({type(e).__name__}: {e})")
        raw = data.get("labels") if isinstance(data, dict) else None
        self._labels_source = where
        return raw

    def _set_labels(self, raw):
        if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 2 for p in raw):
            raise DatasetError(f"{self._labels_source}: 'labels' must be a list of "
                               "[file name, class] pairs or null")
        table = dict((str(k), v) for k, v in raw)
        missing = [n for n in self.names if n not in table]
        if missing:
            raise DatasetError(f"{self._labels_source}: no label for {missing[0]} "
                               f"({len(missing)} images unlabelled)")
        values = [table[n] for n in self.names]
        for n, v in zip(self.names, values):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise DatasetError(f"{self._labels_source}: label of {n} is {v!r}; labels must "
                                   "be integers >= 0")
        self.c_dim = max(values) + 1
        self.labels = np.asarray(values, dtype=np.int64)

    # --- items ---------------------------------------------------------------------------------
    def __len__(self):
        return len(self.names)

    def image(self, i) -> torch.Tensor:
        """Image i as stored (no x-flip), [C, H, W] in [-1, 1] at the dataset's resolution."""
        name = self.names[i]
        with self._open(name) as f:
            # quiet: training reads every image many times; `data info` reports sizes once
            return load_image(f, self.resolution, name=f"{self.path}:{name}", quiet=True)[0]

    def __getitem__(self, i):
        img = self.image(i)
        if self.xflip and torch.rand(()) < 0.5:
            img = img.flip(-1)
        c = torch.zeros(self.c_dim)
        if self.labels is not None:
            c[self.labels[i]] = 1
        return img, c

    def problems(self) -> list[tuple[str, str]]:
        """(name, reason) for every image that cannot be used, from a fast header check of
        all of them (no decoding): one bad file is named, not found mid-training."""
        bad = []
        for name in self.names:
            try:
                with self._open(name) as f:
                    check_image(f, name=name, resolution=self.resolution)
            except (GanpriorError, OSError) as e:
                bad.append((name, str(e).removeprefix(f"{name}: ")))
        return bad

    def first_image_size(self) -> tuple[int, int]:
        """(width, height) of the first image as stored (the datasets' native size)."""
        from PIL import Image
        with self._open(self.names[0]) as f:
            return Image.open(f).size

    def __getstate__(self):  # zip handles do not cross process boundaries
        state = dict(self.__dict__)
        state["_zip"] = None
        return state
