"""COCO panoptic JSON + PNG pairs: reading, panopticapi's checks, and PQ over a whole dataset.

Reference: cocodataset/panopticapi ``panopticapi/evaluation.py`` (``pq_compute`` and
``pq_compute_single_core``) and ``panopticapi/utils.py`` (``rgb2id``). What is read and checked:

* categories are the GT JSON ``categories`` (a later entry with the same id replaces an earlier
  one); a prediction whose ``category_id`` is not among them is an error;
* every GT annotation needs a prediction with the same ``image_id`` (extra predictions are
  ignored); each annotation's ``file_name`` is read from its folder;
* PNG ids are ``R + 256 G + 256² B`` (an alpha channel is ignored, as ``rgb2id`` does);
* a prediction PNG id other than 0 that its JSON does not list, or a listed id absent from the
  PNG, is an error; GT PNG ids the GT JSON does not list are skipped (only id 0 is VOID);
* GT areas are the GT JSON ``area`` fields, prediction areas are PNG pixel counts;
* GT and prediction PNGs of one image must have the same size (panopticapi fails inside numpy).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from panseg import fsio
from panseg.evaluation.pq import (
    VOID_ID,
    Category,
    PQStats,
    category_index,
    image_pq_stats,
    intersections,
    joint_runs,
    lookup,
    summarize_pq,
)
from panseg.evaluation.semantic import confusion_from_intersections, summarize_semantic


class PanopticFormatError(ValueError):
    """A COCO panoptic JSON or PNG that cannot be evaluated; the message names the record."""


def load_json(path: str, what: str) -> dict[str, Any]:
    """Read a COCO panoptic JSON file with ``annotations`` (and ``categories`` for GT)."""
    try:
        data = json.loads(fsio.read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        raise PanopticFormatError(f"{what} JSON {path!r} does not exist") from None
    except json.JSONDecodeError as exc:
        raise PanopticFormatError(f"{what} JSON {path!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise PanopticFormatError(f"{what} JSON {path!r} has no 'annotations' list")
    return data


def categories_from_json(gt: Mapping[str, Any], path: str = "ground truth") -> list[Category]:
    """The evaluated categories of a GT JSON, in listing order (``isthing == 1`` is a thing)."""
    raw = gt.get("categories")
    if not isinstance(raw, list):
        raise PanopticFormatError(f"{path}: the ground-truth JSON has no 'categories' list")
    by_id: dict[int, Category] = {}
    for i, c in enumerate(raw):
        try:
            by_id[int(c["id"])] = Category(
                id=int(c["id"]), name=str(c.get("name", c["id"])), isthing=c.get("isthing") == 1
            )
        except (KeyError, TypeError, ValueError):
            raise PanopticFormatError(f"{path}: categories[{i}] has no integer 'id'") from None
    return list(by_id.values())


def match_annotations(
    gt: Mapping[str, Any], pred: Mapping[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(GT annotation, prediction annotation) pairs in GT order, matched by ``image_id``."""
    preds = {}
    for i, ann in enumerate(pred["annotations"]):
        if "image_id" not in ann:
            raise PanopticFormatError(f"prediction annotations[{i}] has no 'image_id'")
        preds[ann["image_id"]] = ann
    pairs = []
    for i, ann in enumerate(gt["annotations"]):
        if "image_id" not in ann:
            raise PanopticFormatError(f"ground-truth annotations[{i}] has no 'image_id'")
        if ann["image_id"] not in preds:
            raise PanopticFormatError(f"no prediction for the image with id {ann['image_id']!r}")
        pairs.append((ann, preds[ann["image_id"]]))
    return pairs


def read_id_png(path: str) -> np.ndarray:
    """Segment ids of a COCO panoptic PNG: (H, W) uint32, ``R + 256 G + 65536 B``."""
    from PIL import Image

    try:
        with fsio.open(path, "rb") as f, Image.open(f) as img:
            if img.mode not in ("RGB", "RGBA"):
                raise PanopticFormatError(
                    f"{path}: a panoptic PNG must be RGB (ids are R + 256 G + 256^2 B), "
                    f"got mode {img.mode!r}"
                )
            w, h = img.size
            # Pillow keeps RGB pixels in 4 bytes: R, G, B and a pad byte (alpha for RGBA)
            raw = img.tobytes("raw", "RGBX" if img.mode == "RGB" else "RGBA")
    except FileNotFoundError:
        raise PanopticFormatError(f"segmentation PNG {path!r} does not exist") from None
    except OSError as exc:
        raise PanopticFormatError(f"cannot read segmentation PNG {path!r}: {exc}") from None
    # little-endian words: R + 256 G + 65536 B + 2**24 pad
    return np.frombuffer(raw, "<u4").reshape(h, w) & np.uint32(0xFFFFFF)


