"""Training curves drawn with Pillow (no plotting dependency): one panel per series, each a
polyline over the steps with min/max labels on the y axis and the step range on the x axis."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

Series = tuple[str, Sequence[tuple[float, float]], tuple[int, int, int]]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def plot_curves(
    series: Sequence[Series], *, width: int = 640, panel_height: int = 220
) -> np.ndarray:
    """Draw ``(title, [(step, value), ...], rgb)`` series in stacked panels.

    Returns: uint8 (len(series) * panel_height) × width × 3, white background.
    """
    height = max(1, len(series)) * panel_height
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, 15, 25, 30
    for k, (title, points, color) in enumerate(series):
        y0 = k * panel_height
        x_lo, x_hi = left, width - right
        y_lo, y_hi = y0 + top, y0 + panel_height - bottom
        draw.rectangle([x_lo, y_lo, x_hi, y_hi], outline=(160, 160, 160))
        draw.text((x_lo, y0 + 6), title, fill=(0, 0, 0))
        pts = [(float(s), float(v)) for s, v in points if v is not None and np.isfinite(v)]
        if not pts:
            draw.text((x_lo + 10, y_lo + 10), "no data", fill=(120, 120, 120))
            continue
        xs = np.array([p[0] for p in pts])
        ys = np.array([p[1] for p in pts])
        xmin, xmax = float(xs.min()), float(xs.max())
        ymin, ymax = float(ys.min()), float(ys.max())
        if xmax == xmin:
            xmax = xmin + 1
        if ymax == ymin:
            ymax, ymin = ymax + 0.5, ymin - 0.5
        px = x_lo + (xs - xmin) / (xmax - xmin) * (x_hi - x_lo)
        py = y_hi - (ys - ymin) / (ymax - ymin) * (y_hi - y_lo)
        coords = list(zip(px.tolist(), py.tolist(), strict=True))
        if len(coords) > 1:
            draw.line(coords, fill=color, width=2)
        for x, y in coords if len(coords) <= 30 else coords[-1:]:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
        draw.text((4, y_lo - 4), _fmt(ymax), fill=(0, 0, 0))
        draw.text((4, y_hi - 8), _fmt(ymin), fill=(0, 0, 0))
        draw.text((x_lo, y_hi + 6), f"step {int(xmin)}", fill=(0, 0, 0))
        label = f"step {int(xmax)}"
        draw.text((x_hi - 7 * len(label), y_hi + 6), label, fill=(0, 0, 0))
    return np.asarray(img)


def training_curves(metrics: Sequence[dict]) -> np.ndarray:
    """Loss and PQ (and mIoU) curves from a run's ``metrics.jsonl`` records."""
    loss = [(m["step"], m["loss"]) for m in metrics if "loss" in m]
    evals = [(m["step"], m["eval"]) for m in metrics if "eval" in m]
    return plot_curves([
        ("training loss", loss, (200, 60, 40)),
        ("PQ (val, %)", [(s, e.get("pq")) for s, e in evals], (40, 90, 200)),
        ("mIoU (val, %)", [(s, e.get("miou")) for s, e in evals], (40, 150, 80)),
    ])
