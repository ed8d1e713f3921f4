"""DeepLab2 panoptic records for segment-id maps with small ids (Cityscapes), by table lookup.

:class:`SmallIdPanopticEncoder` writes exactly what
:class:`panseg.records.deeplab2.PanopticDeepLab2Encoder` writes (the label rule is its
``segment_values``), faster where the ids allow it:

* when every listed segment id is below 2**16 (Cityscapes ``instanceIds`` values are at most
  33999) the label is painted with a table of 2**16 + 1 entries (:func:`paint_small_ids`):
  one lookup per run of equal ids along the rows (label maps are long runs) expanded with
  ``np.repeat``, or one lookup per pixel when runs are short, instead of the hash lookup of
  ``paint_segments``;
* when no segment states an area (segments derived from the same pixels, as the raw
  Cityscapes reader does) the areas are not counted.

It overrides only the painting step (:meth:`PanopticDeepLab2Encoder.paint`); larger ids fall
back to the parent's. The reference painting is
``panseg.records.deeplab2.paint_segments_reference``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from panseg.datasets.base import Segment
from panseg.datasets.runs import runs
from panseg.records.deeplab2 import PanopticDeepLab2Encoder

SMALL_ID_LIMIT = 1 << 16


def paint_small_ids(
    ids: np.ndarray,
    segment_ids: np.ndarray,
    values: np.ndarray,
    fill: int,
    *,
    count_areas: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Paint each segment's value where the id map holds its id, by one table lookup.

    Args:
        ids: ``(H, W)`` unsigned or ``int32`` id map (negative ids are never listed).
        segment_ids: ``(K,)`` distinct ids in ``[0, 2**16)``.
        values: ``int32 (K,)``: the label value of each segment.
        fill: the value of pixels whose id is not in ``segment_ids``.
        count_areas: also return the pixel count of each segment.

    Returns:
        ``(label, areas)``: ``int32 (H, W)`` and ``int64 (K,)`` (``None`` without
        ``count_areas``).
    """
    segment_ids = np.asarray(segment_ids, dtype=np.int64)
    if len(segment_ids) and (segment_ids.min() < 0 or segment_ids.max() >= SMALL_ID_LIMIT):
        raise ValueError(f"segment ids must lie in [0, {SMALL_ID_LIMIT})")
    if ids.dtype.kind == "i":
        ids = ids.view(ids.dtype.str.replace("i", "u"))  # negatives become huge: unlisted
    k = len(segment_ids)
    index_table = np.full(SMALL_ID_LIMIT + 1, k, dtype=np.int32)
    index_table[segment_ids] = np.arange(k, dtype=np.int32)
    value_table = np.empty(k + 1, dtype=np.int32)
    value_table[:k] = values
    value_table[k] = fill
    flat = ids.ravel()
    starts, lengths = runs(flat)
    if len(starts) * 4 <= flat.size:
        # Label maps are runs of equal ids along rows: look up one id per run.
        index = np.take(index_table, flat[starts], mode="clip")
        label = np.repeat(np.take(value_table, index), lengths).reshape(ids.shape)
        areas = np.bincount(index, weights=lengths, minlength=k + 1)[:k].astype(np.int64)
        return label, areas if count_areas else None
    index = np.take(index_table, ids, mode="clip")
    areas = np.bincount(index.ravel(), minlength=k + 1)[:k] if count_areas else None
    return np.take(value_table, index), areas


@dataclass(frozen=True)
class SmallIdPanopticEncoder(PanopticDeepLab2Encoder):
    """:class:`PanopticDeepLab2Encoder` with the fast paths of the module docstring."""

    def paint(
        self, ids: np.ndarray, segments: Sequence[Segment], values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One table lookup when every segment id is below 2**16; areas only when some
        segment states one. Larger ids go to the parent's hash lookup."""
        segment_ids = np.array([s.id for s in segments], dtype=np.int64)
        if len(segment_ids) and (segment_ids.min() < 0 or segment_ids.max() >= SMALL_ID_LIMIT):
            return super().paint(ids, segments, values)
        count = any(s.area is not None for s in segments)
        return paint_small_ids(ids, segment_ids, values, self.info.void_label, count_areas=count)
