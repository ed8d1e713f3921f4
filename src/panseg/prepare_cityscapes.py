"""``panseg prepare cityscapes``: the files cityscapesScripts' preparation tools write.

For users of tools that read them (DeepLab2, detectron2, panopticapi):

* ``*_gtFine_labelTrainIds.png`` beside each ``*_gtFine_labelIds.png``: the train id of each
  pixel (:func:`train_id_label`). cityscapesScripts' ``csCreateTrainIdLabelImgs`` draws it from
  ``*_polygons.json`` (``json2labelImg(..., "trainIds")``); panseg maps the label ids drawn
  from the same polygons, which gives the same pixels (each polygon fills one value of its
  label, so the last one drawn wins in both), saved as PIL saves a new ``L`` image, as
  ``json2labelImg`` does.
* ``gtFine/cityscapes_panoptic_{split}[_trainId].json`` and the PNGs in
  ``gtFine/cityscapes_panoptic_{split}[_trainId]/``: ``csCreatePanopticImgs [--use-train-id]``
  (``preparation/createPanopticImgs.py``, :func:`panoptic_annotation`): for each
  ``gtFine/{split}/*/*_instanceIds.png`` in sorted order, the segments of
  :func:`panseg.datasets.cityscapes.panoptic_segments` with area and bounding box
  ``[x, y, width, height]``, the PNG colored ``[v % 256, v // 256, v // 65536]`` where a
  segment is kept and black elsewhere; the JSON written with ``sort_keys=True, indent=4``.
  Its ``images[].file_name`` is ``{stem}_gtFine_leftImg8bit.png``, cityscapesScripts' own
  (``fileName.replace("_instanceIds.png", "_leftImg8bit.png")``), kept for identical files;
  no image has that name.

Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from panseg import fsio
from panseg.datasets.cityscapes import instance_values, panoptic_segments, read_instance_ids
from panseg.datasets.cityscapes_labels import (
    CITYSCAPES_LABELS,
    LABEL_BY_ID,
    label_id_to_train_id_lut,
)
from panseg.records.deeplab2_semantic import encode_label_png, map_label_png
from panseg.records.deeplab2_small_ids import SMALL_ID_LIMIT

ID_KINDS = ("train", "label")


def train_id_label(label_ids: np.ndarray, path: str = "<labelIds>") -> np.ndarray:
    """``uint8 (H, W)`` label ids 0..33 -> ``uint8 (H, W)`` train ids (0..18, 255).

    Raises:
        ValueError: a value is not a Cityscapes label id (names ``path`` and the values).
    """
    lut = label_id_to_train_id_lut()
    present = np.flatnonzero(np.bincount(label_ids.ravel(), minlength=256))
    unknown = [int(v) for v in present if lut[v] < 0]
    if unknown:
        raise ValueError(f"{path}: unknown Cityscapes label id(s) {unknown}")
    return map_label_png(label_ids, lut)


def panoptic_categories(use_train_id: bool) -> list[dict]:
    """The JSON ``categories``: labels not ignored in evaluation, in table order."""
    return [
        {
            "id": label.train_id if use_train_id else label.id,
            "name": label.name,
            "color": list(label.color),
            "supercategory": label.category,
            "isthing": 1 if label.has_instances else 0,
        }
        for label in CITYSCAPES_LABELS
        if not label.ignore_in_eval
    ]


def panoptic_annotation(
    ids: np.ndarray, use_train_id: bool, path: str = "<instanceIds>"
) -> tuple[np.ndarray, list[dict]]:
    """The panoptic PNG pixels and ``segments_info`` of one instanceIds map.

    Args:
        ids: ``(H, W)`` instanceIds values (``uint16``; ``int32`` accepted), in ``[0, 2**16)``.
        use_train_id: ``category_id`` is the train id (else the label id).

    Returns:
        ``(rgb, segments_info)``: ``uint8 (H, W, 3)`` and the JSON segment dicts.

    Raises:
        ValueError: a value outside ``[0, 2**16)`` or of an unknown label id.
    """
    values, counts = instance_values(ids)
    if len(values) and (values[0] < 0 or values[-1] >= SMALL_ID_LIMIT):
        raise ValueError(f"{path}: instanceIds values must lie in [0, {SMALL_ID_LIMIT})")
    segments = panoptic_segments(values, counts)
    unknown = sorted({s.category_id for s in segments if s.category_id not in LABEL_BY_ID})
    if unknown:
        raise ValueError(f"{path}: unknown Cityscapes label id(s) {unknown}")
    k = len(segments)
    kept = np.array([s.id for s in segments], dtype=np.int64)
    index_table = np.full(SMALL_ID_LIMIT + 1, k, dtype=np.int32)
    index_table[kept] = np.arange(k, dtype=np.int32)
    index = np.take(index_table, ids, mode="clip")
    h, w = index.shape
    # Which segments touch each column and each row: one count over (segment, column) pairs.
    wide = index.astype(np.int64)
    columns = np.bincount((wide * w + np.arange(w)).ravel(),
                          minlength=(k + 1) * w).reshape(k + 1, w)[:k] > 0
    rows = np.bincount((wide * h + np.arange(h)[:, None]).ravel(),
                       minlength=(k + 1) * h).reshape(k + 1, h)[:k] > 0
    info = []
    for j, seg in enumerate(segments):
        label = LABEL_BY_ID[seg.category_id]
        xs, ys = np.flatnonzero(columns[j]), np.flatnonzero(rows[j])
        info.append(
            {
                "id": int(seg.id),
                "category_id": int(label.train_id if use_train_id else label.id),
                "area": int(seg.area or 0),
                "bbox": [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1),
                         int(ys[-1] - ys[0] + 1)],
                "iscrowd": 1 if seg.iscrowd else 0,
            }
        )
    colors = np.zeros((k + 1, 3), dtype=np.uint8)
    colors[:k, 0] = kept % 256
    colors[:k, 1] = kept // 256
    colors[:k, 2] = kept // 65536
    return np.take(colors, index, axis=0), info


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def _prepare_one(task: tuple[str, str, tuple[str, ...], str]) -> dict:
    """Write the files of one image; returns its JSON entries per id kind."""
    from PIL import Image

    instance_path, out_dir, kinds, split = task
    gt_dir = os.path.dirname(instance_path)
    stem = os.path.basename(instance_path)[: -len("_gtFine_instanceIds.png")]
    city = os.path.basename(gt_dir)
    out: dict = {"stem": stem}
    label_path = os.path.join(gt_dir, f"{stem}_gtFine_labelIds.png")
    if os.path.isfile(label_path):
        with Image.open(label_path) as image:
            if image.mode != "L":
                raise ValueError(f"{label_path}: labelIds PNG must be mode L, got {image.mode}")
            train = train_id_label(np.asarray(image), label_path)
        target = os.path.join(out_dir, split, city, f"{stem}_gtFine_labelTrainIds.png")
        fsio.makedirs(os.path.dirname(target))
        fsio.write_bytes_atomic(target, encode_label_png(train))
    ids = read_instance_ids(instance_path)
    out["height"], out["width"] = ids.shape
    for kind in kinds:
        rgb, info = panoptic_annotation(ids, kind == "train", instance_path)
        folder = os.path.join(out_dir, _panoptic_base(split, kind))
        fsio.write_bytes_atomic(os.path.join(folder, f"{stem}_gtFine_panoptic.png"),
                                _png_bytes(rgb))
        out[kind] = info
    return out


def _panoptic_base(split: str, kind: str) -> str:
    return f"cityscapes_panoptic_{split}" + ("_trainId" if kind == "train" else "")


def prepare_cityscapes(
    root: str,
    *,
    out: str | None = None,
    splits: Sequence[str] = ("train", "val", "test"),
    kinds: Sequence[str] = ("train",),
    workers: int = 1,
    progress: bool = True,
) -> dict[str, int]:
    """Write the prepared files for ``splits`` under ``out/gtFine`` (default ``root/gtFine``).

    Args:
        kinds: ``train`` writes ``cityscapes_panoptic_{split}_trainId*`` (what DeepLab2
            reads), ``label`` the label-id version (what the evaluation server uses).

    Returns:
        The number of instanceIds files per split.

    Raises:
        FileNotFoundError: a split has no ``*_instanceIds.png``.
        ValueError: a file holds an unknown label id (names the file).
    """
    from tqdm import tqdm

    for kind in kinds:
        if kind not in ID_KINDS:
            raise ValueError(f"id kind must be one of {ID_KINDS}, got {kind!r}")
    gt_root = os.path.join(root, "gtFine")
    out_dir = os.path.join(out or root, "gtFine")
    counts: dict[str, int] = {}
    for split in splits:
        split_dir = os.path.join(gt_root, split)
        files = sorted(
            os.path.join(split_dir, city, name)
            for city in (os.listdir(split_dir) if os.path.isdir(split_dir) else [])
            if os.path.isdir(os.path.join(split_dir, city))
            for name in os.listdir(os.path.join(split_dir, city))
            if name.endswith("_gtFine_instanceIds.png")
        )
        if not files:
            raise FileNotFoundError(f"{split_dir}: no */*_gtFine_instanceIds.png found")
        for kind in kinds:
            fsio.makedirs(os.path.join(out_dir, _panoptic_base(split, kind)))
        tasks = [(f, out_dir, tuple(kinds), split) for f in files]
        bar = tqdm(total=len(tasks), desc=f"prepare {split}", unit="img", disable=not progress)
        results = []
        if workers <= 1:
            for task in tasks:
                results.append(_prepare_one(task))
                bar.update()
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                for result in pool.map(_prepare_one, tasks, chunksize=4):
                    results.append(result)
                    bar.update()
        bar.close()
        for kind in kinds:
            document = {
                "images": [
                    {"id": r["stem"], "width": int(r["width"]), "height": int(r["height"]),
                     "file_name": f"{r['stem']}_gtFine_leftImg8bit.png"}
                    for r in results
                ],
                "annotations": [
                    {"image_id": r["stem"], "file_name": f"{r['stem']}_gtFine_panoptic.png",
                     "segments_info": r[kind]}
                    for r in results
                ],
                "categories": panoptic_categories(kind == "train"),
            }
            text = json.dumps(document, sort_keys=True, indent=4)
            fsio.write_bytes_atomic(
                os.path.join(out_dir, _panoptic_base(split, kind) + ".json"), text.encode()
            )
        counts[split] = len(files)
    return counts
