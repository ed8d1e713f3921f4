"""Helpers of the evaluation tests: random panoptic pairs and COCO panoptic files."""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from panseg.evaluation.pq import Category

CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1},
    {"id": 2, "name": "car", "isthing": 1},
    {"id": 7, "name": "road", "isthing": 0},
    {"id": 9, "name": "sky", "isthing": 0},
    {"id": 12, "name": "tree", "isthing": 0},
]


def cats(raw=CATEGORIES) -> list[Category]:
    return [Category(c["id"], c["name"], c["isthing"] == 1) for c in raw]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def random_pair(rng: np.random.Generator, h: int = 24, w: int = 32, n_segments: int = 12):
    """GT/prediction id maps and segment lists with crowd, VOID, unlisted GT ids, wrong areas."""
    ids = rng.choice(np.arange(1, 256**3), size=2 * n_segments + 2, replace=False)
    gt_ids_pool, pred_ids_pool = ids[:n_segments], ids[n_segments : 2 * n_segments]
    cat_ids = [c["id"] for c in CATEGORIES]

    def paint(pool, void_p):
        m = np.zeros((h, w), np.int64)
        for sid in pool:
            y, x = rng.integers(0, h), rng.integers(0, w)
            m[y : y + rng.integers(1, h + 1), x : x + rng.integers(1, w + 1)] = sid
        m[rng.random((h, w)) < void_p] = 0
        return m

    gt = paint(gt_ids_pool, 0.05)
    # predictions: mostly GT with noise, so that matches happen
    pred_from = {int(g): int(p) for g, p in zip(gt_ids_pool, pred_ids_pool, strict=True)}
    pred = np.vectorize(lambda v: pred_from.get(v, 0))(gt) if gt.size else gt.copy()
    noise = paint(pred_ids_pool[: n_segments // 3], 0.0)
    pred = np.where((noise > 0) & (rng.random((h, w)) < 0.5), noise, pred)
    pred[rng.random((h, w)) < 0.05] = 0

    gt_segs = []
    gt_cat = {}
    for sid in np.unique(gt):
        if sid == 0 or rng.random() < 0.05:  # a few GT ids are not listed at all
            continue
        cat = int(rng.choice(cat_ids))
        gt_cat[int(sid)] = cat
        area = int((gt == sid).sum())
        if rng.random() < 0.1:
            area = max(1, area + int(rng.integers(-3, 4)))  # a wrong JSON area
        gt_segs.append(
            {"id": int(sid), "category_id": cat, "iscrowd": int(rng.random() < 0.2), "area": area}
        )
    if gt_segs and rng.random() < 0.5:  # a second crowd of one category, listed last
        extra = gt_segs[int(rng.integers(len(gt_segs)))]
        crowd = dict(extra, iscrowd=1)
        if crowd["id"] != gt_segs[-1]["id"]:
            gt_segs = [s for s in gt_segs if s["id"] != crowd["id"]] + [crowd]
    pred_segs = []
    inverse = {p: g for g, p in pred_from.items()}
    for sid in np.unique(pred):
        if sid == 0:
            continue
        g = inverse.get(int(sid))
        cat = gt_cat.get(g) if g is not None and rng.random() < 0.8 else None
        pred_segs.append({"id": int(sid), "category_id": cat or int(rng.choice(cat_ids))})
    return gt, pred, gt_segs, pred_segs


def write_coco(root: str, pairs, categories=CATEGORIES, image_ids=None) -> dict:
    """Write gt.json + gt/ and pred.json + pred/ for (gt, pred, gt_segs, pred_segs) tuples."""
    paths = {
        "gt_json": os.path.join(root, "gt.json"),
        "gt_dir": os.path.join(root, "gt"),
        "pred_json": os.path.join(root, "pred.json"),
        "pred_dir": os.path.join(root, "pred"),
    }
    os.makedirs(paths["gt_dir"], exist_ok=True)
    os.makedirs(paths["pred_dir"], exist_ok=True)
    gt_anns, pred_anns = [], []
    for i, (gt, pred, gt_segs, pred_segs) in enumerate(pairs):
        image_id = image_ids[i] if image_ids else i
        name = f"img{i}.png"
        Image.fromarray(id2rgb(gt)).save(os.path.join(paths["gt_dir"], name))
        Image.fromarray(id2rgb(pred)).save(os.path.join(paths["pred_dir"], name))
        gt_anns.append({"image_id": image_id, "file_name": name, "segments_info": gt_segs})
        pred_anns.append({"image_id": image_id, "file_name": name, "segments_info": pred_segs})
    with open(paths["gt_json"], "w") as f:
        json.dump({"annotations": gt_anns, "categories": categories}, f)
    with open(paths["pred_json"], "w") as f:
        json.dump({"annotations": pred_anns}, f)
    return paths
