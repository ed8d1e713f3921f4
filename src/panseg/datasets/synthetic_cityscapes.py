"""A small, deterministic raw Cityscapes tree, drawn from polygons as the real one is.

``synth_cityscapes(out)`` writes, for the splits train, val and test::

    leftImg8bit/{split}/{city}/{city}_{seq:06d}_{frame:06d}_leftImg8bit.png
    gtFine/{split}/{city}/{stem}_gtFine_{polygons.json,labelIds.png,instanceIds.png,
                                          labelTrainIds.png}

Each image is a list of Cityscapes polygon objects (the ``*_polygons.json`` format) rendered
with PIL's polygon fill in list order, as cityscapesScripts' ``json2labelImg`` (label ids,
train ids) and ``json2instanceImg`` (instance ids) render them: background ``unlabeled``;
deleted objects and ids below 0 (``license plate``) are not drawn; ``<label>group`` objects
draw the plain label id; other objects of classes with instances draw
``id * 1000 + k``, with ``k`` counting that class's polygons from 0 in list order.

Every case a converter must handle appears: stuff bands, overlapping things, a thing that is
fully hidden by a later one (a gap in ``k``), crowd groups, classes ignored in evaluation
(parking, polegroup, caravan, trailer, ego vehicle, rectification border), a license plate and
a deleted object, and one image without things (the second val image). The test split has
labels that are void only, as in the official download. Pixels are a class color plus noise.
"""

from __future__ import annotations

import json
import os

import numpy as np

from panseg.datasets.cityscapes_labels import LABEL_BY_NAME

CITIES = {
    "train": ("aachen", "bremen"),
    "val": ("frankfurt", "lindau"),
    "test": ("berlin", "bielefeld"),
}
THINGS = ("car", "person", "bicycle", "truck", "rider", "bus", "motorcycle", "train")
STUFF = ("building", "vegetation", "sidewalk", "pole", "traffic sign", "fence", "terrain")


