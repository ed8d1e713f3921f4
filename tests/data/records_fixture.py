"""Tiny DeepLab2-schema record directories for the data-pipeline tests, written directly with
TFRecordWriter + encode_example (independent of the converter)."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from panseg.datasets.info import ClassInfo, DatasetInfo
from panseg.records.example import encode_example
from panseg.records.manifest import Manifest, ShardEntry, SplitEntry, save_manifest
from panseg.records.tfrecord import TFRecordWriter


def cityscapes_like_info() -> DatasetInfo:
    classes = tuple(
        ClassInfo(id=i, name=f"c{i}", is_thing=11 <= i <= 18, color=(i, 2 * i, 3 * i))
        for i in range(19)
    )
    return DatasetInfo(
        name="tiny_cityscapes",
        classes=classes,
        ignore_label=255,
        label_divisor=1000,
        num_classes=19,
    )


def encode_image(image: np.ndarray, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG" if fmt == "png" else "JPEG", quality=95)
    return buf.getvalue()


def example_bytes(
    image: np.ndarray,
    panoptic: np.ndarray | None,
    filename: str,
    *,
    image_format: str = "png",
    label_format: str = "raw",
) -> bytes:
    h, w = image.shape[:2]
    features = {
        "image/encoded": encode_image(image, image_format),
        "image/filename": filename,
        "image/format": image_format,
        "image/height": h,
        "image/width": w,
        "image/channels": 3,
    }
    if panoptic is not None:
        if label_format == "raw":
            features["image/segmentation/class/encoded"] = panoptic.astype("<i4").tobytes()
        else:
            assert panoptic.max() < 1 << 16, "16-bit PNG labels only"
            buf = io.BytesIO()
            Image.fromarray(panoptic.astype(np.uint16)).save(buf, format="PNG")
            features["image/segmentation/class/encoded"] = buf.getvalue()
        features["image/segmentation/class/format"] = label_format
    return encode_example(features)


def make_sample(index: int, height: int = 24, width: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """An image whose red channel encodes the example index and a label with one car."""
    rng = np.random.default_rng(index)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[0, 0, 0] = index % 256
    panoptic = np.full((height, width), 7 * 1000, dtype=np.int32)  # stuff class 7
    panoptic[: height // 4] = 255 * 1000  # void band
    y0, x0 = int(rng.integers(height // 4, height - 4)), int(rng.integers(0, width - 4))
    panoptic[y0 : y0 + 4, x0 : x0 + 4] = 13 * 1000 + 1 + index % 5
    return image, panoptic


def write_shards(
    directory: str,
    examples: list[bytes],
    num_shards: int,
    prefix: str = "train",
) -> list[ShardEntry]:
    """Split ``examples`` into ``num_shards`` contiguous shards; returns manifest entries."""
    os.makedirs(directory, exist_ok=True)
    bounds = np.linspace(0, len(examples), num_shards + 1).astype(int)
    entries = []
    for k in range(num_shards):
        name = f"{prefix}-{k:05d}-of-{num_shards:05d}.tfrecord"
        with open(os.path.join(directory, name), "wb") as f:
            writer = TFRecordWriter(f)
            for data in examples[bounds[k] : bounds[k + 1]]:
                writer.write(data)
        entries.append(
            ShardEntry(
                file=name,
                num_examples=int(bounds[k + 1] - bounds[k]),
                size=writer.size,
                crc32c=writer.crc32c,
                offsets=tuple(writer.offsets),
            )
        )
    return entries


def write_record_dir(
    directory: str,
    num_examples: int,
    num_shards: int,
    *,
    split: str = "train",
    labelled: bool = True,
    **example_kwargs,
) -> DatasetInfo:
    """A record directory with a manifest: examples ``make_sample(0..n-1)``."""
    info = cityscapes_like_info()
    examples = []
    for i in range(num_examples):
        image, panoptic = make_sample(i)
        examples.append(
            example_bytes(image, panoptic if labelled else None, f"img{i:04d}", **example_kwargs)
        )
    entries = write_shards(directory, examples, num_shards, prefix=split)
    manifest = Manifest(
        schema="deeplab2",
        dataset=info,
        source={"dataset": "test"},
        options={},
        splits={split: SplitEntry(shards=tuple(entries))},
    )
    save_manifest(manifest, directory)
    return info
