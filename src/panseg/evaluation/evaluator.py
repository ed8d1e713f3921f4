"""PanopticEvaluator: PQ, SQ, RQ and mIoU accumulated in memory from integer panoptic arrays.

Array convention (DeepLab2's): ``panoptic = semantic * label_divisor + instance`` with the
dataset's :class:`~panseg.datasets.info.DatasetInfo`:

* a pixel whose semantic equals ``info.ignore_label`` is VOID (COCO: 0, Cityscapes: 255),
  whatever its instance;
* every other distinct value is one segment, category = its semantic id;
* in the ground truth, a thing class with instance 0 is that class's **crowd** region
  (panopticapi ``iscrowd = 1``; cityscapesScripts' ``createPanopticImgs.py`` makes thing pixels
  without an instance a crowd segment the same way); in predictions it is an ordinary segment;
* areas are pixel counts on both sides; a predicted semantic id that is neither a class nor the
  ignore label is an error (panopticapi: "unknown category_id"), and so is one in the GT.

With these rules the numbers equal panopticapi's ``pq_compute`` on the same segments written as
PNG + JSON (GT ``area`` = pixel count), and cityscapesScripts' ``evalPanopticSemanticLabeling``
on Cityscapes train ids (``ignore_label`` 255, ``label_divisor`` 1000: the Cityscapes mode is
just that ``DatasetInfo``). The semantic part equals ``evalPixelLevelSemanticLabeling`` on train
ids (see ``semantic.py``); it is read off the same intersection matrix, summed by class.

For several processes (DDP): every rank updates its own evaluator, then
``evaluator.merge(other)`` for each gathered ``other`` (an evaluator or its ``state_dict()``,
which is a small picklable dict of lists), then ``summarize()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from panseg.datasets.info import DatasetInfo
from panseg.evaluation.pq import (
    Category,
    PQStats,
    image_pq_stats,
    intersections,
    joint_runs,
    summarize_pq,
)
from panseg.evaluation.semantic import confusion_from_intersections, summarize_semantic


class PanopticEvaluator:
    """Accumulates panoptic (and semantic) statistics over image pairs.

    Args:
        info: the label space: classes (the evaluated categories, in class order), their
            ``is_thing``, ``ignore_label`` and ``label_divisor``.
        semantic: also accumulate the semantic confusion matrix (mIoU).
    """

    def __init__(self, info: DatasetInfo, *, semantic: bool = True) -> None:
        self.info = info
        self.categories = [Category(c.id, c.name, c.is_thing) for c in info.classes]
        self.class_ids = [c.id for c in info.classes]
        self._lookup_size = max([*self.class_ids, info.ignore_label]) + 1
        self._cat_of = np.full(self._lookup_size, -1, np.int64)
        self._cat_of[self.class_ids] = np.arange(len(self.class_ids))
        self._is_thing = np.zeros(self._lookup_size, bool)
        self._is_thing[list(info.thing_ids)] = True
        self.stats = PQStats.zeros(len(self.categories))
        self.semantic = semantic
        k = len(self.class_ids)
        self.confusion = np.zeros((k, k + 1), np.int64)
        self.images = 0

    # ----------------------------------------------------------------------- updates
    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image pair.

        Args:
            pred, gt: (H, W) integer panoptic maps, ``semantic * label_divisor + instance``,
                values >= 0; see the module docstring for VOID and crowd.
        """
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
        for name, arr in (("prediction", pred), ("ground truth", gt)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{name} must be an integer panoptic map, got {arr.dtype}")
        div = self.info.label_divisor

        gt_run, pred_run, lengths = joint_runs(gt, pred)
        gt_ids, gt_inverse = np.unique(gt_run, return_inverse=True)
        pred_ids, pred_inverse = np.unique(pred_run, return_inverse=True)
        for name, ids in (("prediction", pred_ids), ("ground truth", gt_ids)):
            if len(ids) and ids[0] < 0:
                raise ValueError(f"{name} has negative panoptic values, e.g. {int(ids[0])}")

        gt_sem = gt_ids // div
        gt_void = gt_sem == self.info.ignore_label
        gt_cat = self._categories_of(gt_sem[~gt_void], gt_ids[~gt_void], "ground truth")
        seg_ids = gt_ids[~gt_void]
        g = len(seg_ids)
        gt_crowd = self._is_thing[gt_sem[~gt_void]] & (seg_ids % div == 0)

        pred_sem = pred_ids // div
        pred_void = pred_sem == self.info.ignore_label
        pred_cat = self._categories_of(pred_sem[~pred_void], pred_ids[~pred_void], "prediction")
        p = int((~pred_void).sum())

        # distinct id -> row (segments in ascending id, every VOID id -> row g) and column
        row_of_id = np.where(gt_void, g, np.cumsum(~gt_void) - 1)
        col_of_id = np.where(pred_void, p, np.cumsum(~pred_void) - 1)
        inter = intersections(
            row_of_id[gt_inverse.ravel()], col_of_id[pred_inverse.ravel()], lengths, g + 1, p + 1
        )
        self.stats += image_pq_stats(
            inter,
            gt_category=gt_cat,
            gt_iscrowd=gt_crowd,
            gt_area=inter[:g].sum(axis=1).astype(np.float64),
            pred_category=pred_cat,
            gt_void_row=g,
            num_categories=len(self.categories),
        )
        if self.semantic:  # GT VOID rows are not counted, predicted VOID is "no class"
            self.confusion += confusion_from_intersections(
                inter[:g], gt_cat, np.append(pred_cat, len(self.class_ids)), len(self.class_ids)
            )
        self.images += 1

    def _categories_of(self, sem: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
        cat = np.full(sem.shape, -1, np.int64)
        inside = sem < self._lookup_size
        cat[inside] = self._cat_of[sem[inside]]
        if (cat < 0).any():
            bad = ids[cat < 0][:10].tolist()
            raise ValueError(
                f"{what} panoptic value(s) {bad}: semantic id(s) "
                f"{sorted(set((np.asarray(bad) // self.info.label_divisor).tolist()))} are "
                f"neither a class of {self.info.name!r} nor its ignore label "
                f"{self.info.ignore_label} (label_divisor {self.info.label_divisor})"
            )
        return cat

    # ----------------------------------------------------------------- merge / results
    def state_dict(self) -> dict[str, Any]:
        """Picklable, JSON-able accumulated state (to gather from other processes)."""
        return {
            "dataset": self.info.name,
            "class_ids": list(self.class_ids),
            "images": self.images,
            "pq": self.stats.to_dict(),
            "confusion": self.confusion.tolist(),
        }

    def merge(self, other: PanopticEvaluator | Mapping[str, Any]) -> None:
        """Add another evaluator's statistics (or its ``state_dict()``) to this one."""
        state = other.state_dict() if isinstance(other, PanopticEvaluator) else other
        if list(state["class_ids"]) != self.class_ids:
            raise ValueError(
                f"cannot merge statistics of dataset {state.get('dataset')!r} (classes "
                f"{list(state['class_ids'])[:5]}...) into an evaluator of {self.info.name!r}"
            )
        self.stats += PQStats.from_dict(state["pq"])
        self.confusion += np.asarray(state["confusion"], np.int64)
        self.images += int(state["images"])

    def summarize(self) -> dict[str, Any]:
        """``{"panoptic": {All, Things, Stuff, per_class}, "semantic": {...}, "images": n}``.

        Groups without a counted category have ``pq``/``sq``/``rq`` None and ``n`` 0.
        """
        out: dict[str, Any] = {"panoptic": summarize_pq(self.stats, self.categories)}
        if self.semantic:
            out["semantic"] = summarize_semantic(self.confusion, self.class_ids)
        out["images"] = self.images
        return out
