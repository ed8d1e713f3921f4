"""Cityscapes: a reader of the raw download (``gtFine`` + ``leftImg8bit``) or a prepared tree.

Expected tree (the official ``gtFine_trainvaltest.zip`` and ``leftImg8bit_trainvaltest.zip``)::

    ROOT/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    ROOT/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_{instanceIds,labelIds}.png

Images: DeepLab2 ``data/build_cityscapes_data.py`` (commit 64bc1c1, L75-116): the glob
``leftImg8bit/{split}/*/*_leftImg8bit.png`` in ``sorted()`` order of the full path, keyed by
the file name without ``_leftImg8bit.png``; the test split gets no label.

Labels, mode ``raw`` (the default): the panoptic segments are read straight from
``*_gtFine_instanceIds.png`` with the rule of cityscapesScripts'
``preparation/createPanopticImgs.py`` (see :func:`panoptic_segments`), so the records equal
DeepLab2's after ``csCreatePanopticImgs --use-train-id``. The semantic label is built from
``*_gtFine_labelIds.png`` by the encoder.

Labels, mode ``prepared``: what DeepLab2 reads after cityscapesScripts ran: the panoptic JSON
``gtFine/cityscapes_panoptic_{split}_trainId.json`` keyed by ``image_id`` with its PNGs in
``gtFine/cityscapes_panoptic_{split}_trainId/``, or ``*_gtFine_labelTrainIds.png``.

The official split sizes (2975/500/1525) are not required; DeepLab2 refuses any other count.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from panseg import fsio
from panseg.datasets.base import Problem, RawExample, Segment
from panseg.datasets.cityscapes_labels import (
    LABEL_BY_ID,
    LABEL_BY_TRAIN_ID,
    cityscapes_panoptic_info,
    instance_value_label_id,
)
from panseg.datasets.coco import read_rgb_segment_ids
from panseg.datasets.info import DatasetInfo
from panseg.datasets.runs import distinct_values
from panseg.datasets.semantic import RawSemanticExample

CITYSCAPES_SPLITS = ("train", "val", "test")
TASKS = ("panoptic", "semantic")
MODES = ("raw", "prepared")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = {
    ("panoptic", "raw"): "_gtFine_instanceIds.png",
    ("semantic", "raw"): "_gtFine_labelIds.png",
    ("semantic", "prepared"): "_gtFine_labelTrainIds.png",
}
_INSTANCE_MODES = ("I;16", "I;16B", "I;16L", "I", "L")


# ------------------------------------------------------------------------ instanceIds rule
def read_instance_ids(path: str) -> np.ndarray:
    """The values of a ``*_instanceIds.png`` (16-bit grayscale as published).

    Returns:
        ``uint16 (H, W)`` for 8- and 16-bit PNGs, ``int32 (H, W)`` for a 32-bit one.

    Raises:
        ValueError: the file is not a grayscale PNG (names the mode).
        OSError: the file cannot be read or decoded.
    """
    from PIL import Image

    with fsio.open(path, "rb") as f, Image.open(f) as image:
        if image.mode not in _INSTANCE_MODES:
            raise ValueError(f"instanceIds PNG must be 16-bit grayscale, got mode {image.mode}")
        ids = np.asarray(image)
    if ids.dtype == np.int32:
        return ids
    return ids.astype(np.uint16, copy=False)


def instance_values(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of an instanceIds map in ascending order, with their pixel counts.

    Args:
        ids: ``(H, W)`` integer array (``uint8``/``uint16`` take a counting fast path).

    Returns:
        ``(values, counts)``: ``int64 (K,)`` ascending, ``int64 (K,)`` >= 1.
    """
    flat = ids.ravel()
    if ids.dtype in (np.uint8, np.uint16):
        counts = np.bincount(flat)
        values = np.flatnonzero(counts)
        return values.astype(np.int64), counts[values].astype(np.int64)
    values, counts = np.unique(flat, return_counts=True)
    return values.astype(np.int64), counts.astype(np.int64)


