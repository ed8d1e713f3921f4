"""PanopticEvaluator on integer arrays: conventions, merge, and cityscapesScripts as the oracle.

cityscapesscripts (PyPI, installed with ``--no-deps`` plus ``pyquaternion`` by scripts/test.sh)
runs in-process here: its ``pq_compute_single_core`` / ``average_pq`` on PNG + JSON files written
the way its ``createPanopticImgs.py`` writes them, and its ``evaluateImgLists`` on label-id PNGs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from evaluation.cityscapes_cases import (
    EVAL_LABELS,
    INFO,
    TRAIN_TO_LABEL,
    cs_labels,
    random_cityscapes_pair,
)
from panseg.datasets.info import ClassInfo, DatasetInfo
from panseg.evaluation.evaluator import PanopticEvaluator
from panseg.evaluation.semantic import confusion_matrix, iou_from_confusion, reference_iou


def _to_label_ids(panoptic: np.ndarray) -> np.ndarray:
    """trainId-based panoptic map -> createPanopticImgs' segment ids (label-id based)."""
    sem, inst = panoptic // 1000, panoptic % 1000
    label = np.zeros_like(sem)
    for t, lid in TRAIN_TO_LABEL.items():
        label[sem == t] = lid
    # every distinct panoptic value stays a distinct segment (stuff with an instance id too)
    return np.where((inst > 0) & (label > 0), label * 1000 + inst, label)


