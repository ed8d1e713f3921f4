"""Slow, obvious Panoptic-DeepLab post-processing written from the specification.

This is the test oracle for the fast path in :mod:`panseg.postprocess`. It follows the rules
written down in ``docs/postprocess.md`` (the behaviour of detectron2's
``projects/Panoptic-DeepLab/panoptic_deeplab/post_processing.py`` and of the instance scores in
``panoptic_seg.py``) one step at a time: whole-image operations, a full [K, H*W] distance
matrix, and Python loops over instances and classes. Speed is not a goal here.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

__all__ = [
    "reference_centers",
    "reference_group",
    "reference_merge",
    "reference_panoptic",
    "reference_instance_scores",
]


def reference_centers(
    heat: torch.Tensor, threshold: float, nms_kernel: int, top_k: int | None
) -> torch.Tensor:
    """int64 [K, 2] (y, x) centers of a float [H, W] heatmap, raster order."""
    # 1. Scores at or below the threshold are replaced by -1.
    scores = F.threshold(heat, threshold, -1.0)
    # 2. Max-pool NMS; pixels differing from their window maximum become -1.
    window_max = F.max_pool2d(
        scores[None, None], kernel_size=nms_kernel, stride=1, padding=(nms_kernel - 1) // 2
    )[0, 0]
    scores = torch.where(scores == window_max, scores, torch.full_like(scores, -1.0))
    # 3. Keep scores above max(k-th largest score of the map, 0).
    bound = 0.0
    if top_k is not None and top_k <= scores.numel():
        kth = float(torch.sort(scores.flatten(), descending=True).values[top_k - 1])
        bound = max(kth, 0.0)
    return torch.nonzero(scores > bound)  # raster order


def reference_group(centers: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """int64 [H, W] ids in [1, K]: 1 + index of the nearest center to (y + dy, x + dx)."""
    _, height, width = offsets.shape
    ys = torch.arange(height, dtype=offsets.dtype)[:, None].expand(height, width)
    xs = torch.arange(width, dtype=offsets.dtype)[None, :].expand(height, width)
    votes = torch.stack((ys + offsets[0], xs + offsets[1]), dim=-1).reshape(1, -1, 2)
    distance = torch.linalg.vector_norm(
        centers.to(offsets.dtype)[:, None, :] - votes, dim=-1
    )  # [K, H*W]
    # argmin returns the first (lowest) index among equal distances.
    return (torch.argmin(distance, dim=0) + 1).reshape(height, width)


def _most_common_smallest(values: list[int]) -> int:
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    best = max(counts.values())
    return min(v for v, c in counts.items() if c == best)


def reference_merge(
    semantic: torch.Tensor,
    instance: torch.Tensor,
    thing_seg: torch.Tensor,
    thing_ids: Iterable[int],
    label_divisor: int,
    stuff_area: int,
    void_label: int,
) -> torch.Tensor:
    """int64 [H, W] panoptic map from semantic [H, W], instance ids [H, W] and thing mask."""
    things = {int(t) for t in thing_ids}
    sem = semantic.to(torch.long)
    panoptic = torch.full_like(sem, void_label)
    thing_pixels = (instance > 0) & (thing_seg > 0)
    per_class: dict[int, int] = {}
    for ins in sorted(set(instance.flatten().tolist())):
        if ins == 0:
            continue
        mask = (instance == ins) & thing_pixels
        if not bool(mask.any()):
            continue
        cls = _most_common_smallest(sem[mask].tolist())
        per_class[cls] = per_class.get(cls, 0) + 1
        panoptic[mask] = cls * label_divisor + per_class[cls]
    for cls in sorted(set(sem.flatten().tolist())):
        if cls in things:
            continue
        mask = (sem == cls) & (instance == 0)
        if int(mask.sum()) >= stuff_area:
            panoptic[mask] = cls * label_divisor
    return panoptic


def reference_panoptic(
    semantic: torch.Tensor,
    center_heatmap: torch.Tensor,
    offsets: torch.Tensor,
    thing_ids: Iterable[int],
    label_divisor: int,
    stuff_area: int,
    void_label: int,
    threshold: float = 0.1,
    nms_kernel: int = 7,
    top_k: int | None = 200,
    foreground_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same arguments and result as :func:`panseg.postprocess.get_panoptic_segmentation`."""
    things = list(thing_ids)
    sem = semantic[0]
    if foreground_mask is not None:
        thing_seg = foreground_mask[0]
    else:
        thing_seg = torch.zeros_like(sem)
        for t in things:
            thing_seg[sem == t] = 1
    centers = reference_centers(center_heatmap[0], threshold, nms_kernel, top_k)
    if centers.shape[0] == 0:
        instance = torch.zeros_like(sem)
    else:
        instance = thing_seg * reference_group(centers, offsets)
    panoptic = reference_merge(
        sem, instance, thing_seg, things, label_divisor, stuff_area, void_label
    )
    return panoptic[None], centers[None]


def reference_instance_scores(
    panoptic: torch.Tensor,
    semantic_logits: torch.Tensor,
    center_heatmap: torch.Tensor,
    thing_ids: Iterable[int],
    label_divisor: int,
    void_label: int = -1,
) -> list[tuple[int, int, float]]:
    """(panoptic id, class, score) of every thing segment of an [H, W] panoptic map.

    Score = mean softmax probability of the segment's class over its pixels x the raw center
    heatmap value at the segment's centroid (coordinates truncated toward zero).
    """
    things = {int(t) for t in thing_ids}
    prob = torch.softmax(semantic_logits.to(torch.float64), dim=0)
    found = []
    for value in sorted(set(panoptic.flatten().tolist())):
        if value == void_label:
            continue
        cls = value // label_divisor
        if cls not in things:
            continue
        mask = panoptic == value
        ys, xs = torch.nonzero(mask, as_tuple=True)
        cy = int(ys.sum()) // ys.numel()
        cx = int(xs.sum()) // xs.numel()
        sem_score = float(prob[cls][mask].mean())
        found.append((value, cls, sem_score * float(center_heatmap[cy, cx])))
    return found
