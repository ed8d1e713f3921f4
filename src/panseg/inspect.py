"""Summaries and overlay pictures of DeepLab2-schema record shards (no TensorFlow)."""

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


def dataset_info_for(shard: str) -> DatasetInfo:
    """Facts from the manifest beside ``shard``; COCO panoptic when there is none."""
    from panseg.datasets.coco import coco_panoptic_info
    from panseg.records.manifest import load_manifest

    directory = os.path.dirname(shard) or "."
    if fsio.exists(fsio.join(directory, "manifest.json")):
        return load_manifest(directory).dataset
    return coco_panoptic_info()


def inspect_shards(pattern: str, *, show: int = 0, out_dir: str | None = None) -> ShardSummary:
    """Read every example of the shards matching ``pattern``; write ``show`` overlays."""
    from PIL import Image

    from panseg.records.deeplab2 import IMAGE_FORMAT, LABEL_FORMAT, decode_deeplab2
    from panseg.records.example import decode_example
    from panseg.records.tfrecord import iter_records
    from panseg.viz.overlay import overlay, side_by_side

    shards = fsio.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]
    shards = [s for s in shards if fsio.exists(s)]
    if not shards:
        raise FileNotFoundError(f"{pattern}: no shard matches")
    summary = ShardSummary(info=dataset_info_for(shards[0]))
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
                fmt = feats[IMAGE_FORMAT].one() if IMAGE_FORMAT in feats else b"?"
                label_fmt = feats[LABEL_FORMAT].one() if LABEL_FORMAT in feats else b"none"
                summary.formats[f"{fmt.decode()}/{label_fmt.decode()}"] += 1
                decoded = decode_deeplab2(data, where=f"{shard} record {index}")
                if decoded.label is None:
                    continue
                values, counts = np.unique(decoded.label, return_counts=True)
                semantic = values // info.label_divisor
                for class_id in np.unique(semantic).tolist():
                    summary.class_images[class_id] += 1
                for class_id, pixels in zip(semantic.tolist(), counts.tolist(), strict=True):
                    summary.class_pixels[class_id] += pixels
                thing = np.isin(semantic, list(info.thing_ids)) & (values % info.label_divisor > 0)
                summary.instances[int(thing.sum())] += 1
                if out_dir and len(summary.overlays) < show:
                    picture = side_by_side(
                        decoded.image, overlay(decoded.image, decoded.label, info)
                    )
                    path = fsio.join(out_dir, f"{decoded.filename}_overlay.png")
                    with fsio.atomic_writer(path) as out:
                        Image.fromarray(picture).save(out, format="PNG")
                    summary.overlays.append(path)
        summary.shard_counts[shard] = count
    return summary