def panoptic_segments(
    values: np.ndarray, counts: np.ndarray | None = None, *, keep_ignored: bool = False
) -> tuple[Segment, ...]:
    """The panoptic segments of an instanceIds map, as ``createPanopticImgs.py`` lists them.

    For each distinct value ``v`` in ascending order: the label id is ``v`` when ``v < 1000``
    and ``v // 1000`` otherwise; labels ignored in evaluation (void classes, parking, rail
    track, guard rail, bridge, tunnel, polegroup, caravan, trailer) are left out, so their
    pixels stay void; a value below 1000 of a class with instances is a crowd (group) region.
    ``Segment.id`` is ``v``; ``category_id`` is the label id (an unknown label id is kept, so
    the encoder reports it); ``area`` is the count when ``counts`` is given.
    ``keep_ignored`` keeps the labels ignored in evaluation too (for a class map to decide).
    """
    segments: list[Segment] = []
    for k, value in enumerate(values.tolist()):
        label_id = instance_value_label_id(value)
        label = LABEL_BY_ID.get(label_id) if label_id >= 0 else None
        if label is not None and label.ignore_in_eval and not keep_ignored:
            continue
        crowd = label is not None and label.has_instances and value < 1000
        area = int(counts[k]) if counts is not None else None
        segments.append(Segment(id=value, category_id=label_id, iscrowd=crowd, area=area))
    return tuple(segments)


# ---------------------------------------------------------------------------------- reader
@dataclass(frozen=True)
class CityscapesItem:
    """One image of a split: what workers need to load it (small and picklable)."""

    key: str
    image_path: str
    label_path: str | None
    segments: tuple[Segment, ...] | None = None


@dataclass(frozen=True)
class CityscapesSource:
    """Reads a Cityscapes tree (see the module docstring).

    Args:
        root: the directory holding ``leftImg8bit/`` and ``gtFine/``.
        task: ``panoptic`` (loads :class:`RawExample`) or ``semantic``
            (:class:`RawSemanticExample`).
        mode: ``raw`` or ``prepared``.
        keep_ignored: raw panoptic: list the segments of labels ignored in evaluation too
            (caravan, trailer, parking, ...), for a class map that maps them; the default
            label space leaves them out, as cityscapesScripts does.
    """

    root: str
    task: str = "panoptic"
    mode: str = "raw"
    keep_ignored: bool = False
    name: str = "cityscapes"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    def dataset_info(self) -> DatasetInfo:
        return cityscapes_panoptic_info()

    def item_key(self, item: CityscapesItem) -> str:
        return item.key

    def image_paths(self, split: str) -> list[str]:
        """``leftImg8bit/{split}/*/*_leftImg8bit.png``, sorted by full path."""
        split_dir = fsio.join(self.root, "leftImg8bit", split)
        paths = []
        for city in fsio.listdir(split_dir):
            city_dir = fsio.join(split_dir, city)
            if fsio.isdir(city_dir):
                paths.extend(
                    fsio.join(city_dir, name)
                    for name in fsio.listdir(city_dir)
                    if name.endswith(IMAGE_SUFFIX)
                )
        return sorted(paths)

    def panoptic_json(self, split: str) -> str:
        return fsio.join(self.root, "gtFine", f"cityscapes_panoptic_{split}_trainId.json")

    def list_split(self, split: str) -> tuple[list[CityscapesItem], list[Problem]]:
        """Sorted items of ``split`` and every problem visible without decoding pixels."""
        if split not in CITYSCAPES_SPLITS:
            raise ValueError(f"unknown Cityscapes split {split!r}; expected {CITYSCAPES_SPLITS}")
        image_dir = fsio.join(self.root, "leftImg8bit", split)
        if not fsio.isdir(image_dir):
            return [], [Problem(image_dir, "image directory not found")]
        images = self.image_paths(split)
        keys = [fsio.basename(p)[: -len(IMAGE_SUFFIX)] for p in images]
        if split == "test":
            return [CityscapesItem(k, p, None) for k, p in zip(keys, images, strict=True)], []
        if (self.task, self.mode) == ("panoptic", "prepared"):
            return self._list_prepared_panoptic(split, images, keys)
        suffix = LABEL_SUFFIX[(self.task, self.mode)]
        items: list[CityscapesItem] = []
        problems: list[Problem] = []
        listed: dict[str, set[str]] = {}
        for key, path in zip(keys, images, strict=True):
            city = fsio.basename(fsio.dirname(path))
            label = fsio.join(self.root, "gtFine", split, city, key + suffix)
            if not _is_file(label, listed):
                hint = " (run `panseg prepare cityscapes`)" if self.mode == "prepared" else ""
                problems.append(Problem(label, f"missing label file for {path}{hint}", item=key))
                continue
            items.append(CityscapesItem(key, path, label))
        return items, problems

    def _list_prepared_panoptic(
        self, split: str, images: list[str], keys: list[str]
    ) -> tuple[list[CityscapesItem], list[Problem]]:
        json_path = self.panoptic_json(split)
        problems: list[Problem] = []
        annotations = _read_panoptic_json(json_path, problems)
        png_dir = fsio.join(self.root, "gtFine", f"cityscapes_panoptic_{split}_trainId")
        items: list[CityscapesItem] = []
        listed: dict[str, set[str]] = {}
        for key, path in zip(keys, images, strict=True):
            entry = annotations.get(key)
            if entry is None:
                problems.append(
                    Problem(path, f"no annotation in {fsio.basename(json_path)}", item=key)
                )
                continue
            label = fsio.join(png_dir, entry[0])
            if not _is_file(label, listed):
                problems.append(Problem(label, f"missing label file for {path}", item=key))
                continue
            items.append(CityscapesItem(key, path, label, entry[1]))
        for key in sorted(set(annotations) - set(keys)):
            problems.append(
                Problem(json_path, f"annotation has no image in leftImg8bit/{split}/",
                        where=f"image_id {key}", item=key)
            )
        return items, problems

    def load(self, item: CityscapesItem) -> RawExample | RawSemanticExample:
        image_bytes = fsio.read_bytes(item.image_path)
        if self.task == "semantic":
            label_bytes = None
            if item.label_path is not None:
                label_bytes = fsio.read_bytes(item.label_path)
            return RawSemanticExample(
                item.key, item.image_path, image_bytes, "png", item.label_path or "", label_bytes
            )
        example = RawExample(item.key, item.image_path, image_bytes, "png")
        if item.label_path is None:
            return example
        example.label_path = item.label_path
        if self.mode == "prepared":
            label_path = item.label_path
            example.segments = item.segments
            example.read_ids = lambda: read_rgb_segment_ids(label_path)
            return example
        try:
            ids = read_instance_ids(item.label_path)
        except (OSError, ValueError) as exc:
            message = str(exc)

            def fail() -> np.ndarray:
                raise ValueError(message)

            example.segments, example.read_ids = (), fail
            return example
        example.segments = panoptic_segments(distinct_values(ids), keep_ignored=self.keep_ignored)
        example.read_ids = lambda: ids if ids.dtype == np.int32 else ids.astype(np.uint32)
        return example


