"""A hand-made COCO panoptic tree builder for converter tests (importable: tests/ is on
pytest's pythonpath)."""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image


def write_coco(root, split: str, images: list[dict]) -> None:
    """Write ``images`` (dicts with stem, ids (uint32 HxW), segments, mode) under ``root``."""
    image_dir = os.path.join(root, f"{split}2017")
    png_dir = os.path.join(root, "annotations", f"panoptic_{split}2017")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(png_dir, exist_ok=True)
    annotations = []
    for index, spec in enumerate(images):
        ids = np.asarray(spec["ids"], dtype=np.uint32)
        h, w = ids.shape
        rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], -1).astype(np.uint8)
        png = Image.fromarray(rgb)
        if spec.get("png_mode"):
            png = png.convert(spec["png_mode"])
        png.save(os.path.join(png_dir, f"{spec['stem']}.png"))
        pixels = (np.random.default_rng(index).random((h, w, 3)) * 255).astype(np.uint8)
        image = Image.fromarray(pixels).convert(spec.get("mode", "RGB"))
        if spec.get("image_size"):
            image = image.resize(spec["image_size"][::-1])
        if not spec.get("no_image"):
            image.save(os.path.join(image_dir, f"{spec['stem']}.jpg"), exif=spec.get("exif", b""))
        segments = spec["segments"]
        if segments is not None:
            annotations.append(
                {"image_id": index + 1, "file_name": f"{spec['stem']}.png",
                 "segments_info": segments}
            )
    with open(os.path.join(root, "annotations", f"panoptic_{split}2017.json"), "w") as f:
        json.dump({"annotations": annotations, "images": [], "categories": []}, f)


def seg(id_, category, area, crowd=0):
    return {"id": id_, "category_id": category, "area": area, "iscrowd": crowd}
