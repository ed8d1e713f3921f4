"""COCO panoptic files: dataset PQ equal to the panopticapi core (cityscapesScripts' copy, which
CI installs: imported plainly so that a missing oracle fails instead of skipping)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as cs_pq
from PIL import Image

from evaluation.pqcases import CATEGORIES, random_pair, write_coco
from panseg.evaluation.coco_format import PanopticFormatError, evaluate_coco_panoptic, read_id_png


def oracle(paths: dict) -> dict:
    """panopticapi's per-image core and averaging, as shipped in cityscapesscripts 2.3.0."""
    gt = json.load(open(paths["gt_json"]))
    pred = json.load(open(paths["pred_json"]))
    categories = {c["id"]: c for c in gt["categories"]}
    preds = {a["image_id"]: a for a in pred["annotations"]}
    pairs = [(a, preds[a["image_id"]]) for a in gt["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        stat = cs_pq.pq_compute_single_core(
            0, pairs, paths["gt_dir"], paths["pred_dir"], categories
        )
    return stat, categories


def assert_same(ours: dict, stat, categories) -> None:
    for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
        try:
            theirs, per_class = stat.pq_average(categories, isthing)
        except ZeroDivisionError:  # panopticapi crashes; panseg reports null
            assert ours[name] == {"pq": None, "sq": None, "rq": None, "n": 0}
            continue
        for key in ("pq", "sq", "rq", "n"):
            assert ours[name][key] == pytest.approx(theirs[key], rel=0, abs=1e-9)
        if name == "All":
            for cat, vals in per_class.items():
                for key in ("pq", "sq", "rq"):
                    assert ours["per_class"][cat][key] == pytest.approx(vals[key], rel=0, abs=1e-9)


@pytest.mark.parametrize("workers", [1, 2])
def test_dataset_pq_equals_panopticapi_core(tmp_path, workers):
    rng = np.random.default_rng(workers)
    pairs = [random_pair(rng, 30, 40, n_segments=15) for _ in range(12)]
    paths = write_coco(str(tmp_path), pairs, image_ids=[f"img_{i}" for i in range(12)])
    ours = evaluate_coco_panoptic(**paths, workers=workers, progress=False, chunk_size=2)
    assert ours["images"] == 12
    assert_same(ours, *oracle(paths))


def test_empty_predictions_report_null_groups_instead_of_crashing(tmp_path):
    gt = np.array([[5, 5, 0, 0]])
    pairs = [(gt, np.zeros_like(gt), [], [])]
    paths = write_coco(str(tmp_path), pairs)
    ours = evaluate_coco_panoptic(**paths, progress=False)
    assert_same(ours, *oracle(paths))
    assert ours["All"]["pq"] is None


def test_things_only_dataset_has_a_null_stuff_group(tmp_path):
    gt = np.array([[5, 5, 6, 6]])
    pairs = [(gt, gt, [{"id": 5, "category_id": 1, "iscrowd": 0, "area": 2}],
              [{"id": 5, "category_id": 1}, {"id": 6, "category_id": 2}])]
    paths = write_coco(str(tmp_path), pairs, categories=CATEGORIES[:2])
    ours = evaluate_coco_panoptic(**paths, progress=False)
    assert_same(ours, *oracle(paths))
    assert ours["Stuff"]["n"] == 0 and ours["Things"]["n"] == 2


def test_missing_prediction_for_an_image_is_an_error(tmp_path):
    paths = write_coco(str(tmp_path), [random_pair(np.random.default_rng(0), 8, 8, 3)])
    with open(paths["pred_json"], "w") as f:
        json.dump({"annotations": []}, f)
    with pytest.raises(PanopticFormatError, match="no prediction for the image with id 0"):
        evaluate_coco_panoptic(**paths, progress=False)


def test_missing_folder_and_bad_json_are_errors(tmp_path):
    paths = write_coco(str(tmp_path), [random_pair(np.random.default_rng(0), 8, 8, 3)])
    with pytest.raises(PanopticFormatError, match="prediction segmentation folder"):
        evaluate_coco_panoptic(**{**paths, "pred_dir": str(tmp_path / "nope")}, progress=False)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PanopticFormatError, match="not valid JSON"):
        evaluate_coco_panoptic(**{**paths, "pred_json": str(tmp_path / "bad.json")}, progress=False)


