"""Build a training set from a teacher generator: NVIDIA dataset_tool's zip layout."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from PIL import Image

from ..files import atomic_write
from ..generate import generate
from ..progress import progress_bar


def sample_dataset(G, n: int, out, batch: int = 64, truncation_psi: float = 1.0,
                   seed_start: int = 0, progress: bool = True) -> Path:
    """Writes `out` (.zip): 00000/img00000000.png ... (seed = seed_start + index) and a
    dataset.json with "labels": null. The zip appears only when complete (atomic)."""
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise ValueError(f"{out}: the dataset must be a .zip file")

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            bar = progress_bar(total=n, desc="sample", unit="img", enabled=progress)
            for start in range(0, n, batch):
                seeds = list(range(seed_start + start, seed_start + min(start + batch, n)))
                images, _, _ = generate(G, seeds, truncation_psi=truncation_psi, batch=batch)
                for k, img in enumerate(images):
                    i = start + k
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="PNG")
                    z.writestr(f"{i // 1000:05d}/img{i:08d}.png", buf.getvalue())
                bar.update(len(seeds))
            bar.close()
            z.writestr("dataset.json", json.dumps({"labels": None, "source": {
                "generator": getattr(G, "arch", "?"), "seeds": [seed_start, seed_start + n - 1],
                "truncation_psi": truncation_psi}}, allow_nan=False))

    return atomic_write(out, write)
