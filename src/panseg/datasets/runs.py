"""Runs of equal values in label and id maps, and what they make cheap.

Segmentation maps are long runs of one id along each row (a 1024x2048 Cityscapes map has
about ten thousand runs for two million pixels), so work done once per run instead of once
per pixel is much cheaper: the distinct values are among the run starts, and a per-id table
lookup can be done per run and expanded with ``np.repeat``.
"""

from __future__ import annotations

import numpy as np


def runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal values of a 1-D array.

    Args:
        flat: ``(N,)`` array of any dtype.

    Returns:
        ``(starts, lengths)``: ``intp (R,)`` first index of each run and ``intp (R,)`` its
        length (``R = 0`` for an empty array).
    """
    n = flat.size
    if n == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(flat[1:], flat[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    return starts, np.diff(starts, append=n)


def distinct_values(ids: np.ndarray) -> np.ndarray:
    """Distinct values of an integer map in ascending order, as ``int64 (K,)``.

    Every value's first occurrence (row-major) starts a run, so only the values at run starts
    are sorted. Equal to ``np.unique(ids)``.
    """
    flat = ids.ravel()
    if flat.size == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.empty(flat.size, dtype=bool)
    change[0] = True
    np.not_equal(flat[1:], flat[:-1], out=change[1:])
    return np.unique(flat[change]).astype(np.int64)