def synth_cityscapes(
    out: str,
    *,
    images_per_city: int = 2,
    height: int = 64,
    width: int = 128,
    seed: int = 0,
    min_things: int = 3,
    max_things: int = 8,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> dict[str, int]:
    """Write the tree under ``out``; returns the number of images per split."""
    if height < 16 or width < 16:
        raise ValueError("synth cityscapes needs images of at least 16x16 pixels")
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for split in splits:
        counts[split] = 0
        for city in CITIES[split]:
            image_dir = os.path.join(out, "leftImg8bit", split, city)
            label_dir = os.path.join(out, "gtFine", split, city)
            os.makedirs(image_dir, exist_ok=True)
            os.makedirs(label_dir, exist_ok=True)
            for index in range(images_per_city):
                stem = f"{city}_{index:06d}_{19 + 10 * index:06d}"
                if split == "test":
                    objects = _void_objects(height, width)
                else:
                    no_things = split == "val" and counts[split] == 1
                    n_things = 0 if no_things else int(rng.integers(min_things, max_things + 1))
                    objects = _objects(rng, height, width, n_things, crowd=index % 2 == 0)
                write_image(label_dir, stem, objects, height, width)
                _save_rgb(
                    os.path.join(image_dir, f"{stem}_leftImg8bit.png"),
                    render(objects, height, width, "ids"),
                    rng,
                )
                counts[split] += 1
    return counts


def write_image(
    label_dir: str, stem: str, objects: list[dict], height: int, width: int
) -> None:
    """Write an image's polygons JSON and its three label PNGs into ``label_dir``."""
    from PIL import Image

    base = os.path.join(label_dir, f"{stem}_gtFine_")
    with open(base + "polygons.json", "w", encoding="utf-8") as f:
        json.dump({"imgHeight": height, "imgWidth": width, "objects": objects}, f, indent=4)
    Image.fromarray(render(objects, height, width, "ids")).save(base + "labelIds.png")
    Image.fromarray(render(objects, height, width, "trainIds")).save(base + "labelTrainIds.png")
    instance = render(objects, height, width, "instanceIds")
    Image.fromarray(instance.astype(np.uint16)).save(base + "instanceIds.png")


def render(objects: list[dict], height: int, width: int, encoding: str) -> np.ndarray:
    """Draw polygon objects in order (see the module docstring).

    Returns:
        ``uint8 (H, W)`` for ``ids`` and ``trainIds``, ``int32 (H, W)`` for ``instanceIds``.
    """
    from PIL import Image, ImageDraw

    unlabeled = LABEL_BY_NAME["unlabeled"]
    if encoding == "trainIds":
        image = Image.new("L", (width, height), unlabeled.train_id)
    else:
        image = Image.new("I" if encoding == "instanceIds" else "L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    instances: dict[str, int] = {}
    for obj in objects:
        if obj.get("deleted"):
            continue
        name, group = obj["label"], False
        if name not in LABEL_BY_NAME and name.endswith("group"):
            name, group = name[: -len("group")], True
        label = LABEL_BY_NAME[name]
        if label.id < 0:
            continue
        value = label.train_id if encoding == "trainIds" else label.id
        if encoding == "instanceIds" and label.has_instances and not group:
            value = label.id * 1000 + instances.get(name, 0)
            instances[name] = instances.get(name, 0) + 1
        draw.polygon([tuple(p) for p in obj["polygon"]], fill=value)
    array = np.asarray(image)
    return array.astype(np.int32) if encoding == "instanceIds" else array


def _poly(points) -> list[list[int]]:
    return [[int(x), int(y)] for x, y in points]


def _void_objects(h: int, w: int) -> list[dict]:
    return [
        {"label": "ego vehicle", "polygon": _poly([(0, h - 1), (w - 1, h - 1), (w // 2, h - h // 8)])},
        {"label": "rectification border", "polygon": _poly([(0, 0), (w - 1, 0), (0, h // 10)])},
    ]


def _objects(rng: np.random.Generator, h: int, w: int, n_things: int, crowd: bool) -> list[dict]:
    """Stuff bands, stuff and void shapes, then things front to back (later ones on top)."""
    objects = [
        {"label": "sky", "polygon": _poly([(0, 0), (w - 1, 0), (w - 1, h // 3), (0, h // 3)])},
        {"label": "road", "polygon": _poly([(0, h // 2), (w - 1, h // 2), (w - 1, h - 1),
                                            (0, h - 1)])},
    ]
    for name in rng.choice(STUFF, size=4, replace=False):
        objects.append({"label": str(name), "polygon": _random_shape(rng, h, w, 0.35)})
    objects.append({"label": "parking", "polygon": _random_shape(rng, h, w, 0.2)})
    objects.append({"label": "polegroup", "polygon": _random_shape(rng, h, w, 0.1)})
    hidden = None
    for k in range(n_things):
        name = str(rng.choice(THINGS[:5] if k % 3 else THINGS))
        shape = _random_shape(rng, h, w, 0.3)
        objects.append({"label": name, "polygon": shape})
        if k == 1:
            hidden = shape
    if hidden is not None:  # a later object covers thing #1 completely: a gap in k
        xs, ys = [p[0] for p in hidden], [p[1] for p in hidden]
        x0, y0 = max(min(xs) - 1, 0), max(min(ys) - 1, 0)
        x1, y1 = min(max(xs) + 1, w - 1), min(max(ys) + 1, h - 1)
        box = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        objects.append({"label": "building", "polygon": _poly(box)})
    if crowd:
        objects.append({"label": "cargroup", "polygon": _random_shape(rng, h, w, 0.25)})
        objects.append({"label": "persongroup", "polygon": _random_shape(rng, h, w, 0.15)})
    objects.append({"label": str(rng.choice(["caravan", "trailer"])),
                    "polygon": _random_shape(rng, h, w, 0.15)})
    objects.append({"label": "license plate", "polygon": _random_shape(rng, h, w, 0.05)})
    objects.append({"label": "car", "polygon": _random_shape(rng, h, w, 0.2), "deleted": 1})
    objects.extend(_void_objects(h, w))
    return objects


def _random_shape(rng: np.random.Generator, h: int, w: int, scale: float) -> list[list[int]]:
    """A convex-ish polygon of 3-7 vertices around a random center."""
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    n = int(rng.integers(3, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(0.3, 1.0, n) * scale * min(h, w)
    xs = np.clip(cx + radius * np.cos(angles) * 2, 0, w - 1)
    ys = np.clip(cy + radius * np.sin(angles), 0, h - 1)
    return _poly(zip(np.round(xs), np.round(ys), strict=True))


def _save_rgb(path: str, label_ids: np.ndarray, rng: np.random.Generator) -> None:
    from PIL import Image

    from panseg.datasets.cityscapes_labels import CITYSCAPES_LABELS

    palette = np.zeros((256, 3), dtype=np.int16)
    for label in CITYSCAPES_LABELS:
        if label.id >= 0:
            palette[label.id] = label.color
    noise = rng.integers(-12, 13, size=(*label_ids.shape, 3), dtype=np.int16)
    pixels = np.clip(palette[label_ids] + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
