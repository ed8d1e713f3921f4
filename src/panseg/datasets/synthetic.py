"""A small, deterministic COCO-panoptic tree: the embedded default data.

``synth_coco(out, images=N, seed=S)`` writes the tree the COCO reader expects, with real
category ids, and every case a converter must handle:

* stuff bands (sky, building, road, grass...) and thing shapes (rectangles and ellipses of
  person, car, dog...) that overlap, with each segment's area measured after painting;
* crowd thing segments (``iscrowd=1``), in every third image;
* void pixels (id 0) and a listed-but-empty nothing: only segments with pixels are listed;
* ``segments_info`` in shuffled order, so instance numbering must follow the JSON, not ids;
* 24-bit segment ids (the blue channel is used);
* one image with no segments at all (the second val image) and one grayscale JPEG (the
  second train image).

Pixels are a class color plus noise, so a model can learn them (the demo trains on them).
The same arguments always give the same files.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

from panseg.datasets.coco import coco_categories

THING_NAMES = ("person", "car", "dog", "bicycle", "bottle", "chair")
STUFF_NAMES = ("sky-other-merged", "building-other-merged", "road", "grass-merged", "wall-brick")


def synth_coco(
    out: str,
    *,
    images: int = 8,
    seed: int = 0,
    height: int = 120,
    width: int = 160,
    min_things: int = 2,
    max_things: int = 8,
) -> dict[str, int]:
    """Write the tree under ``out``; returns the number of images per split.

    Splits: ``train`` has ``images`` images, ``val`` and ``test`` ``max(2, images // 4)``.
    """
    if images < 2:
        raise ValueError("synth coco needs at least 2 images")
    cats = {c["name"]: c for c in coco_categories()}
    things = [cats[n] for n in THING_NAMES]
    stuff = [cats[n] for n in STUFF_NAMES]
    rng = np.random.default_rng(seed)
    counts = {"train": images, "val": max(2, images // 4), "test": max(2, images // 4)}
    os.makedirs(os.path.join(out, "annotations"), exist_ok=True)
    image_id = 0
    for split, n in counts.items():
        image_dir = os.path.join(out, f"{split}2017")
        png_dir = os.path.join(out, "annotations", f"panoptic_{split}2017")
        os.makedirs(image_dir, exist_ok=True)
        if split != "test":
            os.makedirs(png_dir, exist_ok=True)
        image_entries, annotations = [], []
        for index in range(n):
            image_id += 1
            stem = f"{image_id:012d}"
            empty = split == "val" and index == 1
            ids, segments, pixels = _draw(
                rng, height, width, things, stuff, empty, crowd=index % 3 == 0,
                n_things=int(rng.integers(min_things, max_things + 1)),
            )
            gray = split == "train" and index == 1
            _save_jpeg(os.path.join(image_dir, f"{stem}.jpg"), pixels, gray)
            image_entries.append(
                {"id": image_id, "file_name": f"{stem}.jpg", "height": height, "width": width}
            )
            if split == "test":
                continue
            _save_ids_png(os.path.join(png_dir, f"{stem}.png"), ids)
            annotations.append(
                {"image_id": image_id, "file_name": f"{stem}.png", "segments_info": segments}
            )
        if split != "test":
            data = {
                "info": {"description": "panseg synthetic COCO panoptic"},
                "licenses": [],
                "images": image_entries,
                "annotations": annotations,
                "categories": list(coco_categories()),
            }
            with open(os.path.join(out, "annotations", f"panoptic_{split}2017.json"), "w") as f:
                json.dump(data, f)
        else:
            with open(os.path.join(out, "annotations", "image_info_test2017.json"), "w") as f:
                json.dump({"images": image_entries, "categories": list(coco_categories())}, f)
    from panseg.datasets.synthetic_instances import write_instances_json

    for split in ("train", "val"):  # instances JSONs for the Model Garden schema
        write_instances_json(out, split)
    return counts


def _draw(rng, height, width, things, stuff, empty, crowd, n_things):
    ids = np.zeros((height, width), dtype=np.uint32)
    category = {}
    crowd_ids = set()
    used: set[int] = {0}

    def new_id() -> int:
        while True:
            value = int(rng.integers(1, 1 << 24))
            if value not in used:
                used.add(value)
                return value

    if not empty:
        # Two or three horizontal stuff bands with wavy borders; a void strip between some.
        n_bands = int(rng.integers(2, 4))
        cuts = np.sort(rng.choice(np.arange(height // 5, height - height // 5), n_bands - 1))
        bounds = [0, *cuts.tolist(), height]
        cols = np.arange(width)
        for b in range(n_bands):
            cat = stuff[int(rng.integers(len(stuff)))]
            sid = new_id()
            category[sid] = cat
            wave = (3 * np.sin(cols / (5 + 3 * b) + b)).astype(int)
            rows = np.arange(height)[:, None]
            top = bounds[b] + (wave if b > 0 else 0)
            bottom = bounds[b + 1] + (wave if b + 1 < n_bands else 0)
            ids[(rows >= top) & (rows < bottom)] = sid
        ids[: max(1, height // 40), :] = 0  # a void strip at the top
        yy, xx = np.mgrid[:height, :width]
        for t in range(n_things):
            cat = things[int(rng.integers(len(things)))]
            sid = new_id()
            category[sid] = cat
            if crowd and t == 0:
                crowd_ids.add(sid)
            h = int(rng.integers(height // 8, height // 2))
            w = int(rng.integers(width // 8, width // 2))
            y0 = int(rng.integers(0, height - h))
            x0 = int(rng.integers(0, width - w))
            if rng.random() < 0.5:
                mask = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
            else:
                cy, cx = y0 + h / 2, x0 + w / 2
                mask = ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2 <= 1
            ids[mask] = sid
    present, areas = np.unique(ids, return_counts=True)
    segments = []
    for sid, area in zip(present.tolist(), areas.tolist(), strict=True):
        if sid == 0:
            continue
        ys, xs = np.nonzero(ids == sid)
        segments.append(
            {
                "id": sid,
                "category_id": category[sid]["id"],
                "iscrowd": int(sid in crowd_ids),
                "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1],
                "area": int(area),
            }
        )
    order = rng.permutation(len(segments))
    segments = [segments[i] for i in order]
    pixels = _render(rng, ids, category)
    return ids, segments, pixels


def _render(rng, ids, category):
    """Class color plus noise per segment; void is mid gray."""
    height, width = ids.shape
    image = np.full((height, width, 3), 128.0)
    for sid, cat in category.items():
        mask = ids == sid
        if mask.any():
            shade = rng.uniform(-20, 20)
            image[mask] = np.clip(np.array(cat["color"], dtype=float) + shade, 0, 255)
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _save_jpeg(path: str, pixels: np.ndarray, gray: bool) -> None:
    from PIL import Image

    image = Image.fromarray(pixels)
    if gray:
        image = image.convert("L")
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def _save_ids_png(path: str, ids: np.ndarray) -> None:
    from PIL import Image

    rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