def _segments(ann: Mapping[str, Any], what: str, need_gt_fields: bool) -> list[dict[str, Any]]:
    """``segments_info`` as an id-keyed dict's values (a repeated id replaces, keeps its place)."""
    segs = ann.get("segments_info")
    if not isinstance(segs, list):
        raise PanopticFormatError(
            f"{what} annotation of image {ann.get('image_id')!r} has no 'segments_info' list"
        )
    fields = ("id", "category_id", "iscrowd", "area") if need_gt_fields else ("id", "category_id")
    by_id: dict[int, dict[str, Any]] = {}
    for seg in segs:
        for key in fields:
            if key not in seg:
                raise PanopticFormatError(
                    f"{what} segment {seg.get('id')!r} of image {ann.get('image_id')!r} "
                    f"has no {key!r}"
                )
        by_id[int(seg["id"])] = seg
    return list(by_id.values())


def pair_stats(
    gt_ids: np.ndarray,
    pred_ids: np.ndarray,
    gt_ann: Mapping[str, Any],
    pred_ann: Mapping[str, Any],
    cat_index: Mapping[int, int],
    confusion: np.ndarray | None = None,
) -> PQStats:
    """PQ statistics of one image from its two id maps and JSON annotations, with the checks.

    Args:
        gt_ids, pred_ids: (H, W) integer id maps in ``[0, 256**3)`` (:func:`read_id_png`).
        gt_ann, pred_ann: COCO panoptic annotations (``image_id``, ``segments_info``).
        cat_index: category id -> index in the evaluated categories.
        confusion: a (K, K + 1) int64 semantic confusion matrix to add this image to: GT pixels
            take the class of their listed segment (crowd included; VOID, unlisted ids and
            unknown categories are not counted), predicted pixels the class of their segment
            (VOID: no class).
    """
    image = gt_ann.get("image_id")
    if gt_ids.shape != pred_ids.shape:
        raise PanopticFormatError(
            f"image {image!r}: the ground-truth PNG {gt_ann.get('file_name')!r} is "
            f"{gt_ids.shape[1]}x{gt_ids.shape[0]} but the prediction PNG "
            f"{pred_ann.get('file_name')!r} is {pred_ids.shape[1]}x{pred_ids.shape[0]} (WxH)"
        )
    gts = _segments(gt_ann, "ground-truth", True)
    preds = _segments(pred_ann, "prediction", False)
    g, p = len(gts), len(preds)
    gt_keys = [int(s["id"]) for s in gts]
    pred_keys = [int(s["id"]) for s in preds]

    void_row = gt_keys.index(VOID_ID) if VOID_ID in gt_keys else g
    gt_run, pred_run, lengths = joint_runs(gt_ids, pred_ids)
    rows = lookup(
        gt_run,
        gt_keys + ([] if VOID_ID in gt_keys else [VOID_ID]),
        np.arange(g + (0 if VOID_ID in gt_keys else 1)),
        missing=g + 1,
    )
    cols = lookup(
        pred_run,
        pred_keys + ([] if VOID_ID in pred_keys else [VOID_ID]),
        np.arange(p + (0 if VOID_ID in pred_keys else 1)),
        missing=p + 1,
    )
    inter = intersections(rows, cols, lengths, g + 2, p + 2)

    if inter[:, p + 1].any():
        listed = np.array(pred_keys + [VOID_ID], np.int64)
        extra = np.setdiff1d(np.unique(pred_run), listed)
        raise PanopticFormatError(
            f"image {image!r}: prediction segment id(s) {extra.tolist()} are in the PNG "
            f"{pred_ann.get('file_name')!r} but not in the prediction JSON"
        )
    pred_cat = np.empty(p, np.int64)
    for j, seg in enumerate(preds):
        k = cat_index.get(seg["category_id"])
        if k is None:
            raise PanopticFormatError(
                f"image {image!r}: prediction segment {seg['id']} has unknown category_id "
                f"{seg['category_id']!r} (not among the ground-truth categories)"
            )
        pred_cat[j] = k
    pred_area = inter[:, :p].sum(axis=0)
    if p and not pred_area.all():
        absent = [pred_keys[j] for j in np.flatnonzero(pred_area == 0)]
        raise PanopticFormatError(
            f"image {image!r}: prediction segment id(s) {absent} are in the prediction JSON "
            f"but not in the PNG {pred_ann.get('file_name')!r}"
        )
    gt_cat = np.array([cat_index.get(s["category_id"], -1) for s in gts], np.int64)
    gt_crowd = np.array([s["iscrowd"] == 1 for s in gts], bool)
    try:
        gt_area = np.array([s["area"] for s in gts], np.float64)
    except (TypeError, ValueError):
        raise PanopticFormatError(
            f"image {image!r}: a ground-truth segment has a non-numeric 'area'"
        ) from None
    if confusion is not None:
        k = len(cat_index)
        confusion += confusion_from_intersections(
            inter[:g, : p + 1], gt_cat, np.append(pred_cat, k), k
        )
    return image_pq_stats(
        inter[:, : p + 1],
        gt_category=gt_cat,
        gt_iscrowd=gt_crowd,
        gt_area=gt_area,
        pred_category=pred_cat,
        gt_void_row=void_row,
        num_categories=len(cat_index),
    )


