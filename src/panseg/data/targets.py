"""Panoptic-DeepLab training targets, vectorized.

Gives arrays identical to :func:`panseg.data.targets_reference.reference_targets` (and, for the
``"detectron2"`` variant, to detectron2's ``PanopticDeepLabTargetGenerator`` under NumPy 2; see
``docs/data.md`` for the behaviour and its sources) without a per-segment pass over the image.

The label is run-length encoded along rows (one comparison pass); everything else works on
runs, whose number is a small fraction of the pixels for real labels:

* segments are the distinct run values (a dense ``bincount`` table, ``np.unique`` for huge
  values), giving a per-segment table (class, crowd, thing, area, mass centre); areas and
  coordinate sums are exact integer sums over runs (``len``, ``len·y``, ``len·x0 +
  len(len-1)/2``), so the centres equal ``np.mean`` of the pixel coordinates;
* per-pixel maps whose value is constant on a run (semantic, the three weights, the y offset)
  are ``np.repeat`` of per-run values;
* the x offset, which varies along a run, is computed on centre-bearing pixels only;
* each Gaussian is max-merged into its own (6σ+3)² window, which is local work.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from panseg.datasets.info import DatasetInfo

VARIANTS = ("detectron2", "deeplab2")
_DENSE_LIMIT = 1 << 24  # largest panoptic value handled with a dense lookup table


class PanopticTargetGenerator:
    """Callable turning a panoptic label into Panoptic-DeepLab's training targets.

    Args:
        ignore_label: semantic value of void pixels.
        label_divisor: ``panoptic = semantic * label_divisor + instance``.
        thing_ids: semantic ids of thing classes.
        sigma: Gaussian standard deviation in pixels, a positive integer (detectron2's configs:
            10 for Cityscapes, 8 for COCO; DeepLab2: 8).
        variant: ``"detectron2"`` (default) or ``"deeplab2"``.
        ignore_stuff_in_offset: detectron2 only: offset weight 0 on stuff (detectron2's
            ``INPUT.IGNORE_STUFF_IN_OFFSET``, default True).
        small_instance_area: instances with fewer pixels get ``small_instance_weight`` as
            semantic weight (detectron2's default 4096; 0 disables).
        small_instance_weight: that weight (detectron2's default 3; it stores it as uint8).
        ignore_crowd_in_semantic: detectron2 only: crowd pixels become ignore in the semantic
            target (``INPUT.IGNORE_CROWD_IN_SEMANTIC``, default False).
    """

    def __init__(
        self,
        *,
        ignore_label: int,
        label_divisor: int,
        thing_ids: Iterable[int],
        sigma: int = 10,
        variant: str = "detectron2",
        ignore_stuff_in_offset: bool = True,
        small_instance_area: int = 4096,
        small_instance_weight: float = 3,
        ignore_crowd_in_semantic: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown target variant {variant!r}; expected one of {VARIANTS}")
        if int(sigma) != sigma or sigma <= 0:
            raise ValueError(f"sigma must be a positive integer, got {sigma!r}")
        if label_divisor < 1:
            raise ValueError(f"label_divisor must be >= 1, got {label_divisor}")
        self.ignore_label = int(ignore_label)
        self.label_divisor = int(label_divisor)
        self.thing_ids = frozenset(int(t) for t in thing_ids)
        self.sigma = int(sigma)
        self.variant = variant
        self.ignore_stuff_in_offset = bool(ignore_stuff_in_offset)
        self.small_instance_area = int(small_instance_area)
        if variant == "detectron2":  # detectron2 keeps semantic weights in a uint8 array
            self.small_instance_weight = float(np.uint8(small_instance_weight))
        else:
            self.small_instance_weight = float(np.float32(small_instance_weight))
        self.ignore_crowd_in_semantic = bool(ignore_crowd_in_semantic)
        size = 6 * self.sigma + 3
        grid = np.arange(size, dtype=np.float64) - (3 * self.sigma + 1)
        self.kernel = np.exp(-(grid[None, :] ** 2 + grid[:, None] ** 2) / (2.0 * self.sigma**2))
        self._kernel32 = self.kernel.astype(np.float32)

    @classmethod
    def for_dataset(cls, info: DatasetInfo, **kwargs) -> PanopticTargetGenerator:
        """A generator with ``info``'s ignore label, divisor and thing ids."""
        return cls(
            ignore_label=info.ignore_label,
            label_divisor=info.label_divisor,
            thing_ids=info.thing_ids,
            **kwargs,
        )

    # ------------------------------------------------------------------ helpers
    def _segments(self, run_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values of the runs and each run's index into them."""
        if run_values.size == 0:
            return run_values[:0], run_values[:0].astype(np.int64)
        lo, hi = int(run_values.min()), int(run_values.max())
        if hi - lo < _DENSE_LIMIT:
            shifted = run_values - lo
            present = np.flatnonzero(np.bincount(shifted, minlength=hi - lo + 1))
            lut = np.zeros(hi - lo + 1, dtype=np.int64)
            lut[present] = np.arange(present.size)
            return present + lo, lut[shifted]
        values, inverse = np.unique(run_values, return_inverse=True)
        return values, inverse.reshape(-1)

    def __call__(self, panoptic: np.ndarray) -> dict[str, np.ndarray]:
        """Targets for one panoptic label.

        Args:
            panoptic: integer H×W (any int dtype), values ``semantic * divisor + instance``,
                all >= 0.

        Returns:
            ``semantic`` int64 H×W (void = ignore label), ``semantic_weights`` float32 H×W,
            ``center`` float32 1×H×W in [0, 1], ``center_weights`` float32 H×W in {0, 1},
            ``offset`` float32 2×H×W as (dy, dx) = (center_y - y, center_x - x),
            ``offset_weights`` float32 H×W in {0, 1}.
        """
        panoptic = np.asarray(panoptic)
        if panoptic.ndim != 2 or not np.issubdtype(panoptic.dtype, np.integer):
            raise ValueError(
                f"panoptic label must be an integer H×W array, got {panoptic.dtype} "
                f"{panoptic.shape}"
            )
        height, width = panoptic.shape
        n = height * width
        flat = np.ascontiguousarray(panoptic).reshape(-1)
        if n and int(flat.min()) < 0:
            raise ValueError(f"panoptic label has a negative value {int(flat.min())}")
        if n and flat.dtype.itemsize > 4 and int(flat.max()) < 1 << 31:
            flat = flat.astype(np.int32)

        # Row-wise runs of equal values.
        change = np.empty(n, dtype=bool)
        if n:
            change[0] = True
            np.not_equal(flat[1:], flat[:-1], out=change[1:])
            change[::width] = True
        starts = np.flatnonzero(change)
        lens = np.diff(starts, append=n)
        run_y = starts // max(width, 1)
        run_x = starts - run_y * width
        values, run_seg = self._segments(flat[starts].astype(np.int64))

        # Per-segment table.
        divisor, ignore = self.label_divisor, self.ignore_label
        category = values // divisor
        instance = values % divisor
        void = category == ignore
        is_thing = np.isin(category, np.fromiter(self.thing_ids, dtype=np.int64))
        crowd = is_thing & (instance == 0)
        if self.variant == "detectron2":
            hide = crowd & self.ignore_crowd_in_semantic
            sem_lut = np.where(void | hide, ignore, category)
            cw_lut = ~void & ~crowd
            ow_lut = cw_lut & is_thing if self.ignore_stuff_in_offset else cw_lut
            has_center = is_thing & ~void  # crowd included
        else:
            sem_lut = category
            cw_lut = ~void & ~crowd
            ow_lut = is_thing & ~crowd
            has_center = ~void & (instance != 0)
        areas = np.bincount(run_seg, weights=lens, minlength=values.size).astype(np.int64)
        sw_lut = np.ones(values.size, dtype=np.float32)
        sw_lut[has_center & (areas < self.small_instance_area)] = self.small_instance_weight

        # Mass centres: exact integer sums over runs, divided once (as np.mean does).
        centered = has_center[run_seg]
        c_runs = np.flatnonzero(centered)
        c_seg, c_len = run_seg[c_runs], lens[c_runs]
        c_y, c_x = run_y[c_runs], run_x[c_runs]
        safe = np.maximum(areas, 1)
        cy = np.bincount(c_seg, weights=c_len * c_y, minlength=values.size) / safe
        x_sum = c_len * c_x + c_len * (c_len - 1) // 2
        cx = np.bincount(c_seg, weights=x_sum, minlength=values.size) / safe
        ry = np.rint(cy).astype(np.int64)  # round half to even, as Python's round()
        rx = np.rint(cx).astype(np.int64)

        shape = (height, width)
        offset = np.empty((2, height, width), dtype=np.float32)
        dy_run = np.zeros(starts.size, dtype=np.float32)
        if self.variant == "detectron2":
            dy_run[c_runs] = cy[c_seg] - c_y
        else:  # DeepLab2: integer offsets to the rounded centre
            dy_run[c_runs] = ry[c_seg] - c_y
        offset[0] = np.repeat(dy_run, lens).reshape(shape)
        offset[1] = 0
        if c_runs.size:
            total = int(c_len.sum())
            first = np.cumsum(c_len) - c_len  # position of each run in the centred pixels
            step = np.arange(total, dtype=np.int64)
            pixel = np.repeat(starts[c_runs] - first, c_len) + step
            x = np.repeat(c_x - first, c_len) + step
            target_x = cx if self.variant == "detectron2" else rx
            offset[1].reshape(-1)[pixel] = np.repeat(target_x[c_seg], c_len) - x

        out = {
            "semantic": np.repeat(sem_lut[run_seg], lens).reshape(shape),
            "semantic_weights": np.repeat(sw_lut[run_seg], lens).reshape(shape),
            "center": np.zeros((1, height, width), dtype=np.float32),
            "center_weights": np.repeat(cw_lut.astype(np.float32)[run_seg], lens).reshape(shape),
            "offset": offset,
            "offset_weights": np.repeat(ow_lut.astype(np.float32)[run_seg], lens).reshape(shape),
        }
        heat = out["center"][0]
        reach = 3 * self.sigma + 1
        size = self._kernel32.shape[0]
        for s in np.flatnonzero(has_center & (areas > 0)):
            top, left = int(ry[s]) - reach, int(rx[s]) - reach
            y0, y1 = max(top, 0), min(top + size, height)
            x0, x1 = max(left, 0), min(left + size, width)
            window = heat[y0:y1, x0:x1]
            np.maximum(
                window, self._kernel32[y0 - top : y1 - top, x0 - left : x1 - left], out=window
            )
        return out
