"""The pixel work of Model Garden records: instance masks from COCO segmentations, the three
panoptic PNGs from a segment-id map, and their slow reference (see
:mod:`panseg.records.model_garden` for the schema and its reference code).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from panseg.datasets.base import Segment
from panseg.records.deeplab2 import lookup_segments

VOID = 0
THING_SEMANTIC = 1


def encode_png_u8(mask: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of ``mask`` (``uint8 (H, W)``), with Pillow's defaults."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Rasterise a COCO segmentation at ``height x width``.

    Args:
        segmentation: polygons (``[[x0, y0, x1, y1, ...], ...]``) or an RLE dict
            (``{"size": [h, w], "counts": list | str}``).

    Returns:
        ``uint8 (H, W)`` with values 0/1 (the union of the parts).

    Raises:
        ValueError: a segmentation pycocotools cannot read, or an RLE of another size.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list) and not segmentation:
        return np.zeros((height, width), dtype=np.uint8)
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        if not isinstance(size, (list, tuple)) or [int(v) for v in size] != [height, width]:
            raise ValueError(f"RLE size {size} differs from the image size [{height}, {width}]")
        if not isinstance(segmentation.get("counts"), (list, str, bytes)):
            raise ValueError("RLE counts must be a list or a string")
    elif not isinstance(segmentation, list):
        raise ValueError(f"segmentation must be polygons or RLE, got {type(segmentation).__name__}")
    try:
        with warnings.catch_warnings():  # pycocotools' __array__ predates numpy 2's copy=
            warnings.simplefilter("ignore", DeprecationWarning)
            rle = mask_utils.frPyObjects(segmentation, height, width)
            mask = mask_utils.decode(rle)
    except Exception as exc:  # pycocotools raises bare Exception / TypeError
        raise ValueError(f"pycocotools cannot read this segmentation ({exc})") from None
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return np.ascontiguousarray(mask, dtype=np.uint8)


_ID_LIMIT = 1 << 24  # COCO panoptic ids are R + 256 G + 65536 B
_index_table: np.ndarray | None = None


def segment_index(
    ids: np.ndarray, segment_ids: np.ndarray, *, unlisted_255: bool = False
) -> np.ndarray:
    """Index of each pixel's id in ``segment_ids``, or ``K`` when it is not listed
    (or 255 on the ``uint8`` path when ``unlisted_255``: one pass less).

    Args:
        ids: ``uint32 (H, W)``.
        segment_ids: ``uint32 (K,)``, distinct.

    Returns:
        ``(H, W)`` indices in ``[0, K]``: ``uint8`` when ``K < 255`` and every id is below
        2**24 (one gather from a per-process 16 MiB table, set and reset per call), else
        ``intp`` from :func:`panseg.records.deeplab2.lookup_segments`.
    """
    global _index_table
    k = len(segment_ids)
    if k >= 255 or (k and int(segment_ids.max()) >= _ID_LIMIT):
        return lookup_segments(ids, segment_ids)
    if _index_table is None:
        _index_table = np.full(_ID_LIMIT + 1, 255, dtype=np.uint8)
    table = _index_table
    table[segment_ids] = np.arange(k, dtype=np.uint8)
    table[_ID_LIMIT] = k
    try:
        index = np.take(table, ids, mode="clip")  # ids >= 2**24 read the last entry: K
    finally:
        table[segment_ids] = 255
    if unlisted_255:
        return index
    index[index == 255] = k
    return index


def panoptic_masks(
    ids: np.ndarray,
    segment_ids: Sequence[int],
    semantic_values: Sequence[int],
    category_values: Sequence[int],
    instance_values: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The three Model Garden masks of a segment-id map, in one pass over the pixels.

    Args:
        ids: ``uint32 (H, W)`` segment ids.
        segment_ids: ``(K,)`` distinct ids; the ``*_values`` give each segment's value in
            ``0..255`` (0 for a segment left void, such as a skipped crowd).

    Returns:
        ``(semantic, category, instance, areas)``: three ``uint8 (H, W)`` maps (0 where the
        id is not listed) and ``int64 (K,)`` pixel counts per segment.

    One index gather (:func:`segment_index`), then one gather of the three values packed in
    a ``uint32``; the reference is :func:`panoptic_masks_reference`.
    """
    seg = np.asarray(segment_ids, dtype=np.uint32)
    k = len(seg)
    index = segment_index(np.asarray(ids, dtype=np.uint32), seg, unlisted_255=True)
    areas = np.bincount(index.ravel(), minlength=k + 1)[:k]
    packed = np.zeros(256 if index.dtype == np.uint8 else k + 1, dtype="<u4")  # rest: void
    for shift, values in enumerate((semantic_values, category_values, instance_values)):
        packed[:k] |= np.asarray(values, dtype=np.uint32) << np.uint32(8 * shift)
    planes = np.take(packed, index).view(np.uint8).reshape(*index.shape, 4)
    return (
        np.ascontiguousarray(planes[..., 0]),
        np.ascontiguousarray(planes[..., 1]),
        np.ascontiguousarray(planes[..., 2]),
        areas,
    )


def panoptic_masks_reference(
    ids: np.ndarray, segments: Sequence[Segment], is_thing: dict[int, bool], *,
    skip_crowd: bool, stuff_offset: int = 90,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slow, obvious oracle: *ccr*'s ``generate_coco_panoptics_masks`` loop, one equality
    mask per segment (``uint8 (H, W)`` semantic, category, instance)."""
    semantic = np.zeros(ids.shape, dtype=np.uint8)
    category = np.zeros(ids.shape, dtype=np.uint8)
    instance = np.zeros(ids.shape, dtype=np.uint8)
    for idx, seg in enumerate(segments):
        if skip_crowd and seg.iscrowd:
            continue
        if is_thing[seg.category_id]:
            sem, inst = THING_SEMANTIC, idx + 1
        else:
            sem, inst = seg.category_id - stuff_offset, 0
        mask = ids == seg.id
        semantic[mask] = sem
        category[mask] = seg.category_id
        instance[mask] = inst
    return semantic, category, instance
