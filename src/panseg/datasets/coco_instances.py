"""COCO with instance *and* panoptic annotations, listed the way TF Model Garden lists it.

Reference: ``tensorflow/models`` ``official/vision/data/create_coco_tf_record.py`` (*ccr*) as
run by ``process_coco_panoptic.sh`` (see ``docs/model-garden.md``):

* the image list is ``images[]`` of the instances JSON, **in JSON order** (it decides the
  round-robin shard of each image); the test split reads ``image_info_test2017.json``;
* objects are that image's annotations in the instances JSON, in JSON order;
* the panoptic annotation is joined by ``image_id`` (not by file name);
* image height and width come from the ``images[]`` entry.

Expected tree::

    ROOT/{split}2017/<file_name>
    ROOT/annotations/instances_{split}2017.json           (or --instances-json, with {split})
    ROOT/annotations/panoptic_{split}2017.json  ROOT/annotations/panoptic_{split}2017/*.png
    ROOT/annotations/image_info_test2017.json             (test split: images only)

Unlike *ccr*, an image without a panoptic annotation is a problem (Model Garden writes an
Example without ``image/segmentation/class/encoded`` that its panoptic decoder cannot decode),
an annotation whose ``image_id`` is not in ``images[]`` is a problem (mismatched JSON files),
and the panoptic JSON's ``isthing`` must agree with the label space.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from panseg import fsio
from panseg.datasets.base import Problem, RawExample, Segment
from panseg.datasets.classmap import SourceCategory, dataset_categories
from panseg.datasets.coco import coco_categories, parse_segments, read_rgb_segment_ids
from panseg.datasets.info import ClassInfo, DatasetInfo

SPLITS = ("train", "val", "test")
MODEL_GARDEN_NUM_CATEGORIES = 201  # official/projects/panoptic/configs: ids 0..200


@lru_cache(maxsize=1)
def coco_model_garden_info() -> DatasetInfo:
    """Model Garden's COCO label space: the **original** category ids (things 1..90, stuff
    92..200), 0 void and ignore, 201 categories (``num_panoptic_categories``), divisor 256
    (the instance mask is 8-bit)."""
    return DatasetInfo(
        name="coco_model_garden",
        classes=tuple(
            ClassInfo(c["id"], c["name"], bool(c["isthing"]), tuple(c["color"]), (c["id"],))
            for c in coco_categories()
        ),
        ignore_label=0,
        label_divisor=256,
        num_classes=MODEL_GARDEN_NUM_CATEGORIES,
    )


@dataclass(frozen=True)
class CocoObject:
    """One instances-JSON annotation: ``bbox`` is ``(x, y, w, h)`` in pixels as written;
    ``segmentation`` is the JSON value (polygon list, RLE dict) or ``None``."""

    category_id: int
    bbox: tuple[float, float, float, float]
    area: float
    iscrowd: int
    segmentation: Any = None


@dataclass
class CocoInstancesExample(RawExample):
    """A :class:`RawExample` plus what the Model Garden schema needs from the JSONs."""

    image_id: int | str = 0
    file_name: str = ""
    height: int = 0
    width: int = 0
    objects: tuple[CocoObject, ...] | None = None
    objects_file: str = ""


@dataclass(frozen=True)
class InstancesItem:
    key: str
    image_id: int | str
    image_path: str
    height: int
    width: int
    objects: tuple[CocoObject, ...] | None
    objects_file: str
    label_path: str | None
    segments: tuple[Segment, ...] | None


@dataclass(frozen=True)
class CocoInstancesSource:
    """Reads the tree of the module docstring; ``instances_json`` may contain ``{split}``."""

    root: str
    instances_json: str = ""
    categories: tuple[SourceCategory, ...] = field(
        default_factory=lambda: dataset_categories("coco")
    )
    name: str = "coco"

    def dataset_info(self) -> DatasetInfo:
        return coco_model_garden_info()

    def item_key(self, item: InstancesItem) -> str:
        return item.key

    def instances_path(self, split: str) -> str:
        if split == "test":
            return fsio.join(self.root, "annotations", "image_info_test2017.json")
        pattern = self.instances_json or fsio.join(
            self.root, "annotations", "instances_{split}2017.json"
        )
        return pattern.replace("{split}", split)

    def list_split(self, split: str) -> tuple[list[InstancesItem], list[Problem]]:
        if split not in SPLITS:
            raise ValueError(f"unknown COCO split {split!r}; expected one of {SPLITS}")
        problems: list[Problem] = []
        inst_path = self.instances_path(split)
        data = _read_json(inst_path, problems)
        if data is None:
            return [], problems
        image_dir = fsio.join(self.root, f"{split}2017")
        images = _images(data, inst_path, problems)
        objects = None if split == "test" else _objects(data, inst_path, images, problems)
        panoptic: dict = {}
        png_dir = ""
        if split != "test":
            pan_path = fsio.join(self.root, "annotations", f"panoptic_{split}2017.json")
            png_dir = fsio.join(self.root, "annotations", f"panoptic_{split}2017")
            pan = _read_json(pan_path, problems)
            if pan is None:
                return [], problems
            self._check_categories(pan, pan_path, problems)
            panoptic = _panoptic(pan, pan_path, images, problems)
        items = []
        for image_id, entry in images.items():
            key = entry["file_name"]
            label_path = segments = None
            if split != "test":
                ann = panoptic.get(image_id)
                if ann is None:
                    problems.append(
                        Problem(
                            inst_path,
                            "image has no panoptic annotation (Model Garden's panoptic decoder "
                            "needs image/segmentation/class/encoded)",
                            f"image_id {image_id}",
                            key,
                        )
                    )
                    continue
                label_path = fsio.join(png_dir, ann["file_name"])
                segments = ann["segments"]
            items.append(
                InstancesItem(
                    key=key,
                    image_id=image_id,
                    image_path=fsio.join(image_dir, key),
                    height=entry["height"],
                    width=entry["width"],
                    objects=None if objects is None else tuple(objects.get(image_id, ())),
                    objects_file=inst_path,
                    label_path=label_path,
                    segments=segments,
                )
            )
        return items, problems

    def _check_categories(self, pan: dict, path: str, problems: list[Problem]) -> None:
        expected = {c.id: c for c in self.categories}
        for cat in pan.get("categories", []) or []:
            known = expected.get(cat.get("id"))
            if known is None:
                problems.append(
                    Problem(path, f"category {cat.get('id')} ({cat.get('name')!r}) is not in "
                            "the label space's source categories", "categories")
                )
            elif bool(cat.get("isthing")) != known.is_thing:
                problems.append(
                    Problem(path, f"category {known.id} ({known.name!r}): isthing "
                            f"{cat.get('isthing')} disagrees with the label space", "categories")
                )

    def load(self, item: InstancesItem) -> CocoInstancesExample:
        image_bytes = fsio.read_bytes(item.image_path)
        read_ids = None
        if item.label_path is not None:
            read_ids = functools.partial(read_rgb_segment_ids, item.label_path)
        return CocoInstancesExample(
            key=item.key,
            image_path=item.image_path,
            image_bytes=image_bytes,
            image_format="jpg",
            segments=item.segments,
            label_path=item.label_path or "",
            read_ids=read_ids,
            image_id=item.image_id,
            file_name=item.key,
            height=item.height,
            width=item.width,
            objects=item.objects,
            objects_file=item.objects_file,
        )


# --------------------------------------------------------------------------- JSON parsing
def _read_json(path: str, problems: list[Problem]) -> dict | None:
    try:
        data = json.loads(fsio.read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        problems.append(Problem(path, "annotation JSON not found"))
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(Problem(path, f"not valid JSON: {exc}"))
        return None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        problems.append(Problem(path, "JSON has no images list"))
        return None
    return data


def _images(data: dict, path: str, problems: list[Problem]) -> dict[Any, dict]:
    out: dict[Any, dict] = {}
    for index, image in enumerate(data["images"]):
        try:
            entry = {
                "file_name": str(image["file_name"]),
                "height": int(image["height"]),
                "width": int(image["width"]),
            }
            image_id = image["id"]
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(Problem(path, f"malformed image entry ({exc!r})", f"images[{index}]"))
            continue
        if entry["height"] < 1 or entry["width"] < 1:
            problems.append(
                Problem(path, "height and width must be >= 1", f"image_id {image_id}",
                        entry["file_name"])
            )
            continue
        if image_id in out:
            problems.append(Problem(path, "duplicate image id", f"image_id {image_id}"))
            continue
        out[image_id] = entry
    return out


def _objects(
    data: dict, path: str, images: dict, problems: list[Problem]
) -> dict[Any, list[CocoObject]]:
    names = {c.get("id"): c.get("name") for c in data.get("categories", []) or []}
    out: dict[Any, list[CocoObject]] = {}
    for index, ann in enumerate(data.get("annotations", []) or []):
        where = f"annotations[{index}] (id {ann.get('id')})"
        image_id = ann.get("image_id")
        if image_id not in images:
            problems.append(Problem(path, f"image_id {image_id!r} is not in images[]", where))
            continue
        key = images[image_id]["file_name"]
        try:
            bbox = tuple(float(v) for v in ann["bbox"])
            if len(bbox) != 4:
                raise ValueError(f"bbox has {len(bbox)} values")
            obj = CocoObject(
                category_id=int(ann["category_id"]),
                bbox=bbox,  # type: ignore[arg-type]
                area=float(ann.get("area", 0.0)),
                iscrowd=int(ann.get("iscrowd", 0)),
                segmentation=ann.get("segmentation"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(Problem(path, f"malformed annotation ({exc!r})", where, key))
            continue
        if obj.category_id not in names:
            problems.append(
                Problem(path, f"category_id {obj.category_id} is not in categories[]", where, key)
            )
            continue
        out.setdefault(image_id, []).append(obj)
    return out


def _panoptic(
    data: dict, path: str, images: dict, problems: list[Problem]
) -> dict[Any, dict]:
    out: dict[Any, dict] = {}
    for index, ann in enumerate(data.get("annotations", []) or []):
        image_id = ann.get("image_id")
        file_name = ann.get("file_name")
        if not isinstance(file_name, str) or "segments_info" not in ann:
            problems.append(
                Problem(path, "annotation lacks file_name or segments_info", f"#{index}")
            )
            continue
        if image_id not in images:
            problems.append(
                Problem(path, f"image_id {image_id!r} is not in the instances JSON's images[]",
                        f"file_name {file_name}")
            )
            continue
        key = images[image_id]["file_name"]
        if image_id in out:
            problems.append(Problem(path, "duplicate image_id", f"image_id {image_id}", key))
            continue
        out[image_id] = {"file_name": file_name, "segments": parse_segments(ann, path, key, problems)}
    return out


def source_categories_of(categories: Sequence[dict]) -> tuple[SourceCategory, ...]:
    """``SourceCategory`` s from a COCO-style ``categories[]`` list (``id``, ``name``,
    ``isthing``)."""
    return tuple(
        SourceCategory(int(c["id"]), str(c["name"]), bool(c.get("isthing"))) for c in categories
    )
