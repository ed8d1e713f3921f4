"""Nearest-center assignment of predicted instance locations, without a K x H x W tensor.

Reference behaviour (detectron2 ``group_pixels``; see ``docs/postprocess.md``): each pixel votes
for ``p = (y + dy, x + dx)`` computed in the offsets' dtype; its center is
``argmin_k norm(float(c_k) - p)`` (``torch.norm`` over the last dimension, in that dtype), ties
going to the lowest k. Float rounding means two centers at different exact distances can tie
(or swap order) after rounding, so the comparison has to be made on the very same rounded norms.

The fast path gives the same indices bit for bit while computing norms for few pixel/center
pairs:

* predicted locations are binned into square cells of ``cell`` (32) pixels over the image;
* for each occupied cell, a center k is a *candidate* unless its distance to the cell rectangle
  exceeds ``(1 + tol)`` times the smallest farthest-corner distance over all centers (plus a
  tiny absolute slack). ``tol`` (32 machine epsilons of the dtype) is far above the rounding of
  ``float(c) - p`` and of the norm (about 2 epsilons), so a non-candidate's rounded norm is always
  strictly larger than some candidate's: the reference minimum and every index attaining it are
  candidates;
* a cell with one candidate assigns it directly; otherwise the rounded norms are computed with the
  same torch operation for the candidates only (listed in increasing index, padded with +inf),
  and ``argmin`` takes the first minimum, i.e. the lowest index, like the reference;
* locations outside the image or non-finite go through the reference operation in chunks.

Per-element results of ``torch.linalg.vector_norm`` do not depend on the tensor's shape (tests
check this against the dense reference), which is what makes the subset computation exact.
"""

from __future__ import annotations

import torch

__all__ = ["assign_to_centers", "predicted_locations"]

# Bound on elements of any [pixels, centers] temporary.
_CHUNK_ELEMENTS = 1 << 21
# Below torch's intra-op parallel grain size.
_SERIAL_ELEMENTS = 1 << 14


