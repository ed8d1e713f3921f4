"""TF Model Garden's COCO record schema (Panoptic Mask R-CNN, Panoptic FPN, Mask R-CNN).

Reference: ``tensorflow/models`` ``official/vision/data/create_coco_tf_record.py`` (*ccr*)
and ``tfrecord_lib.py``, run with ``--include_masks --include_panoptic_masks``
(``docs/model-garden.md`` has the line references). One Example per image of the image list:

=======================================  =======  ===============================================
key                                      kind     value
=======================================  =======  ===============================================
``image/encoded``                        bytes    the image file's bytes, never re-encoded
``image/format``                         bytes    ``jpg`` (hard-coded, whatever the file is)
``image/filename``                       bytes    ``file_name`` of the ``images[]`` entry
``image/source_id``                      bytes    ``str(image_id)``
``image/key/sha256``                     bytes    lowercase hex SHA-256 of the file bytes
``image/height``, ``image/width``        int64    from the ``images[]`` entry
``image/object/bbox/{xmin,xmax,...}``    float    ``x/W, (x+w)/W, y/H, (y+h)/H``
``image/object/class/label``             int64    category id (COCO: the original id)
``image/object/class/text``              bytes    category name
``image/object/is_crowd``                int64    ``iscrowd``
``image/object/area``                    float    the annotation's ``area``
``image/object/mask``                    bytes    ``--include-masks``: a 0/1 8-bit PNG per object
``image/segmentation/class/encoded``     bytes    8-bit PNG: 0 void, 1 any thing, stuff id - 90
``image/panoptic/category_mask``         bytes    ``--include-panoptic-masks``: category id, 0 void
``image/panoptic/instance_mask``         bytes    ``--include-panoptic-masks``: thing segment's
                                                  index in ``segments_info`` + 1, else 0
=======================================  =======  ===============================================

Objects: an annotation with ``w <= 0`` or ``h <= 0``, or with ``x + w > W`` or ``y + h > H``
(strict, no clipping) is skipped; when all are skipped, or there are none, no
``image/object/*`` key is written. Masks: polygons (``max`` over the polygons) and crowd RLE,
rasterised with pycocotools at the ``images[]`` size. Panoptic masks: segments in
``segments_info`` order; with ``skip_crowd`` (``--panoptic_skip_crowd``) crowd segments stay 0
in all three PNGs; otherwise a crowd thing is an ordinary instance. Pixels of unlisted ids are 0.
All PNGs are written with Pillow's defaults, as *ccr* does, so they match byte for byte.

Differences, on purpose: segment ids are computed in ``uint32`` (*ccr* overflows on numpy 2);
an instance id above 255 is an error naming the file (*ccr* wraps around in ``uint8``); a
non-crowd RLE or a crowd polygon (*ccr* crashes) is decoded as the union of its parts; a
segmentation that pycocotools cannot read, an RLE of the wrong size, a JSON size that differs
from the image or the PNG, and an area that differs from the PNG's pixel count are problems.

With a class map, category ids are the map's train ids (0 must stay void, all ids <= 255),
objects of stuff classes are left out, and stuff is written as ``id - stuff_offset`` where
``stuff_offset`` defaults to the smallest stuff id minus 2 (90 for COCO, *ccr*'s
``_STUFF_CLASSES_OFFSET``), the value to set as ``stuff_classes_offset`` in Model Garden.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from panseg.datasets.base import ItemProblems, Problem, RawExample, Segment
from panseg.datasets.info import DatasetInfo
from panseg.records.deeplab2 import lookup_segments
from panseg.records.example import encode_example
from panseg.records.images import image_size

VOID = 0
THING_SEMANTIC = 1
MAX_U8 = 255


def encode_png_u8(mask: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of ``mask`` (``uint8 (H, W)``), with Pillow's defaults."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Rasterise a COCO segmentation at ``height x width``.

    Args:
        segmentation: polygons (``[[x0, y0, x1, y1, ...], ...]``) or an RLE dict
            (``{"size": [h, w], "counts": list | str}``).

    Returns:
        ``uint8 (H, W)`` with values 0/1 (the union of the parts).

    Raises:
        ValueError: a segmentation pycocotools cannot read, or an RLE of another size.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list) and not segmentation:
        return np.zeros((height, width), dtype=np.uint8)
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        if not isinstance(size, (list, tuple)) or [int(v) for v in size] != [height, width]:
            raise ValueError(f"RLE size {size} differs from the image size [{height}, {width}]")
        if not isinstance(segmentation.get("counts"), (list, str, bytes)):
            raise ValueError("RLE counts must be a list or a string")
    elif not isinstance(segmentation, list):
        raise ValueError(f"segmentation must be polygons or RLE, got {type(segmentation).__name__}")
    try:
        with warnings.catch_warnings():  # pycocotools' __array__ predates numpy 2's copy=
            warnings.simplefilter("ignore", DeprecationWarning)
            rle = mask_utils.frPyObjects(segmentation, height, width)
            mask = mask_utils.decode(rle)
    except Exception as exc:  # pycocotools raises bare Exception / TypeError
        raise ValueError(f"pycocotools cannot read this segmentation ({exc})") from None
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return np.ascontiguousarray(mask, dtype=np.uint8)


_ID_LIMIT = 1 << 24  # COCO panoptic ids are R + 256 G + 65536 B
_index_table: np.ndarray | None = None


def segment_index(
    ids: np.ndarray, segment_ids: np.ndarray, *, unlisted_255: bool = False
) -> np.ndarray:
    """Index of each pixel's id in ``segment_ids``, or ``K`` when it is not listed
    (or 255 on the ``uint8`` path when ``unlisted_255``: one pass less).

    Args:
        ids: ``uint32 (H, W)``.
        segment_ids: ``uint32 (K,)``, distinct.

    Returns:
        ``(H, W)`` indices in ``[0, K]``: ``uint8`` when ``K < 255`` and every id is below
        2**24 (one gather from a per-process 16 MiB table, set and reset per call), else
        ``intp`` from :func:`panseg.records.deeplab2.lookup_segments`.
    """
    global _index_table
    k = len(segment_ids)
    if k >= 255 or (k and int(segment_ids.max()) >= _ID_LIMIT):
        return lookup_segments(ids, segment_ids)
    if _index_table is None:
        _index_table = np.full(_ID_LIMIT + 1, 255, dtype=np.uint8)
    table = _index_table
    table[segment_ids] = np.arange(k, dtype=np.uint8)
    table[_ID_LIMIT] = k
    try:
        index = np.take(table, ids, mode="clip")  # ids >= 2**24 read the last entry: K
    finally:
        table[segment_ids] = 255
    if unlisted_255:
        return index
    index[index == 255] = k
    return index


def panoptic_masks(
    ids: np.ndarray,
    segment_ids: Sequence[int],
    semantic_values: Sequence[int],
    category_values: Sequence[int],
    instance_values: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The three Model Garden masks of a segment-id map, in one pass over the pixels.

    Args:
        ids: ``uint32 (H, W)`` segment ids.
        segment_ids: ``(K,)`` distinct ids; the ``*_values`` give each segment's value in
            ``0..255`` (0 for a segment left void, such as a skipped crowd).

    Returns:
        ``(semantic, category, instance, areas)``: three ``uint8 (H, W)`` maps (0 where the
        id is not listed) and ``int64 (K,)`` pixel counts per segment.

    One index gather (:func:`segment_index`), then one gather of the three values packed in
    a ``uint32``; the reference is :func:`panoptic_masks_reference`.
    """
    seg = np.asarray(segment_ids, dtype=np.uint32)
    k = len(seg)
    index = segment_index(np.asarray(ids, dtype=np.uint32), seg, unlisted_255=True)
    areas = np.bincount(index.ravel(), minlength=k + 1)[:k]
    packed = np.zeros(256 if index.dtype == np.uint8 else k + 1, dtype="<u4")  # rest: void
    for shift, values in enumerate((semantic_values, category_values, instance_values)):
        packed[:k] |= np.asarray(values, dtype=np.uint32) << np.uint32(8 * shift)
    planes = np.take(packed, index).view(np.uint8).reshape(*index.shape, 4)
    return (
        np.ascontiguousarray(planes[..., 0]),
        np.ascontiguousarray(planes[..., 1]),
        np.ascontiguousarray(planes[..., 2]),
        areas,
    )


