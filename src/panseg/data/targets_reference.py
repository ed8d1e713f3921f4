"""Slow, obvious Panoptic-DeepLab training targets, written from the spec: the test oracle.

This module restates the behaviour documented in ``docs/data.md`` one segment at a time, with
a full-image mask per segment, exactly the way the spec reads. It is deliberately slow; the
fast generator in :mod:`panseg.data.targets` must give identical arrays.

Segments come from the panoptic map itself (``panoptic = semantic * divisor + instance``):
every distinct value whose semantic class is not the ignore label is one segment, of category
``value // divisor``; a segment of a thing class with instance 0 is crowd. Pixels of the
ignore class are void and belong to no segment (detectron2 leaves them out of
``segments_info``).

Two variants:

* ``"detectron2"``: detectron2's ``PanopticDeepLabTargetGenerator``
  (``projects/Panoptic-DeepLab/panoptic_deeplab/target_generator.py``).
* ``"deeplab2"``: DeepLab2's ``PanopticSampleGenerator`` (``deeplab2/data/sample_generator.py``
  with ``data/dataset_utils.get_semantic_and_panoptic_label``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def gaussian_kernel(sigma: int) -> np.ndarray:
    """The unnormalized Gaussian stamped at each center.

    Returns a float64 array of shape ``(6*sigma + 3, 6*sigma + 3)``, value range (0, 1], peak 1
    at ``[3*sigma + 1, 3*sigma + 1]``.
    """
    size = 6 * sigma + 3
    mid = 3 * sigma + 1
    out = np.empty((size, size), dtype=np.float64)
    for i in range(size):
        for j in range(size):
            out[i, j] = np.exp(-((i - mid) ** 2 + (j - mid) ** 2) / (2.0 * sigma * sigma))
    return out


def _stamp(center: np.ndarray, kernel: np.ndarray, cy: int, cx: int, sigma: int) -> None:
    """Max-merge ``kernel`` into ``center`` with its peak on pixel (cy, cx), clipped to the map."""
    height, width = center.shape
    size = kernel.shape[0]
    top, left = cy - 3 * sigma - 1, cx - 3 * sigma - 1
    for i in range(size):
        y = top + i
        if not 0 <= y < height:
            continue
        for j in range(size):
            x = left + j
            if 0 <= x < width:
                center[y, x] = max(center[y, x], np.float32(kernel[i, j]))


def reference_targets(
    panoptic: np.ndarray,
    *,
    ignore_label: int,
    label_divisor: int,
    thing_ids: Iterable[int],
    sigma: int = 10,
    variant: str = "detectron2",
    ignore_stuff_in_offset: bool = True,
    small_instance_area: int = 4096,
    small_instance_weight: float = 3,
    ignore_crowd_in_semantic: bool = False,
) -> dict[str, np.ndarray]:
    """Targets for one panoptic label, one segment at a time (slow).

    Args:
        panoptic: int H×W, values ``semantic * label_divisor + instance`` (non-negative).
        ignore_label, label_divisor, thing_ids: the dataset's facts.
        sigma: Gaussian standard deviation in pixels (an integer).
        variant: ``"detectron2"`` or ``"deeplab2"``; the remaining keywords apply to
            ``"detectron2"`` only, except the small-instance pair, which both use.

    Returns:
        ``semantic`` int64 H×W, ``semantic_weights`` float32 H×W, ``center`` float32 1×H×W in
        [0, 1], ``center_weights`` float32 H×W in {0, 1}, ``offset`` float32 2×H×W (dy, dx),
        ``offset_weights`` float32 H×W in {0, 1}.
    """
    panoptic = np.asarray(panoptic).astype(np.int64)
    things = {int(t) for t in thing_ids}
    height, width = panoptic.shape
    kernel = gaussian_kernel(sigma)
    center = np.zeros((height, width), dtype=np.float32)
    offset = np.zeros((2, height, width), dtype=np.float32)
    ys, xs = np.mgrid[0:height, 0:width]

    if variant == "detectron2":
        semantic = np.full((height, width), ignore_label, dtype=np.int64)
        semantic_weights = np.ones((height, width), dtype=np.float32)
        center_weights = np.zeros((height, width), dtype=np.float32)
        offset_weights = np.zeros((height, width), dtype=np.float32)
        for value in np.unique(panoptic):
            category = int(value) // label_divisor
            if category == ignore_label:
                continue  # void: not a segment
            is_thing = category in things
            crowd = is_thing and int(value) % label_divisor == 0
            mask = panoptic == value
            if not (ignore_crowd_in_semantic and crowd):
                semantic[mask] = category
            if not crowd:
                center_weights[mask] = 1
                if not ignore_stuff_in_offset or is_thing:
                    offset_weights[mask] = 1
            if not is_thing:
                continue
            # Things, crowd included, get a center, offsets and the small-instance weight.
            area = int(mask.sum())
            if area < small_instance_area:
                # detectron2 keeps these weights in a uint8 array.
                semantic_weights[mask] = float(np.uint8(small_instance_weight))
            cy_f = float(ys[mask].mean())
            cx_f = float(xs[mask].mean())
            _stamp(center, kernel, int(round(cy_f)), int(round(cx_f)), sigma)
            offset[0][mask] = np.float32(cy_f - ys[mask])
            offset[1][mask] = np.float32(cx_f - xs[mask])
    elif variant == "deeplab2":
        semantic = panoptic // label_divisor
        thing_mask = np.isin(semantic, list(things))
        crowd_region = thing_mask & (panoptic % label_divisor == 0)
        # DeepLab2 turns crowd into void in the panoptic label (semantic keeps the class).
        instance_label = np.where(crowd_region, ignore_label * label_divisor, panoptic)
        semantic_weights = np.ones((height, width), dtype=np.float32)
        center_weights = (~crowd_region & (semantic != ignore_label)).astype(np.float32)
        offset_weights = (~crowd_region & thing_mask).astype(np.float32)
        for value in np.unique(instance_label):
            if int(value) // label_divisor == ignore_label or int(value) % label_divisor == 0:
                continue  # void, crowd and stuff: no center, no offset
            mask = instance_label == value
            if int(mask.sum()) < small_instance_area:
                semantic_weights[mask] = np.float32(small_instance_weight)
            cy = int(round(float(ys[mask].mean())))
            cx = int(round(float(xs[mask].mean())))
            _stamp(center, kernel, cy, cx, sigma)
            offset[0][mask] = cy - ys[mask]
            offset[1][mask] = cx - xs[mask]
    else:
        raise ValueError(f"unknown target variant {variant!r} (detectron2 or deeplab2)")

    return {
        "semantic": semantic.astype(np.int64),
        "semantic_weights": semantic_weights,
        "center": center[None],
        "center_weights": center_weights,
        "offset": offset,
        "offset_weights": offset_weights,
    }
