"""COCO panoptic: the 133-class label space and a reader of the download tree.

Expected tree (as in DeepLab2's ``g3doc/setup/coco.md``)::

    ROOT/train2017/*.jpg  ROOT/val2017/*.jpg  ROOT/test2017/*.jpg
    ROOT/annotations/panoptic_{train,val}2017.json
    ROOT/annotations/panoptic_{train,val}2017/*.png

Reference behaviour (DeepLab2 ``data/build_coco_data.py``, commit 64bc1c1, L84-140): images
are the glob ``{split}2017/*.jpg`` (lowercase ``.jpg`` only) in ``sorted()`` path order;
annotations are keyed by the stem of the annotation's ``file_name``; the JSON ``images`` and
``categories`` lists are not used; the test split reads no JSON.

Where DeepLab2 aborts on the first problem (a JPEG without annotation, a duplicate
``image_id``) or silently ignores one (an annotation without image), this reader reports
every problem it can see in the JSON, naming the file and the segment.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from panseg import fsio
from panseg.datasets.base import Problem, RawExample, Segment
from panseg.datasets.info import ClassInfo, DatasetInfo

COCO_SPLITS = ("train", "val", "test")
COCO_LABEL_DIVISOR = 256
COCO_IGNORE_LABEL = 0


@lru_cache(maxsize=1)
def coco_categories() -> tuple[dict, ...]:
    """The 133 COCO panoptic categories (id, name, isthing, color, supercategory), by id.

    Facts from panopticapi's ``panoptic_coco_categories.json``.
    """
    text = resources.files("panseg.datasets").joinpath("data/coco_panoptic_categories.json")
    return tuple(json.loads(text.read_text()))


@lru_cache(maxsize=1)
def coco_panoptic_info() -> DatasetInfo:
    """DeepLab2's COCO label space: contiguous ids 1..133 in ascending original id.

    Things (original ids 1..90, 80 of them) become 1..80 and stuff (92..200, 53) 81..133;
    0 is void and the ignore label; label divisor 256; 134 semantic logits
    (DeepLab2 ``data/coco_constants.py`` L828-857 and ``data/dataset.py`` L296-309).
    """
    classes = tuple(
        ClassInfo(
            id=index,
            name=cat["name"],
            is_thing=bool(cat["isthing"]),
            color=tuple(cat["color"]),
            source_ids=(cat["id"],),
        )
        for index, cat in enumerate(coco_categories(), start=1)
    )
    return DatasetInfo(
        name="coco_panoptic",
        classes=classes,
        ignore_label=COCO_IGNORE_LABEL,
        label_divisor=COCO_LABEL_DIVISOR,
        num_classes=len(classes) + 1,
    )


@dataclass(frozen=True)
class CocoItem:
    """One image of a split: what workers need to load it (small and picklable)."""

    key: str
    image_path: str
    label_path: str | None
    segments: tuple[Segment, ...] | None


@dataclass(frozen=True)
class CocoPanopticSource:
    """Reads a COCO panoptic download tree (see the module docstring)."""

    root: str
    name: str = "coco"

    def dataset_info(self) -> DatasetInfo:
        return coco_panoptic_info()

    def item_key(self, item: CocoItem) -> str:
        return item.key

    def annotation_json(self, split: str) -> str:
        return fsio.join(self.root, "annotations", f"panoptic_{split}2017.json")

    def list_split(self, split: str) -> tuple[list[CocoItem], list[Problem]]:
        """Sorted items of ``split`` and every problem visible without decoding pixels."""
        if split not in COCO_SPLITS:
            raise ValueError(f"unknown COCO split {split!r}; expected one of {COCO_SPLITS}")
        image_dir = fsio.join(self.root, f"{split}2017")
        if not fsio.isdir(image_dir):
            return [], [Problem(image_dir, "image directory not found")]
        images = sorted(
            fsio.join(image_dir, name) for name in fsio.listdir(image_dir) if name.endswith(".jpg")
        )
        if split == "test":
            return [CocoItem(_stem(p), p, None, None) for p in images], []

        json_path = self.annotation_json(split)
        problems: list[Problem] = []
        annotations = _read_annotations(json_path, problems)
        png_dir = fsio.join(self.root, "annotations", f"panoptic_{split}2017")
        items: list[CocoItem] = []
        image_stems = set()
        for path in images:
            stem = _stem(path)
            image_stems.add(stem)
            entry = annotations.get(stem)
            if entry is None:
                problems.append(
                    Problem(path, f"no annotation in {fsio.basename(json_path)}", item=stem)
                )
                continue
            items.append(
                CocoItem(stem, path, fsio.join(png_dir, entry["file_name"]), entry["segments"])
            )
        for stem in sorted(set(annotations) - image_stems):
            problems.append(
                Problem(
                    json_path,
                    f"annotation has no image {stem}.jpg in {split}2017/",
                    where=f"file_name {annotations[stem]['file_name']}",
                    item=stem,
                )
            )
        return items, problems

    def load(self, item: CocoItem) -> RawExample:
        image_bytes = fsio.read_bytes(item.image_path)
        read_ids = None
        if item.label_path is not None:
            read_ids = functools.partial(read_rgb_segment_ids, item.label_path)
        return RawExample(
            key=item.key,
            image_path=item.image_path,
            image_bytes=image_bytes,
            image_format="jpeg",
            segments=item.segments,
            label_path=item.label_path or "",
            read_ids=read_ids,
        )


def read_rgb_segment_ids(path: str) -> np.ndarray:
    """Segment ids of a COCO panoptic PNG: ``R + 256 G + 65536 B``.

    Returns:
        ``uint32`` array of shape ``(H, W)`` with values in ``[0, 2**24)``.

    Raises:
        ValueError: the PNG is not an RGB image (DeepLab2 rejects RGBA too, L165-167).
    """
    from PIL import Image

    with fsio.open(path, "rb") as f, Image.open(f) as image:
        if image.mode != "RGB":
            raise ValueError(f"panoptic PNG must be RGB, got mode {image.mode}")
        width, height = image.size
        # Packed as RGBX, each pixel is one little-endian uint32 R + 256 G + 65536 B + X * 2**24.
        packed = np.frombuffer(image.tobytes("raw", "RGBX"), dtype="<u4").reshape(height, width)
    return packed & np.uint32(0xFFFFFF)


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """``uint8 (H, W, 3)`` -> ``uint32 (H, W)``: ``R + 256 G + 65536 B``."""
    ids = rgb[..., 2].astype(np.uint32)
    ids <<= 8
    ids |= rgb[..., 1]
    ids <<= 8
    ids |= rgb[..., 0]
    return ids


def _stem(path: str) -> str:
    return os.path.splitext(fsio.basename(path))[0]


def _read_annotations(json_path: str, problems: list[Problem]) -> dict[str, dict]:
    """Annotations keyed by ``file_name`` stem, with JSON-level checks.

    Checks that depend on the label space (unknown category, crowd stuff, instances per
    class) belong to the encoder, which knows the class map.
    """
    try:
        data = json.loads(fsio.read_bytes(json_path).decode("utf-8"))
    except FileNotFoundError:
        problems.append(Problem(json_path, "annotation JSON not found"))
        return {}
    except json.JSONDecodeError as exc:
        problems.append(Problem(json_path, f"not valid JSON: {exc}"))
        return {}
    out: dict[str, dict] = {}
    image_ids: Counter = Counter()
    for index, ann in enumerate(data.get("annotations", [])):
        file_name = ann.get("file_name")
        if not isinstance(file_name, str) or "segments_info" not in ann:
            problems.append(
                Problem(json_path, "annotation lacks file_name or segments_info", f"#{index}")
            )
            continue
        stem = _stem(file_name)
        image_ids[ann.get("image_id")] += 1
        if image_ids[ann.get("image_id")] == 2:
            problems.append(
                Problem(json_path, "duplicate image_id", f"image_id {ann.get('image_id')}", stem)
            )
        segments = parse_segments(ann, json_path, stem, problems)
        out[stem] = {"file_name": file_name, "segments": segments}
    return out


def parse_segments(ann: dict, path: str, key: str, problems: list[Problem]) -> tuple[Segment, ...]:
    """The ``segments_info`` of one COCO panoptic annotation, in JSON order.

    Malformed entries are left out; they, duplicate segment ids and ids outside
    ``1..2**24-1`` are appended to ``problems``, naming ``path``, the PNG and the segment.
    """
    segments: list[Segment] = []
    seen: set[int] = set()
    for seg in ann["segments_info"]:
        where = f"{ann['file_name']} segment {seg.get('id')}"
        try:
            segment = Segment(
                id=int(seg["id"]),
                category_id=int(seg["category_id"]),
                iscrowd=bool(seg.get("iscrowd", 0)),
                area=int(seg["area"]) if "area" in seg else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(Problem(path, f"malformed segment ({exc!r})", where, key))
            continue
        if segment.id in seen:
            problems.append(Problem(path, "duplicate segment id", where, key))
        seen.add(segment.id)
        if not 0 < segment.id < 1 << 24:
            problems.append(Problem(path, "segment id outside 1..2**24-1", where, key))
        segments.append(segment)
    return tuple(segments)
