"""Tiny SVG line charts for reports (no plotting dependency needed)."""
from __future__ import annotations

import html


def line_chart(title: str, xs: list[str], series: dict[str, list[float]], y_label: str,
               width: int = 420, height: int = 260) -> str:
    """One panel: categorical x axis, one polyline per series, value labels at the points."""
    left, right, top, bottom = 50, 15, 30, 40
    values = [v for vs in series.values() for v in vs]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.1
    lo, hi = lo - pad, hi + pad
    pw, ph = width - left - right, height - top - bottom
    x_at = (lambda i: left + pw * (i + 0.5) / len(xs))
    y_at = (lambda v: top + ph * (1 - (v - lo) / (hi - lo)))
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
             f'<text x="12" y="{top + ph / 2}" transform="rotate(-90 12 {top + ph / 2})" '
             f'text-anchor="middle">{html.escape(y_label)}</text>']
    for i, x in enumerate(xs):
        parts.append(f'<text x="{x_at(i)}" y="{top + ph + 16}" text-anchor="middle">{html.escape(str(x))}</text>')
    for k, (name, vs) in enumerate(series.items()):
        c = colours[k % len(colours)]
        pts = " ".join(f"{x_at(i):.1f},{y_at(v):.1f}" for i, v in enumerate(vs))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
        for i, v in enumerate(vs):
            parts.append(f'<circle cx="{x_at(i):.1f}" cy="{y_at(v):.1f}" r="3" fill="{c}"/>'
                         f'<text x="{x_at(i):.1f}" y="{y_at(v) - 6:.1f}" text-anchor="middle" '
                         f'fill="{c}">{v:.1f}</text>')
        parts.append(f'<text x="{left + 6}" y="{top + 14 + 13 * k}" fill="{c}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
