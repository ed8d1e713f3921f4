"""Merge rules on hand-made maps, whole pipeline against the oracle, batch and scores."""

from __future__ import annotations

import pytest
import torch

from panseg.postprocess import (
    get_panoptic_segmentation,
    instance_scores,
    merge_semantic_and_instance,
    number_instances,
    panoptic_batch,
)
from panseg.postprocess.reference import (
    reference_instance_scores,
    reference_merge,
    reference_panoptic,
)
from panseg.postprocess.synthetic import synthetic_outputs


def _merge(semantic, instance, thing_seg, things, divisor=1000, area=2, void=-1):
    """The fast merge on dense inputs, as get_panoptic_segmentation feeds it."""
    flat_ins = instance.reshape(-1)
    fg_index = torch.nonzero(flat_ins != 0).squeeze(1)
    fg_instance = flat_ins[fg_index]
    fg_thing = (fg_instance > 0) & (thing_seg.reshape(-1)[fg_index] > 0)
    return merge_semantic_and_instance(
        semantic, fg_index, fg_instance, fg_thing, things, divisor, area, void
    )


def test_majority_vote_ties_pick_the_smallest_class_and_numbering_is_per_class() -> None:
    semantic = torch.tensor([[5, 5, 3, 3, 7, 7], [7, 7, 7, 3, 3, 0]])
    instance = torch.tensor([[2, 2, 2, 2, 4, 4], [1, 1, 1, 3, 3, 0]])
    thing = torch.ones_like(semantic)
    thing[1, 5] = 0
    # id 1 -> class 7 (first 7), id 2 -> tie 5/3 -> 3 (first 3), id 3 -> 3 (second 3),
    # id 4 -> 7 (second 7); pixel (1, 5) is stuff class 0 with area 1 < 2 -> void.
    expected = torch.tensor(
        [[3001, 3001, 3001, 3001, 7002, 7002], [7001, 7001, 7001, 3002, 3002, -1]]
    )
    got = _merge(semantic, instance, thing, things=[3, 5, 7])
    assert torch.equal(got, expected)
    assert torch.equal(reference_merge(semantic, instance, thing, [3, 5, 7], 1000, 2, -1), expected)


def test_stuff_area_threshold_is_inclusive_and_things_never_become_stuff() -> None:
    semantic = torch.tensor([[0, 0, 1, 1, 1, 2]])
    instance = torch.zeros_like(semantic)
    got = _merge(semantic, instance, torch.zeros_like(semantic), things=[2], area=2, divisor=10)
    assert got.tolist() == [[0, 0, 10, 10, 10, -1]]
    got = _merge(semantic, instance, torch.zeros_like(semantic), things=[2], area=3, divisor=10)
    assert got.tolist() == [[-1, -1, 10, 10, 10, -1]]


def test_number_instances() -> None:
    assert number_instances(torch.tensor([4, 2, 4, 4, 1, 2])).tolist() == [1, 1, 2, 3, 1, 2]
    assert number_instances(torch.zeros(0, dtype=torch.long)).tolist() == []


def test_no_centers_leaves_things_void() -> None:
    semantic = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]]])
    center = torch.zeros(1, 2, 4)
    offsets = torch.zeros(2, 2, 4)
    panoptic, centers = get_panoptic_segmentation(semantic, center, offsets, [1], 1000, 1, -1)
    assert centers.shape == (1, 0, 2)
    assert panoptic.tolist() == [[[0, 0, -1, -1], [0, 0, -1, -1]]]


def test_two_instances_hand_made() -> None:
    semantic = torch.tensor([[[1, 1, 0, 2, 2]]])
    center = torch.tensor([[[0.9, 0.0, 0.0, 0.0, 0.8]]])
    offsets = torch.zeros(2, 1, 5)
    offsets[1] = torch.tensor([-1.0, -1.0, 0.0, 1.0, 0.0])
    panoptic, centers = get_panoptic_segmentation(
        semantic,
        center,
        offsets,
        [1, 2],
        label_divisor=100,
        stuff_area=1,
        void_label=255,
        nms_kernel=3,
    )
    assert centers.tolist() == [[[0, 0], [0, 4]]]
    assert panoptic.tolist() == [[[101, 101, 0, 201, 201]]]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("nms_kernel,top_k,stuff_area", [(7, 200, 64), (3, 4, 1), (41, 200, 500)])
def test_matches_reference_on_synthetic_outputs(
    seed: int, nms_kernel: int, top_k: int, stuff_area: int
) -> None:
    out = synthetic_outputs(64, 96, num_instances=8, seed=seed)
    args = (out.semantic, out.center, out.offsets, out.thing_ids, 1000, stuff_area, -1)
    kwargs = {"threshold": 0.1, "nms_kernel": nms_kernel, "top_k": top_k}
    got = get_panoptic_segmentation(*args, **kwargs)
    expected = reference_panoptic(*args, **kwargs)
    assert torch.equal(got[0], expected[0])
    assert torch.equal(got[1], expected[1])
    assert got[0].dtype == torch.long and got[0].shape == (1, 64, 96)


