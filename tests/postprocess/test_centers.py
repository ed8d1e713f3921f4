"""Center extraction: hand-made cases of the threshold / NMS / top-k rules, and the oracle."""

from __future__ import annotations

import pytest
import torch

from panseg.postprocess import find_instance_centers
from panseg.postprocess.reference import reference_centers


def _heat(height: int, width: int, points: dict[tuple[int, int], float]) -> torch.Tensor:
    heat = torch.zeros(height, width)
    for (y, x), v in points.items():
        heat[y, x] = v
    return heat


def _as_list(centers: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(p) for p in centers.tolist()]


def test_threshold_is_strict_and_order_is_raster() -> None:
    heat = _heat(8, 8, {(6, 1): 0.5, (1, 6): 0.1, (0, 0): 0.3})
    found = find_instance_centers(heat, threshold=0.1, nms_kernel=1, top_k=None)
    assert _as_list(found) == [(0, 0), (6, 1)]  # 0.1 is not above the threshold
    assert found.dtype == torch.long and found.shape == (2, 2)


def test_nms_window_and_plateau() -> None:
    # (2, 2) is suppressed by the larger (2, 5) at distance 3 with a 7x7 window; (2, 5) and
    # (2, 6) tie and both survive; (7, 7) is 5 away from everything larger.
    heat = _heat(10, 10, {(2, 2): 0.5, (2, 5): 0.9, (2, 6): 0.9, (7, 7): 0.4})
    found = find_instance_centers(heat, threshold=0.1, nms_kernel=7, top_k=None)
    assert _as_list(found) == [(2, 5), (2, 6), (7, 7)]
    # With a 5x5 window (2, 2) and (2, 5) are 3 apart: (2, 2) survives.
    found = find_instance_centers(heat, threshold=0.1, nms_kernel=5, top_k=None)
    assert _as_list(found) == [(2, 2), (2, 5), (2, 6), (7, 7)]


def test_top_k_keeps_strictly_above_kth_score() -> None:
    heat = _heat(9, 9, {(0, 0): 0.9, (0, 4): 0.5, (0, 8): 0.5, (8, 0): 0.3, (8, 8): 0.2})
    # k-th (2nd) score is 0.5: only scores > 0.5 remain, the tie at 0.5 is dropped.
    assert _as_list(find_instance_centers(heat, 0.1, 3, top_k=2)) == [(0, 0)]
    # 3rd score 0.5 again; 4th is 0.3 -> keeps 0.9, 0.5, 0.5.
    assert _as_list(find_instance_centers(heat, 0.1, 3, top_k=3)) == [(0, 0)]
    assert _as_list(find_instance_centers(heat, 0.1, 3, top_k=4)) == [(0, 0), (0, 4), (0, 8)]
    # Exactly k peaks: the k-th is itself dropped. Fewer peaks than k: all positive peaks.
    assert len(find_instance_centers(heat, 0.1, 3, top_k=5)) == 4
    assert len(find_instance_centers(heat, 0.1, 3, top_k=6)) == 5
    assert len(find_instance_centers(heat, 0.1, 3, top_k=200)) == 5


def test_top_k_larger_than_image_keeps_all_peaks() -> None:
    heat = _heat(3, 3, {(1, 1): 0.7})
    assert _as_list(find_instance_centers(heat, 0.1, 3, top_k=200)) == [(1, 1)]


def test_negative_threshold_keeps_only_positive_scores() -> None:
    heat = torch.full((5, 5), -0.05)
    heat[2, 2] = 0.0
    assert find_instance_centers(heat, threshold=-0.5, nms_kernel=3, top_k=None).shape == (0, 2)
    heat[4, 4] = 0.01
    assert _as_list(find_instance_centers(heat, -0.5, 3, top_k=None)) == [(4, 4)]


def test_empty_and_shapes() -> None:
    assert find_instance_centers(torch.zeros(1, 4, 6)).shape == (0, 2)
    with pytest.raises(ValueError, match="odd"):
        find_instance_centers(torch.zeros(4, 4), nms_kernel=4)
    with pytest.raises(ValueError, match="top_k"):
        find_instance_centers(torch.zeros(4, 4), top_k=0)
    with pytest.raises(ValueError, match=r"\[1, H, W\]"):
        find_instance_centers(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="floating"):
        find_instance_centers(torch.zeros(4, 4, dtype=torch.long))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kernel,top_k", [(1, None), (3, 200), (7, 5), (7, 200), (13, 3)])
def test_matches_reference_on_random_maps(seed: int, kernel: int, top_k: int | None) -> None:
    gen = torch.Generator().manual_seed(seed)
    # Quantised scores make ties (plateaus, equal k-th scores) frequent.
    heat = torch.randint(0, 12, (24, 40), generator=gen).float() / 10.0
    if seed % 2:
        heat = torch.rand(24, 40, generator=gen) ** 6  # sparse peaks: gather path
    expected = reference_centers(heat, 0.1, kernel, top_k)
    assert torch.equal(find_instance_centers(heat, 0.1, kernel, top_k), expected)


def test_non_finite_scores_follow_the_reference() -> None:
    gen = torch.Generator().manual_seed(3)
    heat = torch.rand(20, 30, generator=gen)
    heat[5, 5] = float("nan")
    heat[15, 20] = float("inf")
    heat[10, 3] = float("-inf")
    for top_k in (None, 3, 200):
        expected = reference_centers(heat, 0.1, 5, top_k)
        assert torch.equal(find_instance_centers(heat, 0.1, 5, top_k), expected)