# ------------------------------------------------------------------ dataset-level evaluation
_WORKER: dict[str, Any] = {}


def _init_worker(
    gt_dir: str, pred_dir: str, cat_index: Mapping[int, int], storage: dict | None = None
) -> None:
    _WORKER.update(gt_dir=gt_dir, pred_dir=pred_dir, cat_index=dict(cat_index))
    if storage:
        fsio.configure(storage)  # the parent's object-store options (panseg.fsio)


def _chunk_stats(
    chunk: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
) -> tuple[PQStats, np.ndarray]:
    k = len(_WORKER["cat_index"])
    stats = PQStats.zeros(k)
    confusion = np.zeros((k, k + 1), np.int64)
    for gt_ann, pred_ann in chunk:
        for ann, what in ((gt_ann, "ground-truth"), (pred_ann, "prediction")):
            if "file_name" not in ann:
                raise PanopticFormatError(
                    f"{what} annotation of image {ann.get('image_id')!r} has no 'file_name'"
                )
        gt_ids = read_id_png(fsio.join(_WORKER["gt_dir"], gt_ann["file_name"]))
        pred_ids = read_id_png(fsio.join(_WORKER["pred_dir"], pred_ann["file_name"]))
        stats += pair_stats(gt_ids, pred_ids, gt_ann, pred_ann, _WORKER["cat_index"], confusion)
    return stats, confusion


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def evaluate_coco_panoptic(
    gt_json: str,
    gt_dir: str,
    pred_json: str,
    pred_dir: str,
    *,
    workers: int = 1,
    progress: bool = True,
    chunk_size: int = 8,
) -> dict[str, Any]:
    """PQ of a COCO panoptic prediction, equal to panopticapi's ``pq_compute``.

    Args:
        gt_json, gt_dir: ground-truth JSON and its PNG folder.
        pred_json, pred_dir: prediction JSON and its PNG folder.
        workers: processes reading and scoring image pairs (1: in this process).
        progress: show a tqdm bar.
        chunk_size: image pairs per task sent to a worker.
    Returns:
        :func:`panseg.evaluation.pq.summarize_pq`'s dict plus ``"images"`` and ``"semantic"``
        (mIoU and per-class IoU from the same segments, see :func:`pair_stats`).
    """
    for folder, what in ((gt_dir, "ground-truth"), (pred_dir, "prediction")):
        if not fsio.isdir(folder):
            raise PanopticFormatError(f"{what} segmentation folder {folder!r} does not exist")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    gt = load_json(gt_json, "ground-truth")
    pred = load_json(pred_json, "prediction")
    categories = categories_from_json(gt, gt_json)
    cat_index = category_index(categories)
    pairs = match_annotations(gt, pred)
    stats, confusion = accumulate_pairs(
        pairs, gt_dir, pred_dir, cat_index, workers, progress, chunk_size
    )
    result = summarize_pq(stats, categories)
    result["semantic"] = summarize_semantic(confusion, [c.id for c in categories])
    result["images"] = len(pairs)
    return result


def accumulate_pairs(
    pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    gt_dir: str,
    pred_dir: str,
    cat_index: Mapping[int, int],
    workers: int,
    progress: bool,
    chunk_size: int = 8,
) -> tuple[PQStats, np.ndarray]:
    """Sums of :func:`pair_stats` and of the semantic confusion over image pairs read from two
    folders (in GT order)."""
    from tqdm import tqdm

    k = len(cat_index)
    stats = PQStats.zeros(k)
    confusion = np.zeros((k, k + 1), np.int64)
    chunks = list(_chunks(pairs, chunk_size))
    bar = tqdm(total=len(pairs), unit="img", disable=not progress, desc="PQ")
    try:
        if workers == 1 or len(chunks) <= 1:
            _init_worker(gt_dir, pred_dir, cat_index)
            try:
                for chunk in chunks:
                    part, part_confusion = _chunk_stats(chunk)
                    stats += part
                    confusion += part_confusion
                    bar.update(len(chunk))
            finally:
                _WORKER.clear()
        else:
            import multiprocessing

            with multiprocessing.get_context().Pool(
                min(workers, len(chunks)),
                initializer=_init_worker,
                initargs=(gt_dir, pred_dir, cat_index, fsio.storage_options()),
            ) as pool:
                for chunk, (part, part_confusion) in zip(
                    chunks, pool.imap(_chunk_stats, chunks), strict=True
                ):
                    stats += part
                    confusion += part_confusion
                    bar.update(len(chunk))
    finally:
        bar.close()
    return stats, confusion