@pytest.mark.parametrize("seed", range(3))
def test_random_noise_and_foreground_masks_match_reference(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    shape = (1, 30, 50)
    semantic = torch.randint(-1, 6, shape, generator=gen)  # includes a negative label
    center = torch.rand(shape, generator=gen) ** 4
    offsets = torch.randn(2, 30, 50, generator=gen) * 20
    for mask in (None, torch.randint(0, 3, shape, generator=gen), torch.rand(shape) > 0.5):
        args = (semantic, center, offsets, {2, 4}, 100, 20, -7)
        got = get_panoptic_segmentation(*args, nms_kernel=5, foreground_mask=mask)
        expected = reference_panoptic(*args, nms_kernel=5, foreground_mask=mask)
        assert torch.equal(got[0], expected[0])


def test_no_thing_pixels_and_more_than_255_instances() -> None:
    out = synthetic_outputs(48, 64, num_instances=4, seed=1)
    stuff_only = torch.zeros_like(out.semantic)
    got = get_panoptic_segmentation(stuff_only, out.center, out.offsets, out.thing_ids, 1000, 1, -1)
    assert torch.equal(got[0], torch.zeros_like(stuff_only))
    # A checkerboard of isolated peaks: 300 centers, every pixel a thing of class 1.
    center = torch.zeros(1, 40, 60)
    center[0, ::2, ::4] = 0.5
    semantic = torch.ones(1, 40, 60, dtype=torch.long)
    offsets = torch.zeros(2, 40, 60)
    args = (semantic, center, offsets, [1], 1000, 1, -1)
    got = get_panoptic_segmentation(*args, nms_kernel=1, top_k=None)
    assert got[1].shape == (1, 300, 2)
    assert int(got[0].max()) == 1300
    assert torch.equal(got[0], reference_panoptic(*args, nms_kernel=1, top_k=None)[0])


def test_batch_equals_single_images_and_scores_match_reference() -> None:
    outs = [synthetic_outputs(40, 56, num_instances=5, seed=s) for s in range(3)]
    logits = torch.stack([o.logits for o in outs])
    center = torch.stack([o.center for o in outs])
    offsets = torch.stack([o.offsets for o in outs])
    things = outs[0].thing_ids
    result = panoptic_batch(None, center, offsets, things, 1000, 30, semantic_logits=logits)
    assert result.panoptic.shape == (3, 40, 56)
    for i, o in enumerate(outs):
        single = get_panoptic_segmentation(o.semantic, o.center, o.offsets, things, 1000, 30, -1)
        assert torch.equal(result.panoptic[i], single[0][0])
        assert torch.equal(result.centers[i], single[1][0])
        expected = reference_instance_scores(single[0][0], o.logits, o.center[0], things, 1000)
        got = result.instances[i]
        assert got.ids.tolist() == [e[0] for e in expected]
        assert got.classes.tolist() == [e[1] for e in expected]
        assert torch.allclose(got.scores, torch.tensor([e[2] for e in expected]), rtol=1e-6)
    assert len(result.instances[0].ids) > 0


def test_instance_score_hand_made() -> None:
    panoptic = torch.tensor([[101, 101, 0], [-1, 101, 0]])
    logits = torch.zeros(2, 2, 3)
    center = torch.tensor([[0.5, 0.25, 0.0], [0.0, 0.0, 0.0]])
    got = instance_scores(panoptic, logits, center, [1], 100)
    # Pixels (0,0), (0,1), (1,1): centroid (1/3, 2/3) -> (0, 0); probability 0.5 everywhere.
    assert got.ids.tolist() == [101] and got.classes.tolist() == [1]
    assert got.scores.tolist() == [0.25]


def test_bad_inputs_are_named() -> None:
    sem = torch.zeros(1, 4, 5, dtype=torch.long)
    heat = torch.zeros(1, 4, 5)
    off = torch.zeros(2, 4, 5)
    with pytest.raises(ValueError, match="sem_seg"):
        get_panoptic_segmentation(sem.float(), heat, off, [1], 1000, 1, -1)
    with pytest.raises(ValueError, match="offsets"):
        get_panoptic_segmentation(sem, heat, off[:, :3], [1], 1000, 1, -1)
    with pytest.raises(ValueError, match="center_heatmap"):
        get_panoptic_segmentation(sem, heat[:, :3], off, [1], 1000, 1, -1)
    with pytest.raises(ValueError, match="semantic_logits"):
        panoptic_batch(None, heat, off[None], [1], 1000, 1)
