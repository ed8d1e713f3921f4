"""DeepLab2's COCO label rule, hand-derived (build_coco_data.py L143-209)."""

import numpy as np
import pytest

from panseg.datasets.base import ItemProblems, RawExample, Segment
from panseg.datasets.coco import coco_panoptic_info, rgb_to_ids
from panseg.records.deeplab2 import (
    PanopticDeepLab2Encoder,
    lookup_segments,
    paint_segments,
    paint_segments_reference,
)

INFO = coco_panoptic_info()
PERSON, CAR, SKY = 1, 3, 187  # original ids -> contiguous 1, 3, 119+? (looked up below)


def contiguous(original_id):
    return next(c.id for c in INFO.classes if original_id in c.source_ids)


def raw(ids, segments):
    ids = np.asarray(ids, dtype=np.uint32)
    return RawExample(
        key="img", image_path="img.jpg", image_bytes=b"", image_format="jpeg",
        segments=tuple(segments), label_path="img.png", read_ids=lambda: ids,
    )


def test_contiguous_remap_facts():
    assert contiguous(1) == 1 and contiguous(90) == 80
    assert contiguous(92) == 81 and contiguous(200) == 133
    assert len(INFO.thing_ids) == 80 and INFO.num_classes == 134
    assert sorted(INFO.thing_ids) == list(range(1, 81))


@pytest.mark.parametrize(("crowd", "crowd_value"), [("ignore", 0), ("keep", 3 * 256)])
def test_hand_derived_label(crowd, crowd_value):
    sky = contiguous(SKY)
    # ids: 0 void, 7 unlisted, 10/11 persons, 12 crowd car, 13 car, 20 sky
    ids = [[0, 7, 10, 10], [11, 11, 12, 13], [20, 20, 20, 20]]
    segments = [  # JSON order: the second person is listed first -> it becomes instance 1
        Segment(11, PERSON, False, 2),
        Segment(10, PERSON, False, 2),
        Segment(12, CAR, True, 1),
        Segment(13, CAR, False, 1),
        Segment(20, SKY, False, 4),
    ]
    label = PanopticDeepLab2Encoder(INFO, crowd=crowd).label(raw(ids, segments), 3, 4)
    expected = [
        [0, 0, 1 * 256 + 2, 1 * 256 + 2],
        [1 * 256 + 1, 1 * 256 + 1, crowd_value, 3 * 256 + 1],
        [sky * 256] * 4,
    ]
    np.testing.assert_array_equal(label, expected)
    assert label.dtype == np.int32


def test_area_mismatch_unknown_category_and_crowd_stuff_are_all_reported():
    ids = [[1, 2, 3]]
    segments = [Segment(1, PERSON, False, 5), Segment(2, 999, False, 1), Segment(3, SKY, True, 1)]
    with pytest.raises(ItemProblems) as err:
        PanopticDeepLab2Encoder(INFO).label(raw(ids, segments), 1, 3)
    text = str(err.value)
    assert "unknown category_id 999" in text and "segment 2" in text
    assert "crowd on stuff category 187" in text and "segment 3" in text


def test_area_mismatch_names_segment():
    with pytest.raises(ItemProblems, match=r"segment 1.*area 5 in the JSON but 3 pixels"):
        PanopticDeepLab2Encoder(INFO).label(raw([[1, 1, 1]], [Segment(1, PERSON, False, 5)]), 1, 3)


def test_more_than_255_instances_is_an_error():
    ids = np.arange(1, 257, dtype=np.uint32).reshape(16, 16)
    segments = [Segment(i, PERSON, False, 1) for i in range(1, 257)]
    with pytest.raises(ItemProblems, match="256 instances of class 'person'.*at most 255"):
        PanopticDeepLab2Encoder(INFO).label(raw(ids, segments), 16, 16)
    # 255 is fine: the last instance is 255
    label = PanopticDeepLab2Encoder(INFO).label(raw(ids, segments[:255]), 16, 16)
    assert label.max() == 256 + 255 and label.reshape(-1)[-1] == 0


def test_label_size_must_match_image():
    with pytest.raises(ItemProblems, match="label size 1x3 differs from image size 2x3"):
        PanopticDeepLab2Encoder(INFO).label(raw([[1, 1, 1]], [Segment(1, PERSON, False, 3)]), 2, 3)


def test_rgb_to_ids_uses_all_three_channels():
    rgb = np.array([[[1, 2, 3], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(rgb_to_ids(rgb), [[1 + 2 * 256 + 3 * 65536, 2**24 - 1]])


@pytest.mark.parametrize("k", [0, 1, 5, 40, 300, 3000])
def test_fast_painting_equals_reference(k):
    rng = np.random.default_rng(k)
    segment_ids = rng.choice(2**24, size=k, replace=False).astype(np.uint32)
    pool = np.concatenate([segment_ids, rng.integers(0, 2**24, 5).astype(np.uint32)])
    ids = rng.choice(pool, size=(37, 53)).astype(np.uint32) if len(pool) else np.zeros((37, 53))
    values = rng.integers(0, 2**31 - 1, size=k).astype(np.int32)
    fast = paint_segments(ids.astype(np.uint32), segment_ids, values, fill=-7)
    slow = paint_segments_reference(ids.astype(np.uint32), segment_ids.tolist(), values, fill=-7)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


def test_lookup_handles_max_uint32_ids():
    segment_ids = np.array([0xFFFFFFFF, 0xFFFFFFFE, 5], dtype=np.uint32)
    ids = np.array([[0xFFFFFFFF, 5, 0xFFFFFFFD, 0xFFFFFFFE]], dtype=np.uint32)
    np.testing.assert_array_equal(lookup_segments(ids, segment_ids), [[0, 2, 3, 1]])