def panoptic_masks_reference(
    ids: np.ndarray, segments: Sequence[Segment], is_thing: dict[int, bool], *,
    skip_crowd: bool, stuff_offset: int = 90,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slow, obvious oracle: *ccr*'s ``generate_coco_panoptics_masks`` loop, one equality
    mask per segment (``uint8 (H, W)`` semantic, category, instance)."""
    semantic = np.zeros(ids.shape, dtype=np.uint8)
    category = np.zeros(ids.shape, dtype=np.uint8)
    instance = np.zeros(ids.shape, dtype=np.uint8)
    for idx, seg in enumerate(segments):
        if skip_crowd and seg.iscrowd:
            continue
        if is_thing[seg.category_id]:
            sem, inst = THING_SEMANTIC, idx + 1
        else:
            sem, inst = seg.category_id - stuff_offset, 0
        mask = ids == seg.id
        semantic[mask] = sem
        category[mask] = seg.category_id
        instance[mask] = inst
    return semantic, category, instance


@dataclass(frozen=True)
class ObjectLists:
    """The ``image/object/*`` values of one image (kept objects only, in JSON order)."""

    xmin: list[float]
    xmax: list[float]
    ymin: list[float]
    ymax: list[float]
    label: list[int]
    text: list[bytes]
    is_crowd: list[int]
    area: list[float]
    masks: list[bytes]
    skipped_size: int = 0
    skipped_outside: int = 0


@dataclass(frozen=True)
class ModelGardenEncoder:
    """Turns a :class:`~panseg.datasets.coco_instances.CocoInstancesExample` into a Model
    Garden Example (see the module docstring). Picklable.

    Args:
        info: the label space; ``source_ids`` map the segments' and objects' category ids.
        include_masks: write ``image/object/mask``.
        include_panoptic_masks: write the category and instance masks.
        skip_crowd: ``--panoptic-skip-crowd``.
        stuff_offset: stuff semantic value = id - offset; ``None`` = smallest stuff id - 2.
    """

    info: DatasetInfo
    include_masks: bool = False
    include_panoptic_masks: bool = False
    skip_crowd: bool = False
    stuff_offset: int | None = None

    def __post_init__(self) -> None:
        for cls in self.info.classes:
            if cls.id == VOID or cls.id > MAX_U8:
                raise ValueError(
                    f"Model Garden records keep category ids in 1..255 (0 is void): class "
                    f"{cls.name!r} has id {cls.id}; use a class map whose train ids start at 1"
                )
        offset = self.offset
        for cls in self.info.classes:
            if not cls.is_thing and not 2 <= cls.id - offset <= MAX_U8:
                raise ValueError(
                    f"stuff class {cls.name!r} (id {cls.id}) minus the stuff offset {offset} "
                    "must be in 2..255 (0 is void and 1 means any thing)"
                )

    @property
    def offset(self) -> int:
        if self.stuff_offset is not None:
            return self.stuff_offset
        stuff = [c.id for c in self.info.classes if not c.is_thing]
        return min(stuff) - 2 if stuff else 0

    @cached_property
    def _lookup(self) -> dict[int, int]:
        return {src: cls.id for cls in self.info.classes for src in cls.source_ids}

    # ------------------------------------------------------------------ segments
    def segment_values(
        self, segments: Sequence[Segment], *, file: str, key: str
    ) -> tuple[list[int], list[int], list[int], list[Problem]]:
        """Semantic, category and instance value of each segment, and the problems."""
        semantic, category, instance = [], [], []
        problems: list[Problem] = []
        for idx, seg in enumerate(segments):
            cid = self._lookup.get(seg.category_id)
            if cid is None:
                problems.append(
                    Problem(file, f"unknown category_id {seg.category_id}", f"segment {seg.id}", key)
                )
                cid = VOID
            if cid == VOID or (self.skip_crowd and seg.iscrowd):
                semantic.append(VOID), category.append(VOID), instance.append(VOID)
                continue
            if self.info.is_thing(cid):
                inst = idx + 1
                if inst > MAX_U8 and self.include_panoptic_masks:
                    problems.append(
                        Problem(
                            file,
                            f"instance id {inst} (segment index + 1) does not fit Model "
                            "Garden's 8-bit instance mask; at most 255 segments per image",
                            f"segment {seg.id}",
                            key,
                        )
                    )
                    inst = VOID
                semantic.append(THING_SEMANTIC), category.append(cid), instance.append(inst)
            else:
                semantic.append(cid - self.offset), category.append(cid), instance.append(VOID)
        return semantic, category, instance, problems

    def check_listing(self, key: str, segments: Sequence[Segment], file: str) -> list[Problem]:
        return self.segment_values(segments, file=file, key=key)[3]

    # ------------------------------------------------------------------- objects
    def object_lists(
        self, raw: Any, encode_masks: bool = True
    ) -> tuple[ObjectLists, list[Problem]]:
        """The object lists of ``raw`` (``objects`` of a CocoInstancesExample); masks are
        decoded (and checked) always, PNG-encoded only with ``encode_masks``."""
        height, width = raw.height, raw.width
        lists = ObjectLists([], [], [], [], [], [], [], [], [])
        skipped_size = skipped_outside = 0
        problems: list[Problem] = []
        for index, obj in enumerate(raw.objects or ()):
            where = f"object #{index} (category {obj.category_id})"
            x, y, w, h = obj.bbox
            if w <= 0 or h <= 0:
                skipped_size += 1
                continue
            if x + w > width or y + h > height:
                skipped_outside += 1
                continue
            cid = self._lookup.get(obj.category_id)
            if cid is None:
                problems.append(
                    Problem(raw.objects_file, f"unknown category_id {obj.category_id}", where,
                            raw.key)
                )
                continue
            if not self.info.is_thing(cid):
                continue  # a class map sent this category to a stuff class
            if self.include_masks:
                if obj.segmentation is None:
                    problems.append(Problem(raw.objects_file, "no segmentation", where, raw.key))
                    continue
                try:
                    mask = segmentation_to_mask(obj.segmentation, height, width)
                except ValueError as exc:
                    problems.append(Problem(raw.objects_file, str(exc), where, raw.key))
                    continue
                lists.masks.append(encode_png_u8(mask) if encode_masks else b"")
            lists.xmin.append(float(x) / width)
            lists.xmax.append(float(x + w) / width)
            lists.ymin.append(float(y) / height)
            lists.ymax.append(float(y + h) / height)
            lists.label.append(cid)
            lists.text.append(self.info.class_by_id(cid).name.encode("utf-8"))
            lists.is_crowd.append(int(obj.iscrowd))
            lists.area.append(float(obj.area))
        lists = dataclasses.replace(
            lists, skipped_size=skipped_size, skipped_outside=skipped_outside
        )
        return lists, problems

    # ------------------------------------------------------------------- the item
    def _masks(self, raw: Any) -> tuple[dict[str, bytes], list[Problem]]:
        segments = raw.segments
        sem, cat, inst, problems = self.segment_values(
            segments, file=raw.label_path, key=raw.key
        )
        if problems:
            return {}, problems
        try:
            ids = raw.read_ids()
        except (OSError, ValueError) as exc:
            return {}, [Problem(raw.label_path, str(exc), item=raw.key)]
        if ids.shape != (raw.height, raw.width):
            return {}, [
                Problem(
                    raw.label_path,
                    f"PNG size {ids.shape[0]}x{ids.shape[1]} differs from the JSON's image size "
                    f"{raw.height}x{raw.width}",
                    item=raw.key,
                )
            ]
        semantic, category, instance, areas = panoptic_masks(
            ids, [s.id for s in segments], sem, cat, inst
        )
        for seg, area in zip(segments, areas.tolist(), strict=True):
            if seg.area is not None and seg.area != area:
                problems.append(
                    Problem(raw.label_path, f"area {seg.area} in the JSON but {area} pixels in "
                            "the PNG", f"segment {seg.id}", raw.key)
                )
        out = {"image/segmentation/class/encoded": semantic}
        if self.include_panoptic_masks:
            out["image/panoptic/category_mask"] = category
            out["image/panoptic/instance_mask"] = instance
        return out, problems

    def _build(self, raw: Any, encode: bool) -> tuple[bytes, str]:
        problems: list[Problem] = []
        try:
            size = image_size(raw.image_bytes, raw.image_path)
        except ValueError as exc:
            raise ItemProblems([Problem(raw.image_path, str(exc), item=raw.key)]) from None
        if size != (raw.height, raw.width):
            problems.append(
                Problem(raw.image_path, f"image is {size[0]}x{size[1]} but its images[] entry "
                        f"says {raw.height}x{raw.width}", item=raw.key)
            )
        objects = None
        if raw.objects is not None:
            objects, found = self.object_lists(raw, encode_masks=encode)
            problems.extend(found)
        masks: dict[str, Any] = {}
        if raw.segments is not None:
            masks, found = self._masks(raw)
            problems.extend(found)
        if problems:
            raise ItemProblems(problems)
        if not encode:
            return b"", ""
        features: dict[str, Any] = {
            "image/height": raw.height,
            "image/width": raw.width,
            "image/filename": raw.file_name,
            "image/source_id": str(raw.image_id),
            "image/key/sha256": hashlib.sha256(raw.image_bytes).hexdigest(),
            "image/encoded": raw.image_bytes,
            "image/format": "jpg",
        }
        warning = ""
        if objects is not None and objects.label:
            features.update({
                "image/object/bbox/xmin": objects.xmin,
                "image/object/bbox/xmax": objects.xmax,
                "image/object/bbox/ymin": objects.ymin,
                "image/object/bbox/ymax": objects.ymax,
                "image/object/class/text": objects.text,
                "image/object/class/label": objects.label,
                "image/object/is_crowd": objects.is_crowd,
                "image/object/area": objects.area,
            })
            if self.include_masks:
                features["image/object/mask"] = objects.masks
        if objects is not None and (objects.skipped_size or objects.skipped_outside):
            warning = (
                f"{raw.image_path}: skipped {objects.skipped_size + objects.skipped_outside} "
                f"annotation(s) as Model Garden does ({objects.skipped_size} with w or h <= 0, "
                f"{objects.skipped_outside} extending past the image)"
            )
        for name, mask in masks.items():
            features[name] = encode_png_u8(mask)
        return encode_example(features), warning

    def check(self, raw: RawExample) -> list[Problem]:
        try:
            self._build(raw, encode=False)
        except ItemProblems as exc:
            return exc.problems
        return []

    def encode(self, raw: RawExample) -> tuple[bytes, str]:
        """The serialized Example and a warning (skipped annotations) or ``""``.

        Raises:
            ItemProblems: every problem of this item.
        """
        return self._build(raw, encode=True)
