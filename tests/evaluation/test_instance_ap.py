"""Instance AP: Cityscapes-style AP equal to cityscapesScripts, COCO mask AP via pycocotools."""

from __future__ import annotations

import contextlib
import io
import pickle

import numpy as np
import pytest
from PIL import Image

from evaluation.cityscapes_cases import INFO, THINGS, TRAIN_TO_LABEL
from panseg.evaluation.instance_ap import InstanceAPEvaluator, _average_precision

NAME = {c.id: c.name for c in INFO.classes}


def instance_ids_png(gt: np.ndarray) -> np.ndarray:
    """trainId panoptic map -> Cityscapes *_instanceIds.png values (label-id based)."""
    sem, inst = gt // 1000, gt % 1000
    label = np.zeros_like(sem)
    for t, lid in TRAIN_TO_LABEL.items():
        label[sem == t] = lid
    return np.where(np.isin(sem, THINGS) & (inst > 0), label * 1000 + inst, label)


def random_gt(rng, h=48, w=96):
    """Road and sky, 3-9 thing instances (most over 100 px), a crowd region, VOID pixels."""
    gt = np.where(np.arange(h)[:, None] < h // 3, 10, 0) * np.ones((1, w), np.int64) * 1000
    for n in range(1, int(rng.integers(4, 10))):
        y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
        c = int(rng.choice(THINGS[:4]))
        gt[y : y + rng.integers(4, 20), x : x + rng.integers(4, 30)] = c * 1000 + n
    y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
    gt[y : y + 8, x : x + 12] = int(rng.choice(THINGS[:4])) * 1000  # crowd
    gt[rng.random((h, w)) < 0.03] = 255000
    return gt


def random_predictions(rng, gt):
    """Masks near GT instances (some merged, shifted, wrong class), random blobs, tied scores."""
    masks, labels, scores = [], [], []
    for v in np.unique(gt):
        c = int(v // 1000)
        if c not in THINGS or rng.random() < 0.2:
            continue
        m = np.roll(gt == v, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 2)))
        for _ in range(1 + int(rng.random() < 0.2)):  # sometimes a duplicate
            masks.append(m)
            labels.append(c if rng.random() < 0.85 else int(rng.choice(THINGS)))
            scores.append(float(rng.choice([0.3, 0.5, 0.9])) if rng.random() < 0.3 else rng.random())
    for _ in range(int(rng.integers(0, 4))):
        m = np.zeros(gt.shape, bool)
        y, x = rng.integers(0, gt.shape[0]), rng.integers(0, gt.shape[1])
        m[y : y + rng.integers(2, 30), x : x + rng.integers(2, 40)] = True
        masks.append(m)
        labels.append(int(rng.choice(THINGS)))
        scores.append(rng.random())
    return np.array(masks, bool).reshape(-1, *gt.shape), np.array(labels), np.array(scores)


def cityscapes_ap_oracle(tmp_path, images):
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as cs_ap
    from cityscapesscripts.evaluation.instances2dict import instances2dict

    pred_root = tmp_path / "pred"
    pred_root.mkdir()
    gt_files, pred_files = [], []
    for i, (gt, (masks, labels, scores)) in enumerate(images):
        gt_file = tmp_path / f"city_{i:06d}_000019_gtFine_instanceIds.png"
        Image.fromarray(instance_ids_png(gt).astype(np.uint16)).save(gt_file)
        lines = []
        for k, (m, c, s) in enumerate(zip(masks, labels, scores, strict=True)):
            name = f"city_{i:06d}_000019_{k}.png"
            Image.fromarray((m * 255).astype(np.uint8)).save(pred_root / name)
            lines.append(f"{name} {TRAIN_TO_LABEL[int(c)]} {float(s)!r}\n")
        txt = pred_root / f"city_{i:06d}_000019.txt"
        txt.write_text("".join(lines))
        gt_files.append(str(gt_file))
        pred_files.append(str(txt))
    args = cs_ap.args
    args.quiet, args.JSONOutput, args.distanceAvailable = True, False, False
    args.predictionPath = str(pred_root.resolve())
    cs_ap.setInstanceLabels(args)
    with contextlib.redirect_stdout(io.StringIO()):
        gt_instances = instances2dict(gt_files)
        matches = cs_ap.matchGtWithPreds(pred_files, gt_files, gt_instances, args)
        aps = cs_ap.evaluateMatches(matches, args)
        return cs_ap.computeAverages(aps, args)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cityscapes_ap_equals_cityscapesscripts(tmp_path, seed, monkeypatch):
    # cityscapesScripts 2.3.0 calls np.in1d, which NumPy 2.4 removed; same values via isin
    monkeypatch.setattr(np, "in1d", lambda a, b: np.isin(a, b).ravel(), raising=False)
    rng = np.random.default_rng(seed)
    images = []
    ev = InstanceAPEvaluator(INFO)
    for _ in range(4):
        gt = random_gt(rng)
        preds = random_predictions(rng, gt)
        ev.update(gt, *preds)
        images.append((gt, preds))
    ours = ev.summarize()["cityscapes"]
    theirs = cityscapes_ap_oracle(tmp_path, images)
    assert ours["ap"] == pytest.approx(theirs["allAp"], rel=0, abs=1e-9)
    assert ours["ap50"] == pytest.approx(theirs["allAp50%"], rel=0, abs=1e-9)
    for c in THINGS:
        expected = theirs["classes"][NAME[c]]["ap"]
        if np.isnan(expected):
            assert ours["per_class"][c]["ap"] is None
        else:
            assert ours["per_class"][c]["ap"] == pytest.approx(expected, rel=0, abs=1e-9)
    assert 0 < ours["ap"] < 1


