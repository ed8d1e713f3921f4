"""Instance centers from a center heatmap: threshold, max-pool NMS and top-k.

Reference behaviour (detectron2 ``projects/Panoptic-DeepLab/panoptic_deeplab/post_processing.py``,
``find_instance_center``; see ``docs/postprocess.md``): a pixel is a center when

1. its score is above ``threshold`` (scores ``<= threshold`` become -1),
2. it equals the maximum of the thresholded map over the ``nms_kernel`` x ``nms_kernel`` window
   around it (windows are cut at the image border; equal neighbours both survive), and
3. its score is ``> max(s_k, 0)`` where ``s_k`` is the ``top_k``-th largest value of the whole
   map after NMS (counting duplicates); with ``top_k=None`` the bound is 0.

Centers are listed in raster order as (y, x).

The fast path never pools the whole image. For a candidate with score ``v > max(threshold, 0)``
only neighbours with a larger *raw* score can suppress it (a larger raw score is above the
threshold too), so the thresholded map is never built: the candidate survives iff ``v`` equals the
raw maximum over its window. Windows are gathered for the few candidates, or, when candidates
are many or the kernel large, a doubling running max over rows then columns gives every
window's maximum in O(H * W * log k) (exact: max involves no rounding). Non-finite heatmaps go
through the plain dense operations so NaN propagation is exactly that of the reference ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["find_instance_centers"]

# Gather at most this many window values at once (bounds memory for large kernels).
_GATHER_CHUNK = 1 << 22


def _check(center_heatmap: torch.Tensor, nms_kernel: int, top_k: int | None) -> torch.Tensor:
    heat = center_heatmap
    if heat.dim() == 3:
        if heat.shape[0] != 1:
            raise ValueError(f"center heatmap must be [1, H, W] or [H, W], got {tuple(heat.shape)}")
        heat = heat[0]
    if heat.dim() != 2:
        raise ValueError(f"center heatmap must be [1, H, W] or [H, W], got {tuple(heat.shape)}")
    if not heat.is_floating_point():
        raise ValueError(f"center heatmap must be a floating-point tensor, got {heat.dtype}")
    if int(nms_kernel) != nms_kernel or nms_kernel < 1 or nms_kernel % 2 == 0:
        # detectron2's padding (k - 1) // 2 only keeps the map's size for odd kernels.
        raise ValueError(f"nms_kernel must be a positive odd integer, got {nms_kernel}")
    if top_k is not None and (int(top_k) != top_k or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    return heat


def _dense_peaks(heat: torch.Tensor, threshold: float, nms_kernel: int) -> torch.Tensor:
    """The reference operations on the whole map (used for non-finite input)."""
    thresholded = F.threshold(heat[None, None], threshold, -1.0)
    pad = (nms_kernel - 1) // 2
    pooled = F.max_pool2d(thresholded, kernel_size=nms_kernel, stride=1, padding=pad)
    thresholded = thresholded.clone()
    thresholded[thresholded != pooled] = -1
    return thresholded[0, 0]


def _window_max_gather(
    heat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, radius: int
) -> torch.Tensor:
    """Max of ``heat`` over the (2r+1)^2 window around each (y, x), border-clipped.

    Out-of-image window positions are clamped onto the border; a clamped position lies inside
    the clipped window, so the maximum is unchanged.
    """
    height, width = heat.shape
    flat = heat.reshape(-1)
    steps = torch.arange(-radius, radius + 1, device=heat.device)
    per = steps.numel() ** 2
    chunk = max(1, _GATHER_CHUNK // per)
    out = torch.empty(ys.numel(), dtype=heat.dtype, device=heat.device)
    for start in range(0, ys.numel(), chunk):
        y = ys[start : start + chunk]
        x = xs[start : start + chunk]
        wy = (y[:, None] + steps[None, :]).clamp_(0, height - 1)  # [m, k]
        wx = (x[:, None] + steps[None, :]).clamp_(0, width - 1)  # [m, k]
        idx = (wy[:, :, None] * width + wx[:, None, :]).reshape(y.numel(), per)
        out[start : start + chunk] = flat[idx].amax(dim=1)
    return out


def _running_max(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Max over a centered window of odd length k along ``dim`` of a 2-D map, -inf padded.

    Doubling (sparse-table) scheme: after j steps ``m[i] = max(x[i : i + 2^j])``; a window of
    length k is the max of two overlapping power-of-two spans. ceil(log2 k) + 1 passes for any
    k, exact (max involves no rounding).
    """
    radius = (k - 1) // 2
    size = x.shape[dim]
    pad = (radius, radius) if dim == 1 else (0, 0, radius, radius)
    m = F.pad(x[None], pad, value=float("-inf"))[0]
    span = 1
    while span * 2 <= k:
        n = m.shape[dim] - span
        m = torch.maximum(m.narrow(dim, 0, n), m.narrow(dim, span, n))
        span *= 2
    return torch.maximum(m.narrow(dim, 0, size), m.narrow(dim, k - span, size))


