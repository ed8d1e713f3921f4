"""Panoptic quality (PQ, SQ, RQ) exactly as panopticapi computes it, one vectorized pass per image.

Reference behaviour: cocodataset/panopticapi ``panopticapi/evaluation.py`` (commit 7bb4655),
functions ``pq_compute_single_core`` and ``PQStat.pq_average``; cityscapesScripts
``evaluation/evalPanopticSemanticLabeling.py`` has the same core. Every rule is listed, with its
source line, in ``docs/evaluation.md``. In short, per image pair:

* segments are the ids listed in the JSON; ground-truth areas come from the caller (panopticapi:
  the GT JSON ``area``), prediction areas are pixel counts;
* a (GT, prediction) pair that overlaps, whose GT is not crowd and whose categories are equal is
  a true positive iff ``I / (|P| + |G| - I - |P ∩ VOID|) > 0.5`` (VOID = GT id 0); every such pair
  counts (panopticapi does not enforce one match per segment; IoU > 0.5 makes it unique unless a
  wrong JSON area says otherwise);
* every unmatched, non-crowd GT segment is a false negative;
* an unmatched prediction is a false positive unless more than half of it lies on VOID or on the
  crowd segment of its category, where only the last crowd segment listed per category counts;
* statistics are summed over images, then averaged over categories with TP + FP + FN > 0.

The fast path run-length encodes the pixel pairs (GT id, prediction id) in three vectorized
comparisons, maps the few thousand run values to segment rows and columns, and counts every
(GT segment, prediction segment) intersection with one weighted ``np.bincount``; everything
after that works on the small intersection matrix. ``pq_reference.py`` is the slow oracle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

VOID_ID = 0
"""Segment id of VOID pixels in panopticapi's PNGs (``VOID = 0`` in ``evaluation.py``)."""


@dataclass(frozen=True)
class Category:
    """One evaluated category: its dataset id, name and whether it is a thing."""

    id: int
    name: str
    isthing: bool


@dataclass
class PQStats:
    """Per-category sums over images; index ``k`` is the k-th evaluated category.

    ``iou`` is the float64 sum of IoUs of true positives; ``tp``, ``fp``, ``fn`` are int64 counts.
    """

    iou: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def zeros(cls, num_categories: int) -> PQStats:
        return cls(
            iou=np.zeros(num_categories, np.float64),
            tp=np.zeros(num_categories, np.int64),
            fp=np.zeros(num_categories, np.int64),
            fn=np.zeros(num_categories, np.int64),
        )

    def __iadd__(self, other: PQStats) -> PQStats:
        if other.iou.shape != self.iou.shape:
            raise ValueError(
                f"cannot add PQ statistics over {other.iou.shape[0]} categories to statistics "
                f"over {self.iou.shape[0]} categories"
            )
        self.iou += other.iou
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        return self

    def to_dict(self) -> dict[str, list]:
        return {
            "iou": self.iou.tolist(),
            "tp": self.tp.tolist(),
            "fp": self.fp.tolist(),
            "fn": self.fn.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[Any]]) -> PQStats:
        return cls(
            iou=np.asarray(data["iou"], np.float64),
            tp=np.asarray(data["tp"], np.int64),
            fp=np.asarray(data["fp"], np.int64),
            fn=np.asarray(data["fn"], np.int64),
        )