def test_perfect_predictions_give_ap_one_and_small_instances_are_ignored():
    gt = np.full((20, 30), 0)  # road (trainId 0)
    gt[:12, :12] = 13001  # car, 144 px
    gt[15:18, 20:23] = 13002  # a 9 px car: too small to be required
    gt[0:5, 20:30] = 11000  # person crowd
    masks = np.stack([gt == 13001, gt == 13002, gt == 11000])
    ev = InstanceAPEvaluator(INFO, coco=True)
    ev.update(gt, masks, np.array([13, 13, 11]), np.array([0.9, 0.8, 0.7]))
    res = ev.summarize()
    assert res["cityscapes"]["per_class"][13] == {"ap": 1.0, "ap50": 1.0}
    assert res["cityscapes"]["per_class"][11]["ap"] is None  # no person instance to find
    assert res["cityscapes"]["ap"] == 1.0
    assert res["coco"]["ap"] == pytest.approx(1.0)
    assert res["coco"]["per_class"][13] == pytest.approx(1.0)


def test_coco_ap_of_a_false_positive_ahead_of_a_true_positive():
    gt = np.zeros((20, 20), np.int64)
    gt[:10, :10] = 13001
    hit = gt == 13001
    miss = np.zeros_like(hit)
    miss[12:, 12:] = True
    ev = InstanceAPEvaluator(INFO, cityscapes=True, coco=True)
    ev.update(gt, np.stack([miss, hit]), np.array([13, 13]), np.array([0.9, 0.5]))
    res = ev.summarize()
    # ranked: FP then TP -> precision at recall 1 is 0.5 at every IoU threshold
    assert res["coco"]["ap"] == pytest.approx(0.5, abs=1e-6)
    # Cityscapes, thresholds ascending: 0.5 -> P 1/2, R 1; 0.9 -> P 0, R 0; end P 1, R 0.
    # recall padded [1, 1, 0, 0, 0] -> steps 0.5, 0.5, 0 -> AP = 0.5 * 0.5 + 0 + 0 = 0.25
    assert res["cityscapes"]["ap"] == pytest.approx(0.25)


def test_average_precision_by_hand():
    # scores 0.9 TP, 0.8 FP, 0.7 TP and one missed GT
    ap = _average_precision(np.array([1.0, 0.0, 1.0]), np.array([0.9, 0.8, 0.7]), hard_fn=1)
    # distinct thresholds ascending: 0.7: P=2/3 R=2/3; 0.8: P=1/2 R=1/3; 0.9: P=1 R=1/3; end P=1 R=0
    r = [2 / 3, 1 / 3, 1 / 3, 0.0]
    p = [2 / 3, 1 / 2, 1.0, 1.0]
    padded = [r[0], *r, 0.0]
    expected = sum(p[i] * 0.5 * (padded[i] - padded[i + 2]) for i in range(4))
    assert ap == pytest.approx(expected)


def test_merge_and_pickle():
    rng = np.random.default_rng(4)
    a, b, whole = (InstanceAPEvaluator(INFO, coco=True) for _ in range(3))
    for i in range(4):
        gt = random_gt(rng)
        preds = random_predictions(rng, gt)
        whole.update(gt, *preds)
        (a if i < 2 else b).update(gt, *preds)
    a.merge(pickle.loads(pickle.dumps(b)))
    assert a.summarize() == whole.summarize()


def test_inconsistent_inputs_are_errors():
    ev = InstanceAPEvaluator(INFO)
    with pytest.raises(ValueError, match="one label and one score per mask"):
        ev.update(np.zeros((2, 2), int), np.zeros((1, 2, 2), bool), np.array([13, 13]), [0.5])


@pytest.mark.parametrize("coco", [False, True])
def test_instances_of_a_panoptic_prediction_equal_their_masks(coco):
    rng = np.random.default_rng(8)
    by_masks, by_panoptic = (InstanceAPEvaluator(INFO, coco=coco) for _ in range(2))
    for _ in range(3):
        gt = random_gt(rng)
        pred = np.roll(gt, 2, axis=1)
        pred[rng.random(gt.shape) < 0.02] = 255000
        ids = np.array([v for v in np.unique(pred) if v // 1000 in THINGS and v % 1000], np.int64)
        scores = rng.random(len(ids))
        by_masks.update(gt, pred[None] == ids[:, None, None], ids // 1000, scores)
        by_panoptic.update_panoptic(gt, pred, np.append(ids, 13999), np.append(scores, 0.5))
    assert by_panoptic.summarize() == by_masks.summarize()
    assert by_masks.summarize()["cityscapes"]["ap"] > 0