def predicted_locations(yx: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Predicted center locations ``(y + dy, x + dx)`` of selected pixels.

    Args:
        yx: int64 [n, 2] pixel coordinates (y, x) inside the H x W image.
        offsets: float [2, H, W], (dy, dx) per pixel.

    Returns:
        [n, 2] tensor of (y, x) locations in ``offsets.dtype``, computed exactly as the reference:
        ``arange(H, dtype) [y] + dy`` and ``arange(W, dtype) [x] + dx``.
    """
    _, height, width = offsets.shape
    ys, xs = yx[:, 0], yx[:, 1]
    if offsets.dtype in (torch.float32, torch.float64) and max(height, width) <= 1 << 24:
        # Integers below 2^24 convert exactly, as arange(H, dtype=float) holds them.
        ycoord, xcoord = ys.to(offsets.dtype), xs.to(offsets.dtype)
    else:
        ycoord = torch.arange(height, dtype=offsets.dtype, device=offsets.device)[ys]
        xcoord = torch.arange(width, dtype=offsets.dtype, device=offsets.device)[xs]
    picked = offsets[:, ys, xs]
    return torch.stack((ycoord.add_(picked[0]), xcoord.add_(picked[1])), dim=1)


def _brute_force(centers_f: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The reference operation, in chunks of pixels: [K, m, 2] -> norm -> argmin over K."""
    num_centers = centers_f.shape[0]
    out = torch.empty(points.shape[0], dtype=torch.long, device=points.device)
    chunk = max(1, _CHUNK_ELEMENTS // num_centers)
    for start in range(0, points.shape[0], chunk):
        part = points[start : start + chunk]
        distance = torch.linalg.vector_norm(centers_f[:, None, :] - part[None, :, :], dim=-1)
        out[start : start + chunk] = torch.argmin(distance, dim=0)
    return out


def _candidates(
    centers_f: torch.Tensor, cell_y: torch.Tensor, cell_x: torch.Tensor, cell: int, tol: float
) -> torch.Tensor:
    """Bool [G, K]: which centers can be nearest for some point of each given cell."""
    c = centers_f.to(torch.float64)
    y0 = (cell_y * cell).to(torch.float64)[:, None]
    x0 = (cell_x * cell).to(torch.float64)[:, None]
    y1, x1 = y0 + cell, x0 + cell
    cy, cx = c[None, :, 0], c[None, :, 1]
    zero = torch.zeros((), dtype=torch.float64, device=c.device)
    near_y = torch.maximum(torch.maximum(y0 - cy, cy - y1), zero)
    near_x = torch.maximum(torch.maximum(x0 - cx, cx - x1), zero)
    far_y = torch.maximum((cy - y0).abs(), (cy - y1).abs())
    far_x = torch.maximum((cx - x0).abs(), (cx - x1).abs())
    near = torch.sqrt(near_y * near_y + near_x * near_x)
    far = torch.sqrt(far_y * far_y + far_x * far_x)
    bound = far.amin(dim=1, keepdim=True) * (1.0 + tol) + 1e-6
    return near <= bound


def assign_to_centers(
    centers: torch.Tensor,
    points: torch.Tensor,
    image_size: tuple[int, int],
    cell: int = 32,
) -> torch.Tensor:
    """Index of the nearest center for each predicted location, as the reference computes it.

    Args:
        centers: int64 [K, 2] (y, x), K >= 1.
        points: float [n, 2] (y, x) predicted locations (see :func:`predicted_locations`); the
            reference distance is computed in this dtype.
        image_size: (H, W); locations inside it are binned, others take the exact slow path.
        cell: side of the square binning cells in pixels, a power of two.

    Returns:
        int64 [n] with values in [0, K): ``argmin_k norm(centers[k] - p)``, lowest k on ties.
    """
    if cell < 1 or cell & (cell - 1):
        raise ValueError(f"cell must be a power of two, got {cell}")
    if centers.dim() != 2 or centers.shape[1] != 2 or centers.shape[0] == 0:
        raise ValueError(f"centers must be [K, 2] with K >= 1, got {tuple(centers.shape)}")
    if points.dim() != 2 or points.shape[1] != 2 or not points.is_floating_point():
        raise ValueError(f"points must be a float [n, 2] tensor, got {tuple(points.shape)}")
    device = points.device
    num_points, num_centers = points.shape[0], centers.shape[0]
    centers_f = centers.to(points.dtype)
    if num_centers == 1 or num_points == 0:
        return torch.zeros(num_points, dtype=torch.long, device=device)

    height, width = image_size
    grid_h, grid_w = (height + cell - 1) // cell, (width + cell - 1) // cell
    result = torch.empty(num_points, dtype=torch.long, device=device)
    low, high = torch.aminmax(points, dim=0)  # NaN propagates and fails the test below
    if bool((low >= 0).all() & (high[0] < grid_h * cell) & (high[1] < grid_w * cell)):
        inside_idx = None
        p_in = points
    else:
        py, px = points[:, 0], points[:, 1]
        # NaN compares False, so non-finite points are "outside".
        inside = (py >= 0) & (py < grid_h * cell) & (px >= 0) & (px < grid_w * cell)
        outside_idx = torch.nonzero(~inside).squeeze(1)
        result[outside_idx] = _brute_force(centers_f, points[outside_idx])
        inside_idx = torch.nonzero(inside).squeeze(1)
        if inside_idx.numel() == 0:
            return result
        p_in = points[inside_idx]

    # Locations are >= 0 here and the cell a power of two: p / cell is exact and truncation
    # toward zero is the floor.
    cell_yx = (p_in / cell).long()
    cell_id = cell_yx[:, 0] * grid_w + cell_yx[:, 1]
    num_cells = grid_h * grid_w
    if num_cells * num_centers <= 2 * p_in.shape[0]:
        cells = torch.arange(num_cells, device=device)  # every cell: no compaction pass
    else:
        cells = torch.nonzero(torch.bincount(cell_id, minlength=num_cells)).squeeze(1)
        local = torch.empty(num_cells, dtype=torch.long, device=device)
        local[cells] = torch.arange(cells.numel(), device=device)
        cell_id = local[cell_id]
    tol = 32.0 * torch.finfo(points.dtype).eps
    # Chunks below torch's parallel grain (32768 elements) run on one thread: a parallel region
    # per small op costs more than it saves, badly so on a busy machine.
    step = max(1, _SERIAL_ELEMENTS // num_centers)
    cand = torch.cat(
        [
            _candidates(centers_f, part // grid_w, part % grid_w, cell, tol)
            for part in cells.split(step)
        ]
    )  # [G, K]
    count = cand.sum(dim=1)
    # Candidate indices of each cell in increasing order (True first, stable).
    order = torch.argsort((~cand).to(torch.uint8), dim=1, stable=True)
    # A cell's only candidate, or -1 where the rounded norms must decide.
    decided = torch.where(count == 1, order[:, 0], -1)

    assigned = decided[cell_id]
    multi = torch.nonzero(assigned < 0).squeeze(1)
    if multi.numel():
        pix_cell = cell_id[multi]
        pix_count = count[pix_cell]
        # Buckets of similar candidate counts (2, 3-4, 5-8, ...) keep padding below 2x.
        bucket = torch.ceil(torch.log2(pix_count.to(torch.float64))).long()
        for b in torch.unique(bucket).tolist():
            in_bucket = torch.nonzero(bucket == b).squeeze(1)
            width_b = int(pix_count[in_bucket].max())
            slots = torch.arange(width_b, device=device)
            chunk = max(1, _CHUNK_ELEMENTS // width_b)
            for start in range(0, in_bucket.numel(), chunk):
                part = in_bucket[start : start + chunk]
                s, cl = multi[part], pix_cell[part]
                idx = order[cl, :width_b]  # [m, M]
                distance = torch.linalg.vector_norm(centers_f[idx] - p_in[s][:, None, :], dim=-1)
                distance.masked_fill_(slots[None, :] >= count[cl][:, None], float("inf"))
                best = torch.argmin(distance, dim=1, keepdim=True)
                assigned[s] = torch.gather(idx, 1, best).squeeze(1)
    if inside_idx is None:
        return assigned
    result[inside_idx] = assigned
    return result