def _segments(ids: np.ndarray, is_gt: bool) -> list[dict]:
    by_id = {lab.id: lab for lab in cs_labels.labels}
    out = []
    for sid in np.unique(ids):
        if sid == 0:
            continue
        lab = by_id[int(sid) // 1000 if sid >= 1000 else int(sid)]
        seg = {"id": int(sid), "category_id": lab.id}
        if is_gt:
            seg["iscrowd"] = int(lab.hasInstances and sid < 1000)
            seg["area"] = int((ids == sid).sum())
        out.append(seg)
    return out


def _write_png(path: str, ids: np.ndarray) -> None:
    rgb = np.stack([ids % 256, ids // 256, ids // 256 // 256], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


def cityscapes_pq_oracle(tmp_path, pairs) -> dict:
    from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as cs_pq

    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    annotations = []
    for i, (pred, gt) in enumerate(pairs):
        name = f"frankfurt_{i:06d}_gtFine_panoptic.png"
        g, p = _to_label_ids(gt), _to_label_ids(pred)
        _write_png(str(gt_dir / name), g)
        _write_png(str(pred_dir / name), p)
        annotations.append(
            (
                {"image_id": name[:17], "file_name": name, "segments_info": _segments(g, True)},
                {"image_id": name[:17], "file_name": name, "segments_info": _segments(p, False)},
            )
        )
    categories = {
        lab.id: {"id": lab.id, "name": lab.name, "isthing": int(lab.hasInstances)}
        for lab in EVAL_LABELS
    }
    with contextlib.redirect_stdout(io.StringIO()):
        stat = cs_pq.pq_compute_single_core(0, annotations, str(gt_dir), str(pred_dir), categories)
        # the oracle raises ZeroDivisionError on an empty group, as panopticapi does
        return cs_pq.average_pq(stat, categories)


def assert_pq_equal(ours: dict, theirs: dict) -> None:
    for group in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq", "n"):
            assert ours[group][key] == pytest.approx(theirs[group][key], rel=0, abs=1e-9), group
    for train_id, label_id in TRAIN_TO_LABEL.items():
        for key in ("pq", "sq", "rq"):
            assert ours["per_class"][train_id][key] == pytest.approx(
                theirs["per_class"][label_id][key], rel=0, abs=1e-9
            )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cityscapes_mode_equals_cityscapesscripts_panoptic(tmp_path, seed):
    rng = np.random.default_rng(seed)
    pairs = [random_cityscapes_pair(rng) for _ in range(6)]
    evaluator = PanopticEvaluator(INFO)
    for pred, gt in pairs:
        evaluator.update(pred, gt)
    ours = evaluator.summarize()["panoptic"]
    assert_pq_equal(ours, cityscapes_pq_oracle(tmp_path, pairs))
    assert ours["Things"]["n"] > 0 and ours["Stuff"]["n"] > 0


def test_semantic_miou_equals_cityscapesscripts_pixel_level(tmp_path):
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_sem

    rng = np.random.default_rng(7)
    pairs = [random_cityscapes_pair(rng) for _ in range(4)]
    evaluator = PanopticEvaluator(INFO)
    preds, gts = [], []
    for i, (pred, gt) in enumerate(pairs):
        evaluator.update(pred, gt)
        for kind, arr, out in (("pred", pred, preds), ("gt", gt, gts)):
            sem = arr // 1000
            label = np.zeros_like(sem)  # 255 -> label 0 ("unlabeled", ignored in evaluation)
            for t, lid in TRAIN_TO_LABEL.items():
                label[sem == t] = lid
            path = str(tmp_path / f"{kind}_{i}_labelIds.png")
            Image.fromarray(label.astype(np.uint8)).save(path)
            out.append(path)
    args = cs_sem.args
    args.evalInstLevelScore = False
    args.JSONOutput = False
    args.quiet = True
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = cs_sem.evaluateImgLists(preds, gts, args)
    ours = evaluator.summarize()["semantic"]
    by_name = {c.id: c.name for c in INFO.classes}
    for train_id, iou in ours["per_class"].items():
        expected = theirs["classScores"][by_name[train_id]]
        if np.isnan(expected):
            assert iou is None
        else:
            assert iou == pytest.approx(expected, rel=0, abs=1e-12)
    assert ours["miou"] == pytest.approx(theirs["averageScoreClasses"], rel=0, abs=1e-12)


def test_semantic_confusion_equals_the_slow_reference():
    rng = np.random.default_rng(11)
    preds = [rng.integers(0, 6, size=(9, 7)) for _ in range(3)]
    gts = [rng.choice([0, 1, 2, 4, 255], size=(9, 7)) for _ in range(3)]
    conf = sum(confusion_matrix(p, g, [0, 1, 2, 4], 255) for p, g in zip(preds, gts, strict=True))
    np.testing.assert_allclose(
        iou_from_confusion(conf), reference_iou(preds, gts, [0, 1, 2, 4], 255), equal_nan=True
    )


def test_crowd_is_a_thing_class_with_instance_zero():
    # GT: person (trainId 11) crowd region at columns 0-3, a road strip at 4-7.
    gt = np.array([[11000] * 4 + [0] * 4])
    pred = np.array([[11005] * 3 + [0] * 5])  # a person inside the crowd; road predicted
    ev = PanopticEvaluator(INFO, semantic=False)
    ev.update(pred, gt)
    res = ev.summarize()["panoptic"]
    assert res["per_class"][11]["fp"] == 0  # 3/3 of it lies on the crowd: ignored
    assert res["per_class"][0] == {**res["per_class"][0], "tp": 1, "fp": 0, "fn": 0}
    assert res["Things"]["n"] == 0 and res["Things"]["pq"] is None


def test_void_ground_truth_is_any_value_of_the_ignore_label():
    gt = np.array([[255000, 255007, 13001, 13001]])
    pred = np.array([[13002, 13002, 13002, 13002]])  # IoU = 2 / (4 + 2 - 2 - 2) = 1
    ev = PanopticEvaluator(INFO, semantic=False)
    ev.update(pred, gt)
    assert ev.summarize()["panoptic"]["per_class"][13]["iou"] == 1.0


def test_unknown_semantic_ids_are_errors():
    ev = PanopticEvaluator(INFO)
    with pytest.raises(ValueError, match=r"prediction panoptic value\(s\) \[19001\]"):
        ev.update(np.array([[19001]]), np.array([[0]]))
    with pytest.raises(ValueError, match="ground truth"):
        ev.update(np.array([[0]]), np.array([[40000]]))
    with pytest.raises(ValueError, match="shape"):
        ev.update(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="integer"):
        ev.update(np.zeros((2, 2)), np.zeros((2, 2), int))


def test_merge_of_split_evaluators_equals_one_evaluator():
    rng = np.random.default_rng(5)
    pairs = [random_cityscapes_pair(rng) for _ in range(6)]
    whole, left, right = PanopticEvaluator(INFO), PanopticEvaluator(INFO), PanopticEvaluator(INFO)
    for i, (pred, gt) in enumerate(pairs):
        whole.update(pred, gt)
        (left if i % 2 else right).update(pred, gt)
    gathered = pickle.loads(pickle.dumps(right))  # what all_gather_object sends
    left.merge(gathered)
    merged_via_state = PanopticEvaluator(INFO)
    merged_via_state.merge(json.loads(json.dumps(left.state_dict())))
    a, b = whole.summarize(), merged_via_state.summarize()
    assert a["images"] == b["images"] == 6
    assert a["panoptic"]["All"] == pytest.approx(b["panoptic"]["All"], abs=1e-12)
    assert a["semantic"] == b["semantic"]


def test_merge_refuses_another_label_space():
    other = DatasetInfo(
        name="tiny", classes=(ClassInfo(1, "a", True, (1, 2, 3)),), ignore_label=0,
        label_divisor=256, num_classes=2,
    )
    with pytest.raises(ValueError, match="cannot merge"):
        PanopticEvaluator(INFO).merge(PanopticEvaluator(other))


def test_coco_convention_and_more_than_255_instances(tmp_path):
    from panseg.datasets.coco import coco_panoptic_info

    info = coco_panoptic_info()
    h, w = 20, 60
    gt = np.zeros((h, w), np.int64)
    gt[:, :] = 100 * 256  # a stuff class
    k = np.arange(h * w // 4).reshape(h // 2, w // 2)
    gt[: h // 2, : w // 2] = 1 * 256 + (k % 255) + 1  # person instances 1..255 ...
    gt[: h // 2, w // 2 :] = 2 * 256 + (k % 7) + 1
    pred = gt.copy()
    pred[0, :] = 0  # VOID prediction
    ev = PanopticEvaluator(info)
    ev.update(pred, gt)
    res = ev.summarize()
    assert res["panoptic"]["All"]["n"] == 3
    assert res["semantic"]["per_class"][100] == 1.0
    assert os.path.isdir(tmp_path)


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.uint64, np.int64])
def test_integer_dtypes_give_the_same_result(dtype):
    rng = np.random.default_rng(9)
    pairs = [random_cityscapes_pair(rng) for _ in range(3)]
    base, typed = PanopticEvaluator(INFO), PanopticEvaluator(INFO)
    for pred, gt in pairs:
        base.update(pred, gt)
        typed.update(pred.astype(dtype), gt.astype(dtype))
    assert typed.summarize() == base.summarize()


def test_empty_and_all_void_images():
    ev = PanopticEvaluator(INFO)
    ev.update(np.zeros((0, 5), np.int64), np.zeros((0, 5), np.int64))
    ev.update(np.full((3, 3), 255000), np.full((3, 3), 255000))
    res = ev.summarize()
    assert res["images"] == 2
    assert res["panoptic"]["All"] == {"pq": None, "sq": None, "rq": None, "n": 0}
    assert res["semantic"]["miou"] is None


def test_a_large_label_divisor_gives_the_same_result():
    import dataclasses

    big = dataclasses.replace(INFO, label_divisor=10**6)  # ids up to 255 * 10**6 > 2**24
    rng = np.random.default_rng(13)
    small_ev, big_ev = PanopticEvaluator(INFO), PanopticEvaluator(big)
    for pred, gt in (random_cityscapes_pair(rng) for _ in range(3)):
        small_ev.update(pred, gt)
        big_ev.update(pred // 1000 * 10**6 + pred % 1000, gt // 1000 * 10**6 + gt % 1000)
    assert big_ev.summarize() == small_ev.summarize()


def test_confusion_from_the_intersection_matrix_equals_the_pixel_confusion():
    rng = np.random.default_rng(21)
    ev = PanopticEvaluator(INFO)
    expected = 0
    for pred, gt in (random_cityscapes_pair(rng) for _ in range(4)):
        ev.update(pred, gt)
        expected = expected + confusion_matrix(pred // 1000, gt // 1000, ev.class_ids, 255)
    np.testing.assert_array_equal(ev.confusion, expected)
