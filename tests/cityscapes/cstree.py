"""Hand-made Cityscapes trees and record readers for the Cityscapes tests."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from panseg.convert import convert
from panseg.datasets.cityscapes import CityscapesSource
from panseg.datasets.cityscapes_labels import cityscapes_panoptic_info, label_id_to_train_id_lut
from panseg.records.deeplab2 import decode_deeplab2
from panseg.records.deeplab2_semantic import SemanticPngEncoder
from panseg.records.deeplab2_small_ids import SmallIdPanopticEncoder
from panseg.records.tfrecord import read_file_records


def write_raw(root, split: str, city: str, stem: str, instance_ids, *, label_ids=None,
              image_size=None, image_mode: str = "RGB") -> None:
    """One raw image: leftImg8bit PNG, gtFine instanceIds (and labelIds, derived if None)."""
    instance_ids = np.asarray(instance_ids)
    h, w = image_size or instance_ids.shape
    image_dir = os.path.join(root, "leftImg8bit", split, city)
    label_dir = os.path.join(root, "gtFine", split, city)
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(label_dir, exist_ok=True)
    pixels = (np.random.default_rng(len(stem)).random((h, w, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).convert(image_mode).save(
        os.path.join(image_dir, f"{stem}_leftImg8bit.png")
    )
    Image.fromarray(instance_ids.astype(np.uint16)).save(
        os.path.join(label_dir, f"{stem}_gtFine_instanceIds.png")
    )
    if label_ids is None:
        label_ids = np.where(instance_ids < 1000, instance_ids, instance_ids // 1000)
    Image.fromarray(np.asarray(label_ids).astype(np.uint8)).save(
        os.path.join(label_dir, f"{stem}_gtFine_labelIds.png")
    )


def run(root, out, *, task="panoptic", mode="raw", splits=("train",), num_shards=10,
        crowd="ignore", **kw):
    info = cityscapes_panoptic_info()
    if task == "panoptic":
        encoder = SmallIdPanopticEncoder(info, crowd=crowd)
        options = {"task": "panoptic", "crowd": crowd}
    else:
        lut = tuple(int(v) for v in label_id_to_train_id_lut()) if mode == "raw" else None
        encoder = SemanticPngEncoder(info, lut=lut)
        options = {"task": "semantic"}
    return convert(
        source=CityscapesSource(str(root), task=task, mode=mode), encoder=encoder,
        out_dir=str(out), splits=list(splits), num_shards=num_shards, dataset=info,
        schema="deeplab2", options=options, progress=False, log=lambda m: None, **kw,
    )


def read_records(out, split: str, num_shards: int = 10) -> list[bytes]:
    result = []
    for k in range(num_shards):
        path = os.path.join(str(out), f"{split}-{k:05d}-of-{num_shards:05d}.tfrecord")
        result.extend(read_file_records(path))
    return result


def labels(out, split: str, num_shards: int = 10) -> dict[str, np.ndarray]:
    return {
        d.filename: d.label
        for d in (decode_deeplab2(r) for r in read_records(out, split, num_shards))
    }
