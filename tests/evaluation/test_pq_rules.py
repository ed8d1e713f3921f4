"""panopticapi's PQ rules, one hand-derived case each, through the fast path and the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.pqcases import CATEGORIES, cats, random_pair
from panseg.evaluation.coco_format import PanopticFormatError, pair_stats
from panseg.evaluation.pq import PQStats, pq_average, summarize_pq
from panseg.evaluation.pq_reference import reference_average, reference_image_stats

CATS = cats()
INDEX = {c.id: k for k, c in enumerate(CATS)}
K_PERSON, K_CAR, K_ROAD = INDEX[1], INDEX[2], INDEX[7]


def seg(sid, cat, area=None, crowd=0):
    s = {"id": sid, "category_id": cat}
    if area is not None:
        s.update(iscrowd=crowd, area=area)
    return s


def stats_of(gt, pred, gt_segs, pred_segs) -> PQStats:
    gt = np.atleast_2d(np.asarray(gt, np.uint32))
    pred = np.atleast_2d(np.asarray(pred, np.uint32))
    fast = pair_stats(
        gt,
        pred,
        {"image_id": 1, "segments_info": gt_segs},
        {"image_id": 1, "segments_info": pred_segs},
        INDEX,
    )
    ref = reference_image_stats(gt, pred, gt_segs, pred_segs, CATS)
    for field in ("tp", "fp", "fn"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(ref, field))
    np.testing.assert_allclose(fast.iou, ref.iou, rtol=0, atol=1e-12)
    return fast


def counts(stats: PQStats, k: int) -> tuple[int, int, int]:
    return int(stats.tp[k]), int(stats.fp[k]), int(stats.fn[k])


def test_iou_exactly_half_is_no_match():
    # GT 4 px, prediction 2 px inside it: I = 2, U = 4, IoU = 0.5 -> FN and FP
    s = stats_of([5, 5, 5, 5], [3, 3, 0, 0], [seg(5, 1, 4)], [seg(3, 1)])
    assert counts(s, K_PERSON) == (0, 1, 1)


def test_iou_above_half_is_a_match():
    # GT 5 px, prediction 3 px inside: I = 3, U = 5, IoU = 0.6
    s = stats_of([5] * 5, [3, 3, 3, 0, 0], [seg(5, 1, 5)], [seg(3, 1)])
    assert counts(s, K_PERSON) == (1, 0, 0)
    assert s.iou[K_PERSON] == pytest.approx(0.6, abs=1e-15)


def test_void_is_removed_from_the_union():
    # prediction covers GT (4 px) and 4 VOID px: U = 8 + 4 - 4 - 4 = 4, IoU = 1
    s = stats_of([5, 5, 5, 5, 0, 0, 0, 0], [3] * 8, [seg(5, 1, 4)], [seg(3, 1)])
    assert counts(s, K_PERSON) == (1, 0, 0)
    assert s.iou[K_PERSON] == 1.0


def test_crowd_is_not_removed_from_the_union_and_half_crowd_is_a_false_positive():
    # GT 4 px + crowd 4 px of the same class; prediction over all 8:
    # U = 8 + 4 - 4 = 8, IoU = 0.5 -> no match; ignored share 4/8 = 0.5 is not > 0.5 -> FP
    gt = [5, 5, 5, 5, 6, 6, 6, 6]
    s = stats_of(gt, [3] * 8, [seg(5, 1, 4), seg(6, 1, 4, crowd=1)], [seg(3, 1)])
    assert counts(s, K_PERSON) == (0, 1, 1)


def test_prediction_mostly_on_void_is_not_a_false_positive():
    gt = [0, 0, 0, 0, 0, 8, 8, 8, 8, 8]
    s = stats_of(gt, [3] * 9 + [4], [seg(8, 7, 5)], [seg(3, 1), seg(4, 7)])
    # person prediction: 5 of 9 px on VOID -> ignored; road prediction: IoU 1/5 -> FP; road FN
    assert counts(s, K_PERSON) == (0, 0, 0)
    assert counts(s, K_ROAD) == (0, 1, 1)


def test_exactly_half_void_is_a_false_positive():
    s = stats_of([0, 0, 0, 0, 8, 8, 8, 8], [3] * 8, [seg(8, 7, 4)], [seg(3, 1)])
    assert counts(s, K_PERSON) == (0, 1, 0)


def test_crowd_of_the_same_category_only_excuses_a_prediction():
    gt = [6] * 6 + [8, 8]
    gt_segs = [seg(6, 1, 6, crowd=1), seg(8, 7, 2)]
    same = stats_of(gt, [3] * 6 + [0, 0], gt_segs, [seg(3, 1)])
    other = stats_of(gt, [3] * 6 + [0, 0], gt_segs, [seg(3, 2)])
    assert counts(same, K_PERSON) == (0, 0, 0)
    assert counts(other, K_CAR) == (0, 1, 0)
    assert counts(same, K_ROAD) == (0, 0, 1)  # crowd is never a false negative


@pytest.mark.parametrize("crowd_order, fp", [((1, 2), 1), ((2, 1), 0)])
def test_only_the_last_listed_crowd_of_a_category_counts(crowd_order, fp):
    gt = [1, 1, 1, 1, 2, 2, 2, 2]
    gt_segs = [seg(i, 1, 4, crowd=1) for i in crowd_order]
    s = stats_of(gt, [3, 3, 3, 3, 0, 0, 0, 0], gt_segs, [seg(3, 1)])
    assert counts(s, K_PERSON) == (0, fp, 0)


def test_ground_truth_area_is_taken_from_the_json():
    # real area 4, JSON says 2: U = 4 + 2 - 4 = 2, IoU = 2 (panopticapi gives PQ above 1)
    s = stats_of([5, 5, 5, 5], [3, 3, 3, 3], [seg(5, 1, 2)], [seg(3, 1)])
    assert counts(s, K_PERSON) == (1, 0, 0)
    assert s.iou[K_PERSON] == 2.0
    assert pq_average(s, CATS, True)[0]["pq"] == 2.0


def test_every_pair_above_half_counts_when_the_json_area_is_wrong():
    # JSON area 1 for a 4 px GT: both 2 px predictions get U = 2 + 1 - 2 = 1
    s = stats_of([5, 5, 5, 5], [3, 3, 4, 4], [seg(5, 1, 1)], [seg(3, 1), seg(4, 1)])
    assert counts(s, K_PERSON) == (2, 0, 0)


def test_prediction_area_comes_from_the_png_not_the_json():
    pred_segs = [dict(seg(3, 1), area=1000)]
    s = stats_of([5] * 5, [3, 3, 3, 0, 0], [seg(5, 1, 5)], pred_segs)
    assert s.iou[K_PERSON] == pytest.approx(0.6, abs=1e-15)


def test_unlisted_ground_truth_ids_are_not_void():
    # GT id 9 is not in the JSON: the prediction on it is a false positive, not ignored
    s = stats_of([9, 9, 9, 9], [3, 3, 3, 3], [], [seg(3, 1)])
    assert counts(s, K_PERSON) == (0, 1, 0)


def test_categories_without_tp_fp_fn_are_left_out_and_empty_groups_are_null():
    s = stats_of([5, 5, 5, 5], [3, 3, 3, 3], [seg(5, 1, 4)], [seg(3, 1)])
    result = summarize_pq(s, CATS)
    assert result["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 1}
    assert result["Things"]["n"] == 1
    assert result["Stuff"] == {"pq": None, "sq": None, "rq": None, "n": 0}
    assert result["per_class"][2]["pq"] == 0.0
    assert reference_average(s, CATS, False) == result["Stuff"]


def test_empty_prediction_gives_false_negatives_only():
    s = stats_of([5, 5, 8, 8], [0, 0, 0, 0], [seg(5, 1, 2), seg(8, 7, 2)], [])
    result = summarize_pq(s, CATS)
    assert result["All"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 2}


def test_all_void_ground_truth_and_prediction_gives_null():
    s = stats_of([0, 0], [0, 0], [], [])
    result = summarize_pq(s, CATS)
    assert all(result[g]["pq"] is None and result[g]["n"] == 0 for g in ("All", "Things", "Stuff"))


def test_more_than_255_segments_and_large_ids():
    rng = np.random.default_rng(3)
    ids = rng.choice(np.arange(1, 256**3), size=400, replace=False)
    gt = np.repeat(ids[:300], 4).reshape(30, 40)
    pred = gt.copy()
    pred[:, ::4] = 0
    gt_segs = [seg(int(i), 1 if k % 2 else 7, 4) for k, i in enumerate(ids[:300])]
    pred_segs = [seg(int(i), 1 if k % 2 else 7) for k, i in enumerate(ids[:300])]
    s = stats_of(gt, pred, gt_segs, pred_segs)
    assert int(s.tp.sum()) == 300 and int(s.fp.sum() + s.fn.sum()) == 0


@pytest.mark.parametrize("seed", range(40))
def test_fast_path_equals_the_reference_on_random_pairs(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 30, size=2))
    gt, pred, gt_segs, pred_segs = random_pair(rng, h, w, n_segments=int(rng.integers(1, 20)))
    stats_of(gt, pred, gt_segs, pred_segs)


# ---------------------------------------------------------------- panopticapi's checks
def check_error(gt, pred, gt_segs, pred_segs, *fragments):
    with pytest.raises(PanopticFormatError) as info:
        pair_stats(
            np.atleast_2d(np.asarray(gt, np.uint32)),
            np.atleast_2d(np.asarray(pred, np.uint32)),
            {"image_id": "frankfurt_01", "file_name": "g.png", "segments_info": gt_segs},
            {"image_id": "frankfurt_01", "file_name": "p.png", "segments_info": pred_segs},
            INDEX,
        )
    for fragment in ("frankfurt_01", *fragments):
        assert fragment in str(info.value)


def test_unknown_category_is_an_error():
    check_error([5, 5], [3, 3], [seg(5, 1, 2)], [seg(3, 99)], "segment 3", "category_id 99")


def test_json_segment_missing_from_the_png_is_an_error():
    check_error([5, 5], [3, 3], [seg(5, 1, 2)], [seg(3, 1), seg(4, 1)], "[4]", "not in the PNG")


def test_png_id_missing_from_the_json_is_an_error():
    check_error([5, 5], [3, 7], [seg(5, 1, 2)], [seg(3, 1)], "[7]", "not in the prediction JSON")


def test_size_mismatch_is_an_error():
    check_error([[5, 5]], [[3], [3]], [seg(5, 1, 2)], [seg(3, 1)], "2x1", "1x2", "g.png")


def test_missing_gt_field_is_an_error():
    check_error([5, 5], [3, 3], [{"id": 5, "category_id": 1}], [seg(3, 1)], "'iscrowd'")


def test_categories_are_the_test_fixture():
    assert [c.id for c in CATS] == [c["id"] for c in CATEGORIES]


def test_negative_json_ids_never_alias_a_pixel_id():
    # a GT id of -1 in the JSON matches no pixel: it is a false negative, pixel id 5 is unlisted
    s = stats_of([5, 5], [3, 3], [seg(-1, 1, 2)], [seg(3, 1)])
    assert counts(s, K_PERSON) == (0, 1, 1)
