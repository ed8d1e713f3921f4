"""COCO *instances* JSONs for a synthetic COCO-panoptic tree, derived from its panoptic data.

``write_instances_json(root, split)`` writes ``annotations/instances_{split}2017.json`` from
``panoptic_{split}2017.json`` and its PNGs, with the cases a Model Garden converter must
handle:

* ``images[]`` in *reverse* panoptic order, so the image list order (which decides the
  round-robin shard) differs from the sorted file order;
* one annotation per thing segment, in ``segments_info`` order: non-crowd objects as the
  polygon of their box (every other one split into two polygons), crowd objects as an
  uncompressed RLE of the segment's exact pixels (column-major, as COCO stores them);
* in the first image with things, two more annotations Model Garden skips: one with zero
  width and one reaching half a pixel past the right edge (``x + w = W + 0.5``);
* ``area`` = the segment's pixel count, ``bbox`` = its pixel box.
"""

from __future__ import annotations

import json
import os

import numpy as np

from panseg.datasets.coco import coco_categories, read_rgb_segment_ids


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of ``mask`` (``bool (H, W)``): run lengths in column-major
    order, starting with a run of zeros."""
    flat = mask.astype(np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def write_instances_json(root: str, split: str) -> str:
    """Write ``ROOT/annotations/instances_{split}2017.json``; returns its path."""
    ann_dir = os.path.join(root, "annotations")
    with open(os.path.join(ann_dir, f"panoptic_{split}2017.json"), encoding="utf-8") as f:
        panoptic = json.load(f)
    things = {c["id"]: c for c in coco_categories() if c["isthing"]}
    by_image = {a["image_id"]: a for a in panoptic["annotations"]}
    annotations: list[dict] = []
    edge_cases_done = False
    for image in panoptic["images"]:
        ann = by_image.get(image["id"])
        if ann is None:
            continue
        ids = read_rgb_segment_ids(os.path.join(ann_dir, f"panoptic_{split}2017", ann["file_name"]))
        height, width = ids.shape
        n_objects = 0
        for seg in ann["segments_info"]:
            if seg["category_id"] not in things:
                continue
            mask = ids == seg["id"]
            ys, xs = np.nonzero(mask)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            if seg["iscrowd"]:
                segmentation: list | dict = uncompressed_rle(mask)
            elif n_objects % 2:
                xm = (x0 + x1) / 2
                segmentation = [
                    [x0, y0, xm, y0, xm, y1, x0, y1],
                    [xm, y0, x1, y0, x1, y1, xm, y1],
                ]
            else:
                segmentation = [[x0, y0, x1, y0, x1, y1, x0, y1]]
            n_objects += 1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "category_id": seg["category_id"],
                    "iscrowd": int(seg["iscrowd"]),
                    "area": int(mask.sum()),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "segmentation": segmentation,
                }
            )
        if n_objects and not edge_cases_done:
            edge_cases_done = True
            for bbox in ([2, 2, 0, 5], [width - 4.5, 1, 5, 3]):
                x, y, w, h = bbox
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image["id"],
                        "category_id": 1,
                        "iscrowd": 0,
                        "area": float(w * h),
                        "bbox": bbox,
                        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                    }
                )
    data = {
        "info": {"description": "panseg synthetic COCO instances"},
        "licenses": [],
        "images": list(reversed(panoptic["images"])),
        "annotations": annotations,
        "categories": [
            {"id": c["id"], "name": c["name"], "supercategory": c["supercategory"]}
            for c in things.values()
        ],
    }
    path = os.path.join(ann_dir, f"instances_{split}2017.json")
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    return path