def _window_max_dense(heat: torch.Tensor, radius: int) -> torch.Tensor:
    k = 2 * radius + 1
    return _running_max(_running_max(heat, k, dim=1), k, dim=0)


def _keep_top_k(scores: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Mask of scores strictly above max(top_k-th largest score, 0).

    ``scores`` holds every positive peak of the map (and possibly non-peaks set to -1, like
    the rest of the reference map), so when there are fewer than ``top_k`` entries the map's
    top_k-th value is <= 0.
    """
    if top_k is None or scores.numel() < top_k:
        return scores > 0
    kth = torch.topk(scores, top_k).values[-1]
    return scores > kth.clamp(min=0)


def find_instance_centers(
    center_heatmap: torch.Tensor,
    threshold: float = 0.1,
    nms_kernel: int = 7,
    top_k: int | None = 200,
) -> torch.Tensor:
    """Instance centers of one image, in raster order.

    Args:
        center_heatmap: float tensor [1, H, W] or [H, W], raw center scores (any range).
        threshold: scores ``<= threshold`` are never centers.
        nms_kernel: positive odd window size of the max-pool NMS.
        top_k: keep centers scoring above the ``top_k``-th largest NMS score (and above 0);
            ``None`` keeps every positive peak.

    Returns:
        int64 tensor [K, 2] of (y, x) with 0 <= y < H, 0 <= x < W, on the heatmap's device.
        Identical to detectron2's ``find_instance_center`` (for ``top_k > H * W``, where
        detectron2's ``torch.topk`` raises, every positive peak is kept).
    """
    heat = _check(center_heatmap, nms_kernel, top_k)
    radius = (nms_kernel - 1) // 2
    # One reduction: a finite sum means every score is finite (an overflowing sum of finite
    # scores only sends the map through the exact dense path).
    if not bool(torch.isfinite(heat.sum())):
        peaks = _dense_peaks(heat, threshold, nms_kernel)
        positions = torch.nonzero(peaks > 0)
        keep = _keep_top_k(peaks[positions[:, 0], positions[:, 1]], top_k)
        return positions[keep]

    floor = max(float(threshold), 0.0)
    positions = torch.nonzero(heat > floor)  # raster order, [m, 2]
    if positions.shape[0] == 0:
        return positions
    ys, xs = positions[:, 0], positions[:, 1]
    scores = heat[ys, xs]
    if radius > 0:
        # Gathering costs m * k^2 reads; the dense running max 2 * (log2(k) + 2) passes.
        passes = 2 * (int(nms_kernel).bit_length() + 1)
        if positions.shape[0] * nms_kernel * nms_kernel <= passes * heat.numel():
            window_max = _window_max_gather(heat, ys, xs, radius)
        else:
            window_max = _window_max_dense(heat, radius)[ys, xs]
        # Non-peaks get -1, as in the reference map; one selection at the end.
        scores = torch.where(scores == window_max, scores, -1.0)
    keep = _keep_top_k(scores, top_k)
    return positions[keep]
