"""Nearest-center assignment: equality with the dense reference, ties and float rounding."""

from __future__ import annotations

import pytest
import torch

from panseg.postprocess import assign_to_centers, predicted_locations
from panseg.postprocess.reference import reference_group


def _dense(centers: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The reference formula on a list of points: argmin_k norm(c_k - p), first index on ties."""
    distance = torch.linalg.vector_norm(
        centers.to(points.dtype)[:, None, :] - points[None, :, :], dim=-1
    )
    return torch.argmin(distance, dim=0)


def test_exact_ties_go_to_the_lowest_index() -> None:
    centers = torch.tensor([[10, 30], [10, 10], [30, 20]])
    # x = 20 is equidistant from centers 0 and 1; (17.5, 20) is 12.5 from all three centers;
    # (20, 20) is 10 from center 2 and 14.1 from the others.
    points = torch.tensor(
        [[10.0, 20.0], [0.0, 20.0], [-5.0, 20.0], [17.5, 20.0], [20.0, 20.0], [10.0, 19.5]]
    )
    got = assign_to_centers(centers, points, (40, 40))
    assert got.tolist() == [0, 0, 0, 0, 2, 1]
    assert torch.equal(got, _dense(centers, points))


def test_float_rounding_collisions_match_the_reference() -> None:
    """Points near the bisector of two centers, where float32 norms tie or swap the exact order."""
    gen = torch.Generator().manual_seed(0)
    centers = torch.tensor([[200, 613], [200, 401], [517, 507], [90, 507]])
    ys = torch.rand(20000, generator=gen) * 512
    xs = 507.0 + (torch.rand(20000, generator=gen) - 0.5) * 1e-3
    points = torch.stack((ys, xs), dim=1)
    got = assign_to_centers(centers, points, (512, 1024))
    assert torch.equal(got, _dense(centers, points))
    # The case is meaningful: rounded norms tie where exact distances differ.
    c = centers.float()
    norm = torch.linalg.vector_norm(c[:, None, :] - points[None], dim=-1)
    exact = torch.linalg.vector_norm(c.double()[:, None, :] - points.double()[None], dim=-1)
    collisions = (norm[0] == norm[1]) & (exact[0] != exact[1])
    assert int(collisions.sum()) > 0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("num_centers", [1, 2, 7, 40])
def test_random_points_match_the_reference(seed: int, num_centers: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    height, width = 60, 90
    centers = torch.stack(
        (
            torch.randint(height, (num_centers,), generator=gen),
            torch.randint(width, (num_centers,), generator=gen),
        ),
        dim=1,
    )
    # Inside, on cell borders, half-integers (exact ties), outside the image.
    points = torch.rand(3000, 2, generator=gen) * torch.tensor([height + 20.0, width + 20.0]) - 10
    points[:500] = torch.round(points[:500] * 2) / 2
    points[500:600] = torch.round(points[500:600] / 16) * 16
    got = assign_to_centers(centers, points, (height, width), cell=8)
    assert torch.equal(got, _dense(centers, points))


def test_non_finite_points_use_the_reference_operation() -> None:
    centers = torch.tensor([[1, 1], [5, 5]])
    points = torch.tensor([[float("nan"), 1.0], [float("inf"), 2.0], [4.0, 4.0], [-1e30, 0.0]])
    assert torch.equal(assign_to_centers(centers, points, (8, 8)), _dense(centers, points))


def test_float64_and_float16_offsets() -> None:
    gen = torch.Generator().manual_seed(1)
    centers = torch.randint(0, 64, (9, 2), generator=gen)
    for dtype in (torch.float64, torch.float16):
        points = (torch.rand(2000, 2, generator=gen) * 64).to(dtype)
        assert torch.equal(assign_to_centers(centers, points, (64, 64)), _dense(centers, points))


def test_predicted_locations_and_grouping_match_dense_reference() -> None:
    gen = torch.Generator().manual_seed(2)
    height, width = 33, 47
    offsets = torch.randn(2, height, width, generator=gen) * 8
    centers = torch.tensor([[3, 4], [20, 40], [30, 10], [16, 23], [16, 24]])
    index = torch.arange(height * width)
    points = predicted_locations(torch.stack((index // width, index % width), dim=1), offsets)
    got = assign_to_centers(centers, points, (height, width)) + 1
    assert torch.equal(got.view(height, width), reference_group(centers, offsets))


def test_norm_values_do_not_depend_on_tensor_shape() -> None:
    """The fast path relies on per-element norms being the same in any layout."""
    gen = torch.Generator().manual_seed(4)
    diff = torch.randn(30, 5000, 2, generator=gen) * 500
    full = torch.linalg.vector_norm(diff, dim=-1)
    pick = torch.randperm(5000, generator=gen)[:777]
    part = torch.linalg.vector_norm(diff[:3, pick].permute(1, 0, 2).contiguous(), dim=-1)
    assert torch.equal(part, full[:3, pick].T)
    # detectron2 calls torch.norm; panseg and its oracle call torch.linalg.vector_norm.
    assert torch.equal(torch.norm(diff, dim=-1), full)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="K >= 1"):
        assign_to_centers(torch.zeros(0, 2, dtype=torch.long), torch.zeros(3, 2), (4, 4))
    with pytest.raises(ValueError, match="power of two"):
        assign_to_centers(torch.zeros(1, 2, dtype=torch.long), torch.zeros(3, 2), (4, 4), cell=12)
    with pytest.raises(ValueError, match="float"):
        assign_to_centers(torch.zeros(1, 2, dtype=torch.long), torch.zeros(3, 2).long(), (4, 4))


@pytest.mark.parametrize("cell", [4, 32])
def test_sparse_points_in_a_large_image(cell: int) -> None:
    """Few points over many cells: only occupied cells get candidate lists."""
    gen = torch.Generator().manual_seed(5)
    centers = torch.randint(0, 3000, (12, 2), generator=gen)
    points = torch.rand(1500, 2, generator=gen) * 3000
    points[:300] = centers[torch.randint(12, (300,), generator=gen)].float() + 0.5
    got = assign_to_centers(centers, points, (3000, 3000), cell=cell)
    assert torch.equal(got, _dense(centers, points))
