"""Pictures of panoptic maps: colored overlays with instance borders, side-by-side panels.

Colors come from the dataset's classes (:meth:`DatasetInfo.palette`); instances of one class
are told apart by a small, deterministic brightness jitter and by white borders.
"""

from __future__ import annotations

import numpy as np

from panseg.datasets.info import DatasetInfo


def colorize_panoptic(panoptic: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Color a panoptic map.

    Args:
        panoptic: ``int (H, W)``, values ``semantic * info.label_divisor + instance``.
        info: the label space (class colors, divisor, ignore label).

    Returns:
        ``uint8 (H, W, 3)``: the class color, jittered per instance; void is black.
    """
    panoptic = np.asarray(panoptic, dtype=np.int64)
    values, inverse = np.unique(panoptic, return_inverse=True)
    palette = np.array(info.palette(max(256, int(values.max(initial=0)) // info.label_divisor + 1)))
    semantic = values // info.label_divisor
    instance = values % info.label_divisor
    colors = palette[semantic].astype(np.int64)
    # Deterministic jitter so neighbouring instances of one class differ.
    jitter = ((instance * 37) % 61 - 30) * (instance > 0)
    colors = np.clip(colors + jitter[:, None], 0, 255)
    colors[semantic == info.ignore_label] = 0
    return colors[inverse.reshape(panoptic.shape)].astype(np.uint8)


def segment_borders(panoptic: np.ndarray) -> np.ndarray:
    """``bool (H, W)``: pixels whose right or lower neighbour has another panoptic value."""
    panoptic = np.asarray(panoptic)
    border = np.zeros(panoptic.shape, dtype=bool)
    border[:, :-1] |= panoptic[:, :-1] != panoptic[:, 1:]
    border[:-1, :] |= panoptic[:-1, :] != panoptic[1:, :]
    return border


def overlay(
    image: np.ndarray, panoptic: np.ndarray, info: DatasetInfo, alpha: float = 0.5
) -> np.ndarray:
    """Blend ``image`` (``uint8 (H, W, 3)``) with the colored panoptic map, white borders.

    Void pixels keep the image unchanged.
    """
    if image.shape[:2] != panoptic.shape:
        raise ValueError(
            f"image size {image.shape[:2]} differs from panoptic size {panoptic.shape}"
        )
    colors = colorize_panoptic(panoptic, info).astype(np.float32)
    out = image.astype(np.float32)
    labelled = (np.asarray(panoptic) // info.label_divisor) != info.ignore_label
    out[labelled] = (1 - alpha) * out[labelled] + alpha * colors[labelled]
    out[segment_borders(panoptic)] = 255
    return np.clip(out, 0, 255).astype(np.uint8)


def side_by_side(*panels: np.ndarray, gap: int = 4) -> np.ndarray:
    """Concatenate ``uint8 (H, W, 3)`` panels of equal height horizontally, white gaps."""
    height = panels[0].shape[0]
    if any(p.shape[0] != height for p in panels):
        raise ValueError("panels must have the same height")
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for k, panel in enumerate(panels):
        if k:
            parts.append(spacer)
        parts.append(panel)
    return np.concatenate(parts, axis=1)