def joint_runs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encoding of the pixel pairs ``(a, b)`` in C order.

    Segment maps are mostly long runs of one (GT id, prediction id) pair along a row, so three
    vectorized comparisons shrink an image to a few thousand runs, on which everything else is
    cheap. The counts stay exact.

    Args:
        a, b: integer arrays of one shape (any dtype, any values).
    Returns:
        ``(a_values, b_values, lengths)``: 1-D arrays, one entry per maximal run of equal pairs;
        lengths are int64 and sum to ``a.size``.
    """
    a = np.ascontiguousarray(a).ravel()
    b = np.ascontiguousarray(b).ravel()
    n = a.size
    if n == 0:
        return a[:0], b[:0], np.zeros(0, np.int64)
    change = np.empty(n, bool)
    change[0] = True
    np.not_equal(a[1:], a[:-1], out=change[1:])
    change[1:] |= b[1:] != b[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(starts, append=n)
    return a[starts], b[starts], lengths


def lookup(values: np.ndarray, keys: np.ndarray, indices: np.ndarray, missing: int) -> np.ndarray:
    """``indices[k]`` where ``values == keys[k]``, ``missing`` where a value is no key.

    Args:
        values: integer array (any shape).
        keys: (N,) distinct integers; indices: (N,) integers.
    Returns:
        int64 array shaped like ``values``.
    """
    keys = np.asarray(keys, np.int64)
    out = np.full(np.shape(values), missing, np.int64)
    if len(keys) == 0:
        return out
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    values = np.asarray(values).astype(np.int64, copy=False)
    pos = np.minimum(np.searchsorted(sorted_keys, values), len(keys) - 1)
    found = sorted_keys[pos] == values
    out[found] = np.asarray(indices, np.int64)[order][pos[found]]
    return out


def intersections(
    rows: np.ndarray, cols: np.ndarray, lengths: np.ndarray, num_rows: int, num_cols: int
) -> np.ndarray:
    """Joint histogram of runs.

    Args:
        rows: (R,) int row index of each run, in ``[0, num_rows)``.
        cols: (R,) int column index of each run, in ``[0, num_cols)``.
        lengths: (R,) int pixels in each run.
    Returns:
        (num_rows, num_cols) int64 matrix; entry (r, c) counts the pixels with row r, column c.
    """
    counts = np.bincount(rows * num_cols + cols, weights=lengths, minlength=num_rows * num_cols)
    # float64 sums of integers are exact below 2**53 pixels
    return counts.astype(np.int64).reshape(num_rows, num_cols)


def image_pq_stats(
    inter: np.ndarray,
    *,
    gt_category: np.ndarray,
    gt_iscrowd: np.ndarray,
    gt_area: np.ndarray,
    pred_category: np.ndarray,
    gt_void_row: int,
    num_categories: int,
) -> PQStats:
    """PQ statistics of one image pair from its intersection matrix.

    Args:
        inter: (G + r, P + c) int64 intersection counts, r, c >= 0. Rows ``0..G-1`` are the GT
            segments in listing order, columns ``0..P-1`` the predicted segments; extra rows hold
            VOID and unlisted GT ids, extra columns predicted VOID. Column sums are the predicted
            areas, so every pixel of the image must be counted once.
        gt_category: (G,) int64 category index in ``[0, num_categories)``, or -1 for a category
            that is not evaluated.
        gt_iscrowd: (G,) bool.
        gt_area: (G,) float64 areas as given (panopticapi trusts the GT JSON ``area``).
        pred_category: (P,) int64 category index in ``[0, num_categories)``.
        gt_void_row: row of the GT VOID id (0); may be a listed segment's row.
        num_categories: K, the length of the returned statistics.
    Returns:
        :class:`PQStats` over K categories.
    """
    g = gt_category.shape[0]
    p = pred_category.shape[0]
    stats = PQStats.zeros(num_categories)
    pred_area = inter[:, :p].sum(axis=0)
    void = inter[gt_void_row, :p]

    seg = inter[:g, :p]
    gi, pj = np.nonzero(seg)
    keep = (~gt_iscrowd[gi]) & (gt_category[gi] >= 0) & (gt_category[gi] == pred_category[pj])
    gi, pj = gi[keep], pj[keep]
    inter_ij = seg[gi, pj]
    union = pred_area[pj] + gt_area[gi] - inter_ij - void[pj]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter_ij / union
    match = iou > 0.5
    gt_matched = np.zeros(g, bool)
    pred_matched = np.zeros(p, bool)
    gt_matched[gi[match]] = True
    pred_matched[pj[match]] = True
    np.add.at(stats.tp, gt_category[gi[match]], 1)
    np.add.at(stats.iou, gt_category[gi[match]], iou[match])

    counted = (~gt_matched) & (~gt_iscrowd) & (gt_category >= 0)
    np.add.at(stats.fn, gt_category[counted], 1)

    crowd_row = np.full(num_categories, -1, np.int64)
    for row in np.flatnonzero(gt_iscrowd & ~gt_matched & (gt_category >= 0)):
        crowd_row[gt_category[row]] = row  # the last listed crowd segment of a category wins

    unmatched = np.flatnonzero(~pred_matched)
    cat = pred_category[unmatched]
    ignored = void[unmatched].copy()
    crow = crowd_row[cat]
    has_crowd = crow >= 0
    ignored[has_crowd] += inter[crow[has_crowd], unmatched[has_crowd]]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = ignored / pred_area[unmatched]
    np.add.at(stats.fp, cat[~(ratio > 0.5)], 1)
    return stats


def category_index(categories: Sequence[Category]) -> dict[int, int]:
    """Category id -> position in ``categories``."""
    return {c.id: k for k, c in enumerate(categories)}


def pq_average(
    stats: PQStats, categories: Sequence[Category], isthing: bool | None
) -> tuple[dict[str, Any], dict[int, dict[str, float]]]:
    """One group's PQ, SQ, RQ and category count, plus per-category values.

    Same arithmetic and order as panopticapi's ``PQStat.pq_average``. Categories with
    TP + FP + FN = 0 are left out of the mean (and get 0.0 per class); where no category of the
    group is counted, panopticapi divides by zero: here pq, sq and rq are ``None`` and n is 0.
    """
    pq = sq = rq = 0.0
    n = 0
    per_class: dict[int, dict[str, float]] = {}
    for k, cat in enumerate(categories):
        if isthing is not None and cat.isthing != isthing:
            continue
        iou = float(stats.iou[k])
        tp, fp, fn = int(stats.tp[k]), int(stats.fp[k]), int(stats.fn[k])
        if tp + fp + fn == 0:
            per_class[cat.id] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
            continue
        n += 1
        pq_c = iou / (tp + 0.5 * fp + 0.5 * fn)
        sq_c = iou / tp if tp != 0 else 0.0
        rq_c = tp / (tp + 0.5 * fp + 0.5 * fn)
        per_class[cat.id] = {"pq": pq_c, "sq": sq_c, "rq": rq_c}
        pq += pq_c
        sq += sq_c
        rq += rq_c
    if n == 0:
        return {"pq": None, "sq": None, "rq": None, "n": 0}, per_class
    return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}, per_class


def summarize_pq(stats: PQStats, categories: Sequence[Category]) -> dict[str, Any]:
    """``{"All", "Things", "Stuff": {pq, sq, rq, n}, "per_class": {id: {pq, sq, rq, ...}}}``.

    The layout of panopticapi's ``pq_compute`` result; per-class entries also carry the
    category name, ``isthing`` and the raw ``iou``, ``tp``, ``fp``, ``fn`` sums.
    """
    result: dict[str, Any] = {}
    for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
        result[name], per_class = pq_average(stats, categories, isthing)
        if name == "All":
            for k, cat in enumerate(categories):
                per_class[cat.id].update(
                    name=cat.name,
                    isthing=cat.isthing,
                    iou=float(stats.iou[k]),
                    tp=int(stats.tp[k]),
                    fp=int(stats.fp[k]),
                    fn=int(stats.fn[k]),
                )
            result["per_class"] = per_class
    return result
