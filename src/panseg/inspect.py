"""Summaries and overlay pictures of record shards, DeepLab2 or Model Garden (no TensorFlow).

The schema and the dataset facts come from the manifest beside the shards; shards without
one are read as DeepLab2's COCO panoptic records. A Model Garden example is shown through its
panoptic masks, as ``category * 256 + instance`` (original COCO category ids).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from panseg import fsio
from panseg.datasets.info import DatasetInfo


@dataclass
class ShardSummary:
    info: DatasetInfo
    shard_counts: dict[str, int] = field(default_factory=dict)
    keys: dict[str, set[str]] = field(default_factory=dict)
    formats: Counter = field(default_factory=Counter)
    class_pixels: Counter = field(default_factory=Counter)
    class_images: Counter = field(default_factory=Counter)
    instances: Counter = field(default_factory=Counter)
    overlays: list[str] = field(default_factory=list)

    @property
    def num_examples(self) -> int:
        return sum(self.shard_counts.values())


def schema_and_info_for(shard: str) -> tuple[str, DatasetInfo]:
    """Schema and facts from the manifest beside ``shard``; DeepLab2 COCO when none."""
    from panseg.datasets.coco import coco_panoptic_info
    from panseg.records.manifest import load_manifest

    directory = os.path.dirname(shard) or "."
    if fsio.exists(fsio.join(directory, "manifest.json")):
        manifest = load_manifest(directory)
        return manifest.schema, manifest.dataset
    return "deeplab2", coco_panoptic_info()


def panoptic_view(
    data: bytes, schema: str, info: DatasetInfo, where: str
) -> tuple[str, np.ndarray, np.ndarray | None]:
    """``(filename, image uint8 (H, W, 3), panoptic int (H, W) or None)`` of one record."""
    if schema == "model-garden":
        from panseg.records.model_garden import decode_model_garden

        mg = decode_model_garden(data, where=where)
        if mg.category is None:
            return mg.filename, mg.image, None
        instance = mg.instance if mg.instance is not None else np.zeros_like(mg.category)
        panoptic = mg.category.astype(np.int64) * info.label_divisor + instance
        return mg.filename, mg.image, panoptic
    from panseg.records.deeplab2 import decode_deeplab2

    decoded = decode_deeplab2(data, where=where)
    label = decoded.label
    if label is not None and decoded.label_format == "png":  # a semantic label: no instances
        label = label.astype(np.int64) * info.label_divisor
    return decoded.filename, decoded.image, label


def inspect_shards(pattern: str, *, show: int = 0, out_dir: str | None = None) -> ShardSummary:
    """Read every example of the shards matching ``pattern``; write ``show`` overlays."""
    from PIL import Image

    from panseg.records.example import decode_example
    from panseg.records.tfrecord import iter_records
    from panseg.viz.overlay import overlay, side_by_side

    shards = fsio.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]
    shards = [s for s in shards if fsio.exists(s)]
    if not shards:
        raise FileNotFoundError(f"{pattern}: no shard matches")
    schema, info = schema_and_info_for(shards[0])
    summary = ShardSummary(info=info)
    info = summary.info
    if out_dir:
        fsio.makedirs(out_dir)
    for shard in shards:
        count = 0
        with fsio.open(shard, "rb") as f:
            for index, data in enumerate(iter_records(f, shard)):
                count += 1
                feats = decode_example(data)
                for key, value in feats.items():
                    summary.keys.setdefault(key, set()).add(value.kind)
                summary.formats[_formats(feats)] += 1
                filename, image, panoptic = panoptic_view(
                    data, schema, info, where=f"{shard} record {index}"
                )
                if panoptic is None:
                    continue
                values, counts = np.unique(panoptic, return_counts=True)
                semantic = values // info.label_divisor
                for class_id in np.unique(semantic).tolist():
                    summary.class_images[class_id] += 1
                for class_id, pixels in zip(semantic.tolist(), counts.tolist(), strict=True):
                    summary.class_pixels[class_id] += pixels
                thing = np.isin(semantic, list(info.thing_ids)) & (values % info.label_divisor > 0)
                summary.instances[int(thing.sum())] += 1
                if out_dir and len(summary.overlays) < show:
                    picture = side_by_side(image, overlay(image, panoptic, info))
                    path = fsio.join(out_dir, f"{os.path.splitext(filename)[0]}_overlay.png")
                    with fsio.atomic_writer(path) as out:
                        Image.fromarray(picture).save(out, format="PNG")
                    summary.overlays.append(path)
        summary.shard_counts[shard] = count
    return summary


def _formats(feats: dict) -> str:
    """``image format / label format`` of one example's features."""
    def first(key: str) -> str:
        value = feats.get(key)
        return value.values[0].decode() if value is not None and value.values else "none"

    label = first("image/segmentation/class/format")
    if label == "none" and "image/panoptic/category_mask" in feats:
        label = "png masks"
    return f"{first('image/format')}/{label}"
