"""Figures for reports: line charts (matplotlib, Agg backend: no display needed) and image
grids with row and column labels."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

MAX_VALUE_LABELS = 12  # points annotated with their value; more would overlap


def _numbers(xs) -> list[float] | None:
    """xs as floats when every one is a number (a numeric axis with real ticks), else None."""
    try:
        return [float(x) for x in xs]
    except (TypeError, ValueError):
        return None


def _figure(title: str, xs: list, series: dict[str, list[float]], y_label: str,
            x_label: str, width: float, height: float):
    import matplotlib
    matplotlib.use("Agg", force=False)  # never needs a display (a no-op once a backend is set)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    numeric = _numbers(xs)
    pos = numeric if numeric is not None else list(range(len(xs)))
    for name, values in series.items():
        ax.plot(pos, values, marker="o", markersize=4, linewidth=1.5, label=name)
        if len(values) <= MAX_VALUE_LABELS:
            for x, v in zip(pos, values):
                if v is not None and math.isfinite(v):
                    ax.annotate(f"{v:.3g}", (x, v), textcoords="offset points", xytext=(0, 6),
                                ha="center", fontsize=8)
    if numeric is None:  # categories: one tick each, slanted when the names are long
        ax.set_xticks(pos, [str(x) for x in xs],
                      rotation=30 if max((len(str(x)) for x in xs), default=0) > 6 else 0,
                      ha="right" if max((len(str(x)) for x in xs), default=0) > 6 else "center")
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(y_label)
    if x_label:
        ax.set_xlabel(x_label)
    ax.margins(x=0.08, y=0.15)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:  # beside the axes, never over the data
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def line_chart(title: str, xs: list, series: dict[str, list[float]], y_label: str,
               x_label: str = "", width: float = 5.6, height: float = 3.4,
               fmt: str = "svg") -> str | bytes:
    """One panel, one line per series over `xs` (numbers give a numeric axis with its own
    ticks; anything else one tick per category). NaN values leave gaps. Returns SVG text
    (`fmt="svg"`, written without a date or random ids, so the same data gives the same
    file) or PNG bytes (`fmt="png"`)."""
    import matplotlib
    fig = _figure(title, xs, series, y_label, x_label, width, height)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "ganprior", "svg.fonttype": "none"}):
        meta = {"Date": None} if fmt == "svg" else {}
        fig.savefig(buf, format=fmt, metadata=meta)
    return buf.getvalue().decode() if fmt == "svg" else buf.getvalue()


def save_line_chart(path, *args, **kwargs) -> Path:
    """`line_chart` written to `path` (atomically), as SVG or PNG by its suffix."""
    from .files import atomic_write
    path = Path(path)
    fmt = "png" if path.suffix.lower() == ".png" else "svg"
    data = line_chart(*args, fmt=fmt, **kwargs)
    raw = data.encode() if isinstance(data, str) else data
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(raw))


def _fit(draw, text: str, font, width: int) -> str:
    """`text`, shortened with an ellipsis until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def label_height() -> int:
    """Height in pixels of the column-label margin `labelled_grid` adds on top."""
    from PIL import Image, ImageDraw, ImageFont
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    return max(probe.textbbox((0, 0), "Ag", font=ImageFont.load_default())[3], 8) + 4


def labelled_grid(images: np.ndarray, cols: int, row_labels: list[str] | None = None,
                  col_labels: list[str] | None = None, pad: int = 2, fill: int = 255,
                  max_label_px: int = 160) -> np.ndarray:
    """`images.grid` with a margin on the left for `row_labels` (one per row) and on top for
    `col_labels` (one per column), drawn in PIL's default font; labels too long for their
    cell are shortened with an ellipsis. images: [N, H, W, C] uint8 -> [H', W', C] uint8."""
    from PIL import Image, ImageDraw, ImageFont

    from .images import grid
    n, h, w, c = images.shape
    rows = math.ceil(n / cols)
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for {rows} rows")
    if col_labels is not None and len(col_labels) != cols:
        raise ValueError(f"{len(col_labels)} column labels for {cols} columns")
    body = grid(images, cols=cols, pad=pad, fill=fill)
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    line = label_height()
    left = 0 if not row_labels else min(
        max_label_px, 6 + max(int(probe.textlength(t, font=font)) for t in row_labels))
    top = line if col_labels else 0
    mode = "L" if c == 1 else "RGB"
    canvas = Image.new(mode, (body.shape[1] + left, body.shape[0] + top),
                       fill if c == 1 else (fill,) * 3)
    canvas.paste(Image.fromarray(body[..., 0] if c == 1 else body), (left, top))
    draw, ink = ImageDraw.Draw(canvas), (0 if c == 1 else (0, 0, 0))
    for j, text in enumerate(col_labels or []):
        x0 = left + pad + j * (w + pad)
        draw.text((x0 + w / 2, top / 2), _fit(draw, str(text), font, w), fill=ink,
                  font=font, anchor="mm")
    for i, text in enumerate(row_labels or []):
        y0 = top + pad + i * (h + pad)
        draw.text((left - 3, y0 + h / 2), _fit(draw, str(text), font, left - 6), fill=ink,
                  font=font, anchor="rm")
    out = np.asarray(canvas)
    return out[..., None] if c == 1 else out
