"""Instance scores of thing segments, for instance-segmentation AP.

Reference behaviour (detectron2 ``projects/Panoptic-DeepLab/panoptic_deeplab/panoptic_seg.py``,
``PanopticDeepLab.forward`` with ``predict_instances``): for every panoptic id (ascending, void
skipped) whose class ``id // label_divisor`` is a thing, the score is the mean softmax probability
of that class over the segment times the raw center heatmap at the segment's centroid, the
centroid's (y, x) truncated to integers.

panseg computes the centroid exactly (integer sums; detectron2 averages float32 coordinates, which
can round differently for very large segments) and the mean probability in float64; scores agree
with detectron2 to float32 precision. One pass over the image, one softmax over the thing pixels
only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

__all__ = ["InstanceScores", "instance_scores"]


@dataclass(frozen=True)
class InstanceScores:
    """Thing segments of one panoptic map.

    Attributes:
        ids: int64 [M] panoptic ids, ascending.
        classes: int64 [M] their classes (``id // label_divisor``).
        scores: float32 [M] confidence in [0, max center score].
    """

    ids: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor


def instance_scores(
    panoptic: torch.Tensor,
    semantic_logits: torch.Tensor,
    center_heatmap: torch.Tensor,
    thing_ids: Iterable[int],
    label_divisor: int,
    void_label: int = -1,
) -> InstanceScores:
    """Scores of the thing segments of one image.

    Args:
        panoptic: int64 [H, W] panoptic map (as returned by ``get_panoptic_segmentation``).
        semantic_logits: float [C, H, W] semantic logits at the same resolution.
        center_heatmap: float [H, W] raw center scores.
        thing_ids: thing classes.
        label_divisor: as used to build ``panoptic``.
        void_label: value of void pixels (skipped).

    Returns:
        :class:`InstanceScores` on the input device.
    """
    if panoptic.dim() != 2:
        raise ValueError(f"panoptic must be [H, W], got {tuple(panoptic.shape)}")
    height, width = panoptic.shape
    if semantic_logits.dim() != 3 or tuple(semantic_logits.shape[1:]) != (height, width):
        raise ValueError(
            f"semantic_logits must be [C, {height}, {width}], got {tuple(semantic_logits.shape)}"
        )
    if tuple(center_heatmap.shape) != (height, width):
        raise ValueError(
            f"center_heatmap must be [{height}, {width}], got {tuple(center_heatmap.shape)}"
        )
    device = panoptic.device
    flat = panoptic.reshape(-1).to(torch.long)
    classes_all = torch.div(flat, label_divisor, rounding_mode="floor")
    things = torch.tensor(sorted({int(t) for t in thing_ids}), dtype=torch.long, device=device)
    index = torch.nonzero(torch.isin(classes_all, things) & (flat != void_label)).squeeze(1)
    if index.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return InstanceScores(empty, empty.clone(), torch.zeros(0, device=device))
    ids, code = torch.unique(flat[index], sorted=True, return_inverse=True)
    classes = torch.div(ids, label_divisor, rounding_mode="floor")
    count = torch.bincount(code, minlength=ids.numel())

    num_classes = semantic_logits.shape[0]
    if int(classes.max()) >= num_classes or int(classes.min()) < 0:
        raise ValueError(
            f"thing class {int(classes.max())} has no row in semantic_logits with {num_classes} "
            "classes"
        )
    logits = semantic_logits.reshape(num_classes, -1)[:, index].to(torch.float64)
    prob = torch.softmax(logits, dim=0).gather(0, classes[code][None]).squeeze(0)
    mean_prob = torch.zeros(ids.numel(), dtype=torch.float64, device=device)
    mean_prob.index_add_(0, code, prob)
    mean_prob /= count

    ys = torch.div(index, width, rounding_mode="floor")
    xs = index - ys * width
    sum_y = torch.zeros_like(ids).index_add_(0, code, ys)
    sum_x = torch.zeros_like(ids).index_add_(0, code, xs)
    cy = torch.div(sum_y, count, rounding_mode="floor")
    cx = torch.div(sum_x, count, rounding_mode="floor")
    center_score = center_heatmap[cy, cx].to(torch.float64)
    return InstanceScores(ids, classes, (mean_prob * center_score).to(torch.float32))