def test_errors_in_a_worker_name_the_image(tmp_path):
    gt = np.array([[5, 5]])
    pairs = [(gt, gt, [{"id": 5, "category_id": 1, "iscrowd": 0, "area": 2}],
              [{"id": 5, "category_id": 1}])] * 3
    pairs.append((gt, gt, pairs[0][2], [{"id": 5, "category_id": 99}]))
    paths = write_coco(str(tmp_path), pairs)
    with pytest.raises(PanopticFormatError, match="image 3: prediction segment 5 has unknown"):
        evaluate_coco_panoptic(**paths, workers=2, progress=False, chunk_size=1)


def test_png_ids_follow_rgb2id_and_ignore_alpha(tmp_path):
    rgba = np.array([[[1, 2, 3, 255], [255, 255, 255, 0]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert read_id_png(str(tmp_path / "a.png")).tolist() == [[1 + 2 * 256 + 3 * 65536, 256**3 - 1]]
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "g.png")
    with pytest.raises(PanopticFormatError, match="must be RGB"):
        read_id_png(str(tmp_path / "g.png"))
    with pytest.raises(PanopticFormatError, match="does not exist"):
        read_id_png(str(tmp_path / "none.png"))


@pytest.mark.parametrize("seed", range(6))
def test_odd_but_valid_json_follows_panopticapi(tmp_path, seed):
    """Repeated segment ids, float areas, id 0 listed on either side, unknown GT categories,
    a repeated category id: panopticapi's dict semantics, reproduced."""
    rng = np.random.default_rng(100 + seed)
    pairs = []
    for _ in range(4):
        gt, pred, gs, ps = random_pair(rng, 20, 30, 10)
        if gs and rng.random() < 0.5:
            gs.append(dict(gs[0], area=gs[0]["area"] + 1.5))
        if rng.random() < 0.3:
            gs.append({"id": 0, "category_id": int(rng.choice([1, 7])),
                       "iscrowd": int(rng.random() < 0.5), "area": 5})
        if rng.random() < 0.3 and (pred == 0).any():
            ps.append({"id": 0, "category_id": 1})
        if gs and rng.random() < 0.3:
            gs[-1] = dict(gs[-1], category_id=55)
        if ps and rng.random() < 0.3:
            ps.append(dict(ps[0]))
        pairs.append((gt, pred, gs, ps))
    categories = [*CATEGORIES, dict(CATEGORIES[0], name="again")]
    paths = write_coco(str(tmp_path), pairs, categories=categories)
    assert_same(evaluate_coco_panoptic(**paths, progress=False), *oracle(paths))


def test_semantic_iou_of_the_files_equals_painted_label_maps(tmp_path):
    from panseg.evaluation.semantic import reference_iou

    rng = np.random.default_rng(31)
    pairs = [random_pair(rng, 24, 32, 12) for _ in range(5)]
    paths = write_coco(str(tmp_path), pairs)
    ours = evaluate_coco_panoptic(**paths, progress=False)["semantic"]
    known = {c["id"] for c in CATEGORIES}
    gts, preds = [], []
    for gt, pred, gt_segs, pred_segs in pairs:
        g = np.full(gt.shape, -1)  # VOID, unlisted ids and unknown categories: not counted
        for s in gt_segs:  # crowd segments keep their class
            if s["category_id"] in known:
                g[gt == s["id"]] = s["category_id"]
        p = np.full(pred.shape, -2)  # predicted VOID: no class
        for s in pred_segs:
            p[pred == s["id"]] = s["category_id"]
        gts.append(g)
        preds.append(p)
    expected = reference_iou(preds, gts, [c["id"] for c in CATEGORIES], -1)
    for c, iou in zip(CATEGORIES, expected, strict=True):
        got = ours["per_class"][c["id"]]
        assert (got is None) if np.isnan(iou) else got == pytest.approx(iou, abs=1e-12)
    assert ours["miou"] == pytest.approx(np.nanmean(expected), abs=1e-12)
