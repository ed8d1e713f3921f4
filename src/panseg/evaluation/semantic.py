"""Semantic segmentation mIoU from a confusion matrix, as cityscapesScripts computes it.

Reference: cityscapesScripts ``evaluation/evalPixelLevelSemanticLabeling.py`` (PyPI 2.3.0),
``evaluatePair`` (confusion matrix of GT × prediction), ``getIouScoreForLabel`` and
``getScoreAverage``, applied to train ids:

* GT pixels whose label is ignored (the dataset's ignore label) are not counted at all;
* IoU of class c = TP / (TP + FP + FN) with TP = pixels of c predicted c, FN = pixels of c
  predicted anything else (another class, the ignore label or an id that is no class),
  FP = pixels of another evaluated class predicted c;
* a class with TP + FP + FN = 0 has IoU NaN and is left out of the mean (reported as ``None``).

For COCO (void 0) the same rules apply with 0 as the ignore label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def class_lookup(class_ids: Sequence[int], size: int, missing: int) -> np.ndarray:
    """Table mapping a semantic value in ``[0, size)`` to its class index or ``missing``."""
    table = np.full(size, missing, np.int64)
    table[np.asarray(class_ids, np.int64)] = np.arange(len(class_ids))
    return table


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, class_ids: Sequence[int], ignore_label: int
) -> np.ndarray:
    """GT class × predicted class pixel counts.

    Args:
        pred, gt: integer semantic maps of one shape (any non-negative values).
        class_ids: the K evaluated semantic ids (train ids), distinct, non-negative.
        ignore_label: GT pixels with this value are skipped.
    Returns:
        (K, K + 1) int64; column K counts predictions that are no evaluated class. GT values
        that are neither a class nor ``ignore_label`` raise ``ValueError``.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    k = len(class_ids)
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    if gt.size == 0:
        return np.zeros((k, k + 1), np.int64)
    if gt.min() < 0 or pred.min() < 0:
        raise ValueError("semantic labels must be non-negative")
    size = max(int(gt.max()), int(pred.max()), max(class_ids, default=0), ignore_label) + 1
    gt_lut = class_lookup(class_ids, size, -1)
    gt_idx = gt_lut[gt]
    bad = (gt_idx < 0) & (gt != ignore_label)
    if bad.any():
        values = np.unique(gt[bad])[:10].tolist()
        raise ValueError(f"ground-truth semantic label(s) {values} are neither a class nor ignored")
    keep = gt_idx >= 0
    pred_idx = class_lookup(class_ids, size, k)[pred[keep]]
    counts = np.bincount(gt_idx[keep] * (k + 1) + pred_idx, minlength=k * (k + 1))
    return counts.reshape(k, k + 1)


def confusion_from_intersections(
    inter: np.ndarray, row_class: np.ndarray, col_class: np.ndarray, num_classes: int
) -> np.ndarray:
    """Semantic confusion of one image from its segment intersection matrix.

    Every segment has one class, so pixel counts per (GT class, predicted class) are sums of the
    (GT segment, predicted segment) intersections; no pass over the pixels.

    Args:
        inter: (R, C) int pixel counts between GT rows and prediction columns.
        row_class: (R,) class index of each row, or -1 for rows not counted (VOID, ignored).
        col_class: (C,) class index of each column, or ``num_classes`` for "no class".
        num_classes: K.
    Returns:
        (K, K + 1) int64 confusion matrix, as :func:`confusion_matrix`.
    """
    conf = np.zeros((num_classes, num_classes + 1), np.int64)
    keep = np.flatnonzero(np.asarray(row_class) >= 0)
    if len(keep) and inter.shape[1]:
        np.add.at(
            conf,
            (np.asarray(row_class)[keep][:, None], np.asarray(col_class)[None, :]),
            inter[keep],
        )
    return conf


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Per-class IoU (float64, NaN where TP + FP + FN = 0) of a (K, K + 1) confusion matrix."""
    k = confusion.shape[0]
    tp = np.diag(confusion[:, :k]).astype(np.float64)
    fn = confusion.sum(axis=1) - tp
    fp = confusion[:, :k].sum(axis=0) - tp
    denom = tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def summarize_semantic(confusion: np.ndarray, class_ids: Sequence[int]) -> dict[str, Any]:
    """``{"miou", "per_class": {id: iou or None}, "pixel_accuracy"}``; None where undefined."""
    iou = iou_from_confusion(confusion)
    valid = ~np.isnan(iou)
    total = int(confusion.sum())
    k = confusion.shape[0]
    return {
        "miou": float(iou[valid].mean()) if valid.any() else None,
        "per_class": {
            int(c): (float(v) if not np.isnan(v) else None) for c, v in zip(class_ids, iou, strict=True)
        },
        "pixel_accuracy": float(np.trace(confusion[:, :k]) / total) if total else None,
    }


def reference_iou(
    preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], class_ids: Sequence[int], ignore_label: int
) -> list[float]:
    """Slow oracle: per-class IoU counted with one boolean mask per class and image."""
    out = []
    for c in class_ids:
        tp = fp = fn = 0
        for pred, gt in zip(preds, gts, strict=True):
            valid = gt != ignore_label
            tp += int(np.sum((gt == c) & (pred == c)))
            fn += int(np.sum((gt == c) & (pred != c)))
            fp += int(np.sum((gt != c) & valid & (pred == c)))
        out.append(tp / (tp + fp + fn) if tp + fp + fn else float("nan"))
    return out
