"""Slow, obvious PQ written from the rules in docs/evaluation.md: the test oracle of ``pq.py``.

One boolean mask per segment and one ``np.sum`` per (GT, prediction) pair; no compaction, no
vectorization. Use it only on small images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from panseg.evaluation.pq import VOID_ID, Category, PQStats


def reference_image_stats(
    gt_ids: np.ndarray,
    pred_ids: np.ndarray,
    gt_segments: Sequence[Mapping[str, Any]],
    pred_segments: Sequence[Mapping[str, Any]],
    categories: Sequence[Category],
) -> PQStats:
    """PQ statistics of one image pair, rule by rule.

    Args:
        gt_ids, pred_ids: (H, W) integer segment id maps; 0 is VOID.
        gt_segments: dicts with ``id``, ``category_id``, ``iscrowd`` and ``area`` (used as given).
        pred_segments: dicts with ``id`` and ``category_id``; every listed id must occur in
            ``pred_ids`` and every non-zero id of ``pred_ids`` must be listed.
        categories: the evaluated categories.
    """
    index = {c.id: k for k, c in enumerate(categories)}
    stats = PQStats.zeros(len(categories))
    # A later entry with the same id replaces an earlier one but keeps its place (a dict).
    gts: dict[int, Mapping[str, Any]] = {}
    for seg in gt_segments:
        gts[int(seg["id"])] = seg
    preds: dict[int, Mapping[str, Any]] = {}
    for seg in pred_segments:
        preds[int(seg["id"])] = seg

    pred_area = {pid: int(np.sum(pred_ids == pid)) for pid in preds}
    void_mask = gt_ids == VOID_ID

    def overlap(gid: int, pid: int) -> int:
        return int(np.sum((gt_ids == gid) & (pred_ids == pid)))

    matched_gt: set[int] = set()
    matched_pred: set[int] = set()
    for gid, g in gts.items():
        if g["iscrowd"] == 1:
            continue
        for pid, p in preds.items():
            if g["category_id"] != p["category_id"]:
                continue
            inter = overlap(gid, pid)
            if inter == 0:
                continue
            void = int(np.sum(void_mask & (pred_ids == pid)))
            union = pred_area[pid] + g["area"] - inter - void
            iou = np.float64(inter) / np.float64(union)
            if iou > 0.5 and g["category_id"] in index:
                k = index[g["category_id"]]
                stats.tp[k] += 1
                stats.iou[k] += iou
                matched_gt.add(gid)
                matched_pred.add(pid)

    crowd_of: dict[int, int] = {}
    for gid, g in gts.items():
        if gid in matched_gt:
            continue
        if g["iscrowd"] == 1:
            crowd_of[g["category_id"]] = gid
            continue
        if g["category_id"] in index:
            stats.fn[index[g["category_id"]]] += 1

    for pid, p in preds.items():
        if pid in matched_pred:
            continue
        ignored = int(np.sum(void_mask & (pred_ids == pid)))
        if p["category_id"] in crowd_of:
            ignored += overlap(crowd_of[p["category_id"]], pid)
        if ignored / pred_area[pid] > 0.5:
            continue
        stats.fp[index[p["category_id"]]] += 1
    return stats


def reference_average(
    stats: PQStats, categories: Sequence[Category], isthing: bool | None
) -> dict[str, Any]:
    """Mean PQ/SQ/RQ over the group's categories with TP + FP + FN > 0 (None where there are none)."""
    values = []
    for k, cat in enumerate(categories):
        if isthing is not None and cat.isthing != isthing:
            continue
        tp, fp, fn = int(stats.tp[k]), int(stats.fp[k]), int(stats.fn[k])
        if tp + fp + fn == 0:
            continue
        denom = tp + 0.5 * fp + 0.5 * fn
        values.append(
            (stats.iou[k] / denom, stats.iou[k] / tp if tp else 0.0, tp / denom)
        )
    if not values:
        return {"pq": None, "sq": None, "rq": None, "n": 0}
    arr = np.array(values, np.float64)
    pq, sq, rq = arr.mean(axis=0)
    return {"pq": float(pq), "sq": float(sq), "rq": float(rq), "n": len(values)}
