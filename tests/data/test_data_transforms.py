"""Joint augmentation: nearest labels, alignment, padding, determinism, detectron2 sizes."""

from __future__ import annotations

import numpy as np
import pytest

from panseg.data.transforms import (
    MEAN_RGB,
    ColorJitter,
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    ResizeShortestEdge,
    cityscapes_train_transforms,
    coco_train_transforms,
    nearest_indices,
    resize_label,
)

VOID = 255000


def block_sample(h=96, w=128, block=16, seed=0):
    """Constant 16×16 blocks; the image's colour is a function of the block's label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 40, (h // block, w // block)) * 1000 + rng.integers(0, 3, (1, 1))
    panoptic = np.kron(labels, np.ones((block, block), dtype=np.int64)).astype(np.int32)
    return {"image": colour_of(panoptic), "panoptic": panoptic}


def colour_of(panoptic):
    v = panoptic // 1000
    return np.stack([v * 5, 255 - v * 5, (v * 37) % 256], axis=-1).astype(np.uint8)


def uniform_interior(label, radius):
    """Pixels whose (2r+1)² neighbourhood has a single label value."""
    h, w = label.shape
    ok = np.zeros((h, w), bool)
    pad = np.pad(label, radius, constant_values=-1)  # image borders count as edges
    ok[:] = True
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            ok &= pad[radius + dy : radius + dy + h, radius + dx : radius + dx + w] == label
    return ok


@pytest.mark.parametrize("seed", range(6))
def test_image_and_label_stay_aligned_and_labels_come_from_input(seed):
    sample = block_sample(seed=seed)
    t = Compose(
        [RandomScale(0.5, 2.0), RandomCrop(80, 100, label_fill=VOID), RandomHorizontalFlip()]
    )
    out = t(sample, np.random.default_rng(seed))
    assert out["image"].shape == (80, 100, 3) and out["panoptic"].shape == (80, 100)
    assert out["image"].dtype == np.uint8 and out["panoptic"].dtype == np.int32
    allowed = set(np.unique(sample["panoptic"])) | {VOID}
    assert set(np.unique(out["panoptic"])) <= allowed  # nearest: no new values
    inside = uniform_interior(out["panoptic"], 3) & (out["panoptic"] != VOID)
    assert inside.sum() > 500
    expected = colour_of(out["panoptic"])
    np.testing.assert_array_equal(out["image"][inside], expected[inside])


def test_same_seed_same_sample():
    sample = block_sample()
    t = cityscapes_train_transforms(label_fill=VOID, crop=(64, 96), jitter=0.3)
    a = t(sample, np.random.default_rng(42))
    b = t(sample, np.random.default_rng(42))
    c = t(sample, np.random.default_rng(43))
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["panoptic"], b["panoptic"])
    assert not np.array_equal(a["image"], c["image"]) or not np.array_equal(
        a["panoptic"], c["panoptic"]
    )


def test_crop_pads_image_with_mean_and_label_with_void():
    sample = block_sample(h=32, w=48)
    out = RandomCrop(40, 64, label_fill=VOID)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out["image"][:32, :48], sample["image"])
    assert (out["image"][32:] == MEAN_RGB).all() and (out["image"][:, 48:] == MEAN_RGB).all()
    assert (out["panoptic"][32:] == VOID).all() and (out["panoptic"][:, 48:] == VOID).all()
    np.testing.assert_array_equal(out["panoptic"][:32, :48], sample["panoptic"])


def test_flip_and_no_label_samples():
    sample = block_sample()
    out = RandomHorizontalFlip(p=1.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out["panoptic"], sample["panoptic"][:, ::-1])
    np.testing.assert_array_equal(out["image"], sample["image"][:, ::-1])
    image_only = {"image": sample["image"]}
    out = coco_train_transforms(label_fill=0)(image_only, np.random.default_rng(1))
    assert out["image"].shape == (640, 640, 3) and "panoptic" not in out


def test_resize_shortest_edge_matches_detectron2_formula():
    # detectron2 ResizeShortestEdge.get_output_shape, worked by hand
    assert ResizeShortestEdge.output_shape(1024, 2048, 512, 4096) == (512, 1024)
    assert ResizeShortestEdge.output_shape(1024, 2048, 2048, 4096) == (2048, 4096)
    assert ResizeShortestEdge.output_shape(480, 640, 960, 960) == (720, 960)
    assert ResizeShortestEdge.output_shape(427, 640, 320, 960) == (320, 480)  # 479.6 -> 480
    sample = block_sample(h=48, w=64)
    out = ResizeShortestEdge([24], max_size=1000)(sample, np.random.default_rng(0))
    assert out["image"].shape[:2] == (24, 32) and out["panoptic"].shape == (24, 32)


def test_nearest_indices_and_label_resize():
    np.testing.assert_array_equal(nearest_indices(4, 8), [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(nearest_indices(8, 4), [1, 3, 5, 7])
    lab = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.testing.assert_array_equal(resize_label(lab, 6, 8)[::2, ::2], lab)


def test_color_jitter_changes_image_only():
    sample = block_sample()
    out = ColorJitter(0.4, 0.4, 0.4)(sample, np.random.default_rng(0))
    assert out["panoptic"] is sample["panoptic"]
    assert out["image"].dtype == np.uint8 and not np.array_equal(out["image"], sample["image"])
    with pytest.raises(ValueError):
        ColorJitter(brightness=2.0)
    with pytest.raises(ValueError, match="uint8"):
        Compose([])({"image": np.zeros((4, 4, 3), np.float32)}, np.random.default_rng(0))


@pytest.mark.parametrize("seed", range(4))
def test_fused_resize_crop_matches_resize_then_crop(seed):
    sample = block_sample(h=64, w=96, seed=seed)
    sample["image"] = np.random.default_rng(seed).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    steps = [RandomScale(0.5, 2.0), RandomCrop(48, 64, label_fill=VOID)]
    fused = Compose(steps)(sample, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    eager = sample
    for t in steps:  # called one by one: full resize, then crop
        eager = t(eager, rng)
    np.testing.assert_array_equal(fused["panoptic"], eager["panoptic"])
    diff = np.abs(fused["image"].astype(int) - eager["image"].astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.5
