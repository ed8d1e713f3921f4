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
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from panseg.datasets.base import ItemProblems, Problem, RawExample, Segment
from panseg.datasets.info import DatasetInfo
from panseg.records.example import encode_example
from panseg.records.images import image_size
from panseg.records.model_garden_masks import (
    THING_SEMANTIC,
    VOID,
    encode_png_u8,
    panoptic_masks,
    panoptic_masks_reference,
    segment_index,
    segmentation_to_mask,
)

MAX_U8 = 255
__all__ = [
    "DecodedModelGarden", "ModelGardenEncoder", "ObjectLists", "decode_model_garden",
    "encode_png_u8", "panoptic_masks", "panoptic_masks_reference", "segment_index",
    "segmentation_to_mask",
]


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


# ------------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class DecodedModelGarden:
    """A Model Garden Example decoded as Model Garden's decoders do.

    ``image``: ``uint8 (H, W, 3)``; ``boxes``: ``float32 (N, 4)`` as
    ``[ymin, xmin, ymax, xmax]``; ``labels``/``is_crowd``: ``int64 (N,)``; ``areas``:
    ``float32 (N,)``; ``masks``: ``uint8 (N, H, W)`` 0/1; ``semantic``, ``category``,
    ``instance``: ``uint8 (H, W)`` or ``None`` when absent.
    """

    filename: str
    source_id: str
    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    texts: list[str]
    is_crowd: np.ndarray
    areas: np.ndarray
    masks: np.ndarray
    semantic: np.ndarray | None
    category: np.ndarray | None
    instance: np.ndarray | None


def decode_model_garden(data: bytes, where: str = "<record>") -> DecodedModelGarden:
    """Decode a serialized Model Garden Example (``tf_example_decoder.py`` and the panoptic
    decoder: absent object lists are empty, masks are one-channel PNGs)."""
    from PIL import Image

    from panseg.records.example import decode_example

    feats = decode_example(data)

    def values(key: str, dtype) -> np.ndarray:
        return np.asarray(feats[key].values if key in feats else [], dtype=dtype)

    def png(raw: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(raw)) as im:
            return np.asarray(im.convert("L") if im.mode != "L" else im)

    try:
        image_bytes = feats["image/encoded"].one("image/encoded")
        height = feats["image/height"].one("image/height")
        width = feats["image/width"].one("image/width")
    except KeyError as exc:
        raise ValueError(f"{where}: missing feature {exc}") from None
    with Image.open(io.BytesIO(image_bytes)) as im:
        image = np.asarray(im.convert("RGB"))
    boxes = np.stack(
        [values(f"image/object/bbox/{k}", np.float32) for k in ("ymin", "xmin", "ymax", "xmax")],
        axis=-1,
    )
    mask_pngs = feats["image/object/mask"].values if "image/object/mask" in feats else []
    masks = (
        np.stack([png(m) for m in mask_pngs])
        if mask_pngs
        else np.zeros((0, height, width), np.uint8)
    )
    optional = {}
    for key, name in (
        ("image/segmentation/class/encoded", "semantic"),
        ("image/panoptic/category_mask", "category"),
        ("image/panoptic/instance_mask", "instance"),
    ):
        optional[name] = png(feats[key].one(key)) if key in feats else None
    return DecodedModelGarden(
        filename=feats["image/filename"].one().decode("utf-8") if "image/filename" in feats else "",
        source_id=feats["image/source_id"].one().decode("utf-8") if "image/source_id" in feats else "",
        image=image,
        boxes=boxes,
        labels=values("image/object/class/label", np.int64),
        texts=[t.decode("utf-8") for t in feats["image/object/class/text"].values]
        if "image/object/class/text" in feats
        else [],
        is_crowd=values("image/object/is_crowd", np.int64),
        areas=values("image/object/area", np.float32),
        masks=masks,
        **optional,
    )
