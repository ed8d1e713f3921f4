"""Panoptic-DeepLab post-processing: semantic labels + center heatmap + offsets -> panoptic map.

:func:`get_panoptic_segmentation` takes the arguments of detectron2's function of the same name
(``projects/Panoptic-DeepLab/panoptic_deeplab/post_processing.py``) and returns the same tensors,
bit for bit (``docs/postprocess.md`` lists the rules and the few inputs where detectron2 raises
instead). Work is proportional to the foreground pixels plus a handful of full-image passes;
no [K, H, W] tensor is built. Pure torch: the same code runs on CPU and GPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from panseg.postprocess.centers import find_instance_centers
from panseg.postprocess.grouping import assign_to_centers, predicted_locations
from panseg.postprocess.merge import merge_codes, semantic_codes, thing_lookup
from panseg.postprocess.scores import InstanceScores, instance_scores

__all__ = ["PanopticOutput", "get_panoptic_segmentation", "panoptic_batch"]


def _image_inputs(
    sem_seg: torch.Tensor,
    center_heatmap: torch.Tensor,
    offsets: torch.Tensor,
    foreground_mask: torch.Tensor | None,
) -> None:
    if sem_seg.dim() != 3 or sem_seg.shape[0] != 1:
        raise ValueError(f"sem_seg must be [1, H, W], got {tuple(sem_seg.shape)}")
    if sem_seg.is_floating_point() or sem_seg.is_complex():
        raise ValueError(f"sem_seg must hold integer labels, got {sem_seg.dtype}")
    size = tuple(sem_seg.shape[1:])
    if center_heatmap.dim() != 3 or tuple(center_heatmap.shape) != (1, *size):
        raise ValueError(
            f"center_heatmap must be [1, H, W] = {(1, *size)}, got {tuple(center_heatmap.shape)}"
        )
    if offsets.dim() != 3 or tuple(offsets.shape) != (2, *size):
        raise ValueError(f"offsets must be [2, H, W] = {(2, *size)}, got {tuple(offsets.shape)}")
    if not offsets.is_floating_point():
        raise ValueError(f"offsets must be a floating-point tensor, got {offsets.dtype}")
    if foreground_mask is not None and tuple(foreground_mask.shape) != (1, *size):
        raise ValueError(
            f"foreground_mask must be [1, H, W] = {(1, *size)}, got {tuple(foreground_mask.shape)}"
        )


def _thing_seg(
    sem: torch.Tensor,
    code: torch.Tensor,
    thing_table: torch.Tensor,
    things: list[int],
    foreground_mask: torch.Tensor | None,
) -> torch.Tensor:
    """[H, W] thing mask: the given foreground mask, else bool ``sem in things``."""
    if foreground_mask is not None:
        return foreground_mask[0]
    distinct = sorted(set(things))
    if distinct and distinct == list(range(distinct[0], distinct[-1] + 1)):
        # Consecutive thing labels (Cityscapes 11-18, COCO 0-79): two vectorised comparisons.
        return (sem >= distinct[0]) & (sem <= distinct[-1])
    return thing_table.index_select(0, code).view(sem.shape)


def get_panoptic_segmentation(
    sem_seg: torch.Tensor,
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
    """Panoptic map of one image (detectron2's ``get_panoptic_segmentation``).

    Args:
        sem_seg: integer [1, H, W] semantic labels (argmax of the semantic logits).
        center_heatmap: float [1, H, W] raw center scores.
        offsets: float [2, H, W] (dy, dx) from each pixel to its instance center, in pixels.
        thing_ids: semantic labels of thing classes.
        label_divisor: panoptic id = class * label_divisor + instance number (1, 2, ...).
        stuff_area: stuff classes with fewer pixels (outside instances) become void.
        void_label: value of unassigned pixels (detectron2 passes -1).
        threshold: center score threshold (0.1).
        nms_kernel: positive odd NMS window (7; 41 for COCO).
        top_k: at most this many centers (200); ``None`` for no limit.
        foreground_mask: optional [1, H, W] thing mask (numbers; > 0 means thing); default:
            pixels whose label is in ``thing_ids``.

    Returns:
        (panoptic, centers): int64 [1, H, W] panoptic map on the input device, with values
        ``void_label``, ``class * label_divisor`` (stuff) or ``class * label_divisor + n`` (things),
        and int64 [1, K, 2] centers (y, x) in raster order.
    """
    _image_inputs(sem_seg, center_heatmap, offsets, foreground_mask)
    things = [int(t) for t in thing_ids]
    sem = sem_seg[0].to(torch.long)
    height, width = sem.shape
    device = sem.device

    centers = find_instance_centers(
        center_heatmap, threshold=threshold, nms_kernel=nms_kernel, top_k=top_k
    )
    table, code = semantic_codes(sem)
    thing_table = thing_lookup(table, things)
    if centers.shape[0] == 0:
        # No instance: every instance id is 0, the thing mask does not matter.
        fg_index = torch.zeros(0, dtype=torch.long, device=device)
        fg_instance, fg_thing = fg_index, None
    else:
        thing_seg = _thing_seg(sem, code, thing_table, things, foreground_mask)
        # instance = thing_seg * (1 + nearest center) is non-zero exactly where thing_seg is.
        fg_yx = torch.nonzero(thing_seg if thing_seg.dtype == torch.bool else thing_seg != 0)
        fg_index = fg_yx[:, 0] * width + fg_yx[:, 1]  # raster order
        points = predicted_locations(fg_yx, offsets)
        group = assign_to_centers(centers, points, (height, width)) + 1
        if thing_seg.dtype == torch.bool:
            fg_instance, fg_thing = group, None  # every foreground pixel is a thing pixel
        else:
            fg_seg = thing_seg.reshape(-1)[fg_index]
            fg_instance = fg_seg * group
            fg_thing = (fg_instance > 0) & (fg_seg > 0)

    panoptic = merge_codes(
        table,
        code,
        fg_index,
        fg_instance,
        fg_thing,
        thing_table,
        label_divisor,
        stuff_area,
        void_label,
    ).view(height, width)
    return panoptic[None], centers[None]


@dataclass(frozen=True)
class PanopticOutput:
    """Result of :func:`panoptic_batch` for N images.

    Attributes:
        panoptic: int64 [N, H, W] panoptic maps.
        centers: N int64 [K_i, 2] tensors of (y, x) centers.
        instances: N :class:`InstanceScores` (thing segments with AP scores), or None when no
            semantic logits were given.
    """

    panoptic: torch.Tensor
    centers: list[torch.Tensor]
    instances: list[InstanceScores] | None


def panoptic_batch(
    semantic: torch.Tensor | None,
    center_heatmap: torch.Tensor,
    offsets: torch.Tensor,
    thing_ids: Iterable[int],
    label_divisor: int,
    stuff_area: int,
    void_label: int = -1,
    threshold: float = 0.1,
    nms_kernel: int = 7,
    top_k: int | None = 200,
    semantic_logits: torch.Tensor | None = None,
    foreground_mask: torch.Tensor | None = None,
) -> PanopticOutput:
    """Post-process a batch of network outputs.

    Args:
        semantic: [N, H, W] integer labels, or None to take the argmax of ``semantic_logits``.
        center_heatmap: float [N, 1, H, W] (or [N, H, W]).
        offsets: float [N, 2, H, W] (dy, dx).
        thing_ids, label_divisor, stuff_area, void_label, threshold, nms_kernel, top_k: as in
            :func:`get_panoptic_segmentation`.
        semantic_logits: optional float [N, C, H, W]; when given, instance scores are computed
            (mean class probability x center score, as detectron2's ``panoptic_seg.py``).
        foreground_mask: optional [N, H, W] or [N, 1, H, W] thing mask.

    Returns:
        :class:`PanopticOutput`; image i equals ``get_panoptic_segmentation`` on image i.
    """
    if semantic is None:
        if semantic_logits is None:
            raise ValueError("give semantic labels or semantic_logits")
        semantic = semantic_logits.argmax(dim=1)
    if semantic.dim() != 3:
        raise ValueError(f"semantic must be [N, H, W], got {tuple(semantic.shape)}")
    num = semantic.shape[0]
    if center_heatmap.dim() == 3:
        center_heatmap = center_heatmap[:, None]
    if foreground_mask is not None and foreground_mask.dim() == 3:
        foreground_mask = foreground_mask[:, None]
    for name, tensor in (("center_heatmap", center_heatmap), ("offsets", offsets)):
        if tensor.dim() != 4 or tensor.shape[0] != num:
            raise ValueError(f"{name} must be [N={num}, C, H, W], got {tuple(tensor.shape)}")
    if semantic_logits is not None and (
        semantic_logits.dim() != 4 or semantic_logits.shape[0] != num
    ):
        raise ValueError(
            f"semantic_logits must be [N={num}, C, H, W], got {tuple(semantic_logits.shape)}"
        )
    things = [int(t) for t in thing_ids]
    maps: list[torch.Tensor] = []
    centers: list[torch.Tensor] = []
    scores: list[InstanceScores] = []
    for i in range(num):
        panoptic, found = get_panoptic_segmentation(
            semantic[i : i + 1],
            center_heatmap[i],
            offsets[i],
            things,
            label_divisor,
            stuff_area,
            void_label,
            threshold=threshold,
            nms_kernel=nms_kernel,
            top_k=top_k,
            foreground_mask=None if foreground_mask is None else foreground_mask[i],
        )
        maps.append(panoptic[0])
        centers.append(found[0])
        if semantic_logits is not None:
            scores.append(
                instance_scores(
                    panoptic[0],
                    semantic_logits[i],
                    center_heatmap[i, 0],
                    things,
                    label_divisor,
                    void_label,
                )
            )
    stacked = torch.stack(maps) if maps else semantic.new_zeros(semantic.shape, dtype=torch.long)
    return PanopticOutput(stacked, centers, scores if semantic_logits is not None else None)