def _is_file(path: str, listed: dict[str, set[str]]) -> bool:
    """``os.path.isfile`` locally; for URLs, one listing per directory (cached in ``listed``)
    instead of one request per file."""
    if not fsio.is_url(path):
        return os.path.isfile(path)
    directory = fsio.dirname(path)
    if directory not in listed:
        listed[directory] = set(fsio.listdir(directory)) if fsio.isdir(directory) else set()
    return fsio.basename(path) in listed[directory]


def _read_panoptic_json(
    json_path: str, problems: list[Problem]
) -> dict[str, tuple[str, tuple[Segment, ...]]]:
    """``image_id -> (file_name, segments)``; category ids become label ids (train ids 0..18)."""
    try:
        data = json.loads(fsio.read_bytes(json_path).decode("utf-8"))
    except FileNotFoundError:
        problems.append(Problem(json_path, "panoptic JSON not found (run `panseg prepare "
                                           "cityscapes` or use --source raw)"))
        return {}
    except json.JSONDecodeError as exc:
        problems.append(Problem(json_path, f"not valid JSON: {exc}"))
        return {}
    out: dict[str, tuple[str, tuple[Segment, ...]]] = {}
    for index, ann in enumerate(data.get("annotations", [])):
        image_id = ann.get("image_id")
        if not isinstance(image_id, str) or "file_name" not in ann or "segments_info" not in ann:
            problems.append(Problem(json_path, "annotation lacks image_id, file_name or "
                                               "segments_info", f"#{index}"))
            continue
        if image_id in out:
            problems.append(Problem(json_path, "duplicate image_id", f"image_id {image_id}",
                                    image_id))
            continue
        segments = []
        for seg in ann["segments_info"]:
            where = f"{ann['file_name']} segment {seg.get('id')}"
            try:
                seg_id, train_id = int(seg["id"]), int(seg["category_id"])
                crowd, area = bool(seg.get("iscrowd", 0)), int(seg["area"])
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(Problem(json_path, f"malformed segment ({exc!r})", where,
                                        image_id))
                continue
            label = LABEL_BY_TRAIN_ID.get(train_id)
            if label is None:
                problems.append(Problem(json_path, f"category_id {train_id} is not a train id "
                                                   "0..18", where, image_id))
                continue
            segments.append(Segment(seg_id, label.id, crowd, area))
        out[image_id] = (str(ann["file_name"]), tuple(segments))
    return out
