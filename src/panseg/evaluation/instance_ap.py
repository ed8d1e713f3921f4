"""Instance AP of thing classes from scored instance masks: Cityscapes-style and COCO mask AP.

**Cityscapes AP** — reference: cityscapesScripts ``evaluation/evalInstanceLevelSemanticLabeling.py``
(PyPI 2.3.0) ``assignGt2Preds``, ``evaluateMatches`` and ``computeAverages`` without distances,
the AP that Panoptic-DeepLab's tables report:

* GT instances of a thing class are its segments with an instance id (our arrays: ``instance > 0``);
  the class's crowd region (``instance == 0``) and instances under ``min_region_size`` (100) px
  are not to be found but excuse predictions; VOID is the ignore label;
* overlaps 0.5, 0.55, ..., 0.95 (``np.arange(0.5, 1, 0.05)``); IoU = I / (|G| + |P| - I),
  nothing removed; a GT is found by every prediction of its class with IoU > threshold, the best
  score counts as true positive and the others as false positives;
* an unmatched GT is a false negative; a prediction that has IoU > threshold with no GT of its
  class (crowd and small ones included) is a false positive unless the pixels it shares with VOID,
  with the crowd region and with small instances (a small crowd region twice) are more than the
  threshold times its area;
* precision/recall at each distinct score, AP = ``dot(precision, 0.5 * (r[i-1] - r[i+1]))`` with
  the end points precision 1, recall 0; a class without GT has AP NaN (left out of the mean), one
  with GT but no prediction 0. cityscapesScripts raises IndexError when a class has GT and
  predictions but none of them is scored (all GT missed, all predictions excused): here AP is 0.

**COCO mask AP** — pycocotools ``COCOeval(iouType="segm")`` on RLEs of the same masks; the
crowd region of a class is an ``iscrowd`` annotation. pycocotools is imported only here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from panseg.datasets.info import DatasetInfo
from panseg.evaluation.pq import intersections, joint_runs

OVERLAPS = np.arange(0.5, 1.0, 0.05)  # cityscapesScripts' ``args.overlaps``
MIN_REGION_SIZE = 100


class InstanceAPEvaluator:
    """Accumulates per-image instance statistics; ``summarize()`` gives Cityscapes and COCO AP.

    Args:
        info: the label space (``thing_ids``, ``ignore_label``, ``label_divisor``).
        cityscapes: compute Cityscapes-style AP.
        coco: compute COCO mask AP (needs pycocotools, the ``eval`` extra).
        min_region_size: Cityscapes' smallest GT instance that must be found.
    """

    def __init__(
        self,
        info: DatasetInfo,
        *,
        cityscapes: bool = True,
        coco: bool = False,
        min_region_size: int = MIN_REGION_SIZE,
    ) -> None:
        self.info = info
        self.thing_ids = sorted(info.thing_ids)
        self.cityscapes = cityscapes
        self.coco = coco
        self.min_region_size = min_region_size
        # per image: {class: (gt_area, gt_crowd, [(score, area, void, {gt_index: inter})])}
        self._images: list[dict[int, tuple[np.ndarray, np.ndarray, list]]] = []
        self._coco_gt: list[dict[str, Any]] = []
        self._coco_dt: list[dict[str, Any]] = []

    def update(
        self, gt: np.ndarray, masks: np.ndarray, labels: np.ndarray, scores: np.ndarray
    ) -> None:
        """Add one image.

        Args:
            gt: (H, W) integer GT panoptic map, ``semantic * label_divisor + instance``.
            masks: (N, H, W) bool predicted instance masks.
            labels: (N,) int semantic class of each mask (non-thing classes are skipped).
            scores: (N,) float confidence of each mask.
        """
        gt = np.asarray(gt).astype(np.int64, copy=False)
        masks = np.asarray(masks, bool).reshape(-1, *gt.shape) if len(masks) else np.zeros(
            (0, *gt.shape), bool
        )
        labels = np.asarray(labels, np.int64).reshape(-1)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if not (len(masks) == len(labels) == len(scores)):
            raise ValueError(
                f"{len(masks)} masks, {len(labels)} labels and {len(scores)} scores: "
                "need one label and one score per mask"
            )
        ids, inverse, counts = np.unique(gt, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(gt.shape)
        per_class, rows_of, void_of = self._gt_table(ids, counts)
        for mask, label, score in zip(masks, labels.tolist(), scores.tolist(), strict=True):
            if label not in per_class:
                continue
            under = inverse[mask]
            if under.size:
                hist = np.bincount(under, minlength=len(ids))
                self._add_prediction(per_class, rows_of, void_of, label, score, hist)
        self._images.append(per_class)
        if self.coco:
            div = self.info.label_divisor
            sem, inst = ids // div, ids % div
            self._add_coco(len(self._images), gt, inverse, ids, sem, inst, masks, labels, scores)

    def update_panoptic(
        self, gt: np.ndarray, pred: np.ndarray, ids: np.ndarray, scores: np.ndarray
    ) -> None:
        """Add one image whose instances are segments of a panoptic prediction.

        Args:
            gt: (H, W) integer GT panoptic map.
            pred: (H, W) integer panoptic prediction, same convention.
            ids: (M,) panoptic ids of the scored instances (class ``id // label_divisor``; e.g.
                :func:`panseg.postprocess.scores.instance_scores`).
            scores: (M,) float confidence of each id.
        """
        gt = np.asarray(gt)
        pred = np.asarray(pred)
        if gt.shape != pred.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
        ids = np.asarray(ids, np.int64).reshape(-1)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if len(ids) != len(scores):
            raise ValueError(f"{len(ids)} ids and {len(scores)} scores: need one score per id")
        labels = ids // self.info.label_divisor
        if self.coco:  # pycocotools needs the masks themselves
            masks = pred[None] == ids.reshape(-1, *([1] * pred.ndim))
            self.update(gt, masks, labels, scores)
            return
        # the intersections of every (GT segment, predicted segment) pair from the pixel runs
        gt_run, pred_run, lengths = joint_runs(gt, pred)
        gt_ids, gt_inverse = np.unique(gt_run, return_inverse=True)
        pred_ids, pred_inverse = np.unique(pred_run, return_inverse=True)
        inter = intersections(
            gt_inverse.ravel(), pred_inverse.ravel(), lengths, len(gt_ids), len(pred_ids)
        )
        per_class, rows_of, void_of = self._gt_table(gt_ids, inter.sum(axis=1))
        for pid, label, score in zip(ids.tolist(), labels.tolist(), scores.tolist(), strict=True):
            j = int(np.searchsorted(pred_ids, pid))
            if label in per_class and j < len(pred_ids) and pred_ids[j] == pid:
                self._add_prediction(per_class, rows_of, void_of, label, score, inter[:, j])
        self._images.append(per_class)

    def _gt_table(self, ids: np.ndarray, counts: np.ndarray):
        """Per thing class: GT areas, crowd flags and an empty prediction list."""
        div = self.info.label_divisor
        sem, inst = ids // div, ids % div
        per_class: dict[int, tuple[np.ndarray, np.ndarray, list]] = {}
        rows_of: dict[int, np.ndarray] = {}
        for c in self.thing_ids:
            rows = np.flatnonzero(sem == c)
            rows_of[c] = rows
            per_class[c] = (np.asarray(counts)[rows], inst[rows] == 0, [])
        return per_class, rows_of, sem == self.info.ignore_label

    @staticmethod
    def _add_prediction(per_class, rows_of, void_of, label: int, score: float, hist) -> None:
        """Record one prediction from its overlap with every GT id (``hist``, by GT row)."""
        area = int(hist.sum())
        if area == 0:
            return
        rows = rows_of[label]
        inter = {int(k): int(hist[r]) for k, r in enumerate(rows) if hist[r] > 0}
        per_class[label][2].append((float(score), area, int(hist[void_of].sum()), inter))

    def _add_coco(self, image_id, gt, inverse, ids, sem, inst, masks, labels, scores) -> None:
        from pycocotools import mask as mask_utils

        h, w = gt.shape
        self._coco_gt.append({"image": {"id": image_id, "height": h, "width": w}, "anns": []})
        for r in np.flatnonzero(np.isin(sem, self.thing_ids)):
            m = np.asfortranarray((inverse == r).astype(np.uint8))
            rle = mask_utils.encode(m)
            self._coco_gt[-1]["anns"].append(
                {
                    "image_id": image_id,
                    "category_id": int(sem[r]),
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": mask_utils.toBbox(rle).tolist(),
                    "iscrowd": int(inst[r] == 0),
                }
            )
        for mask, label, score in zip(masks, labels.tolist(), scores.tolist(), strict=True):
            if label in self.info.thing_ids and mask.any():
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                self._coco_dt.append(
                    {"image_id": image_id, "category_id": int(label), "segmentation": rle,
                     "score": float(score)}
                )

    def merge(self, other: InstanceAPEvaluator) -> None:
        """Append another evaluator's images (e.g. gathered from other processes)."""
        if other.thing_ids != self.thing_ids or other.min_region_size != self.min_region_size:
            raise ValueError("cannot merge instance statistics of another label space or setting")
        offset = len(self._images)
        self._images.extend(other._images)
        for entry in other._coco_gt:
            image = dict(entry["image"], id=entry["image"]["id"] + offset)
            anns = [dict(a, image_id=a["image_id"] + offset) for a in entry["anns"]]
            self._coco_gt.append({"image": image, "anns": anns})
        self._coco_dt.extend(dict(d, image_id=d["image_id"] + offset) for d in other._coco_dt)

    # ------------------------------------------------------------------- summaries
    def summarize(self) -> dict[str, Any]:
        out: dict[str, Any] = {"images": len(self._images)}
        if self.cityscapes:
            out["cityscapes"] = self.cityscapes_ap()
        if self.coco:
            out["coco"] = self.coco_ap()
        return out

    def cityscapes_ap(self) -> dict[str, Any]:
        """``{"ap", "ap50", "per_class": {class: {"ap", "ap50"}}}``; NaN groups become None."""
        ap = np.full((len(self.thing_ids), len(OVERLAPS)), np.nan)
        for ci, c in enumerate(self.thing_ids):
            for oi, th in enumerate(OVERLAPS):
                ap[ci, oi] = self._class_ap(c, float(th))
        o50 = int(np.flatnonzero(np.isclose(OVERLAPS, 0.5))[0])

        def mean(values: np.ndarray) -> float | None:
            values = values[~np.isnan(values)]
            return float(values.mean()) if values.size else None

        return {
            "ap": mean(ap.ravel()),
            "ap50": mean(ap[:, o50]),
            "per_class": {
                c: {"ap": mean(ap[ci]), "ap50": mean(ap[ci, o50 : o50 + 1])}
                for ci, c in enumerate(self.thing_ids)
            },
        }

    def _class_ap(self, c: int, th: float) -> float:
        y_true: list[float] = []
        y_score: list[float] = []
        hard_fn = 0
        have_gt = have_pred = False
        small = self.min_region_size
        for image in self._images:
            gt_area, gt_crowd, preds = image[c]
            wanted = (~gt_crowd) & (gt_area >= small)
            have_gt |= bool(wanted.any())
            have_pred |= bool(preds)
            best: dict[int, float] = {}
            for score, area, _void, inter in preds:
                for g, i in inter.items():
                    if wanted[g] and i / (gt_area[g] + area - i) > th:
                        if g in best:  # the lower score of two matches is a false positive
                            y_true.append(0.0)
                            y_score.append(min(best[g], score))
                            best[g] = max(best[g], score)
                        else:
                            best[g] = score
            hard_fn += int(wanted.sum()) - len(best)
            for g in sorted(best):
                y_true.append(1.0)
                y_score.append(best[g])
            for score, area, void, inter in preds:
                if any(i / (gt_area[g] + area - i) > th for g, i in inter.items()):
                    continue
                ignored = void
                for g, i in inter.items():
                    ignored += i * (int(bool(gt_crowd[g])) + int(gt_area[g] < small))
                if ignored / area <= th:
                    y_true.append(0.0)
                    y_score.append(score)
        if not have_gt:
            return float("nan")
        if not have_pred or not y_score:
            return 0.0
        return _average_precision(np.array(y_true), np.array(y_score), hard_fn)

    def coco_ap(self) -> dict[str, Any]:
        """COCO mask AP (``stats`` of ``COCOeval.summarize``) and per-class AP, in [0, 1]."""
        import contextlib
        import io

        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        anns = []
        for entry in self._coco_gt:
            for a in entry["anns"]:
                anns.append(dict(a, id=len(anns) + 1))
        dataset = {
            "images": [e["image"] for e in self._coco_gt],
            "annotations": anns,
            "categories": [{"id": c} for c in self.thing_ids],
        }
        keys = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
        if not self._coco_dt or not anns:
            return {**dict.fromkeys(keys, 0.0 if anns else None), "per_class": {}}
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = dataset
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes([dict(d) for d in self._coco_dt])
            ev = COCOeval(coco_gt, coco_dt, iouType="segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        precision = ev.eval["precision"][:, :, :, 0, -1]  # T, R, K at area "all", 100 dets
        per_class = {}
        for k, c in enumerate(ev.params.catIds):
            p = precision[:, :, k]
            per_class[int(c)] = float(p[p > -1].mean()) if (p > -1).any() else None
        return {
            **{k: (float(v) if v >= 0 else None) for k, v in zip(keys, ev.stats[:6], strict=True)},
            "per_class": per_class,
        }


def _average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_fn: int) -> float:
    """cityscapesScripts' AP from scored examples (1 = TP, 0 = FP) and unscored misses."""
    order = np.argsort(y_score)
    scores, trues = y_score[order], y_true[order]
    cum = np.cumsum(trues)
    _, first = np.unique(scores, return_index=True)
    n_examples, n_true = len(scores), cum[-1]
    precision = np.zeros(len(first) + 1)
    recall = np.zeros(len(first) + 1)
    for j, idx in enumerate(first):
        before = cum[idx - 1] if idx > 0 else 0.0
        tp = n_true - before
        fp = n_examples - idx - tp
        fn = before + hard_fn
        precision[j] = tp / (tp + fp)
        recall[j] = tp / (tp + fn)
    precision[-1], recall[-1] = 1.0, 0.0
    padded = np.concatenate([recall[:1], recall, [0.0]])
    steps = 0.5 * (padded[:-2] - padded[2:])
    return float(np.dot(precision, steps))

