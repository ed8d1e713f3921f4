"""Panoptic-DeepLab training targets, vectorized.

Gives arrays identical to :func:`panseg.data.targets_reference.reference_targets` (and, for the
``"detectron2"`` variant, to detectron2's ``PanopticDeepLabTargetGenerator`` under NumPy 2; see
``docs/data.md`` for the behaviour and its sources) without a per-segment pass over the image:

* segments are found with one ``bincount`` over the panoptic values (``np.unique`` when values
  are too large for a dense table), giving a small per-segment table (class, crowd, thing,
  area, center) and one gather from value to segment index per pixel;
* per-pixel targets are gathers from that table (semantic class, weights);
* center sums are ``bincount`` over the thing pixels only, and offsets are written only there;
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
    def _thing_mask(self, flat: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        """Boolean mask of thing pixels: a few range tests, or a class lookup when the thing
        ids form many runs."""
        runs = _runs(sorted(self.thing_ids))
        if not runs:
            return np.zeros(flat.shape, dtype=bool)
        if len(runs) > 4:
            top = int(semantic.max()) if semantic.size else 0
            lut = np.zeros(max(top, max(self.thing_ids)) + 1, dtype=bool)
            lut[list(self.thing_ids)] = True
            return lut[semantic]
        mask = None
        for lo, hi in runs:
            # lo*div <= v < (hi+1)*div, as one unsigned comparison
            part = (flat - lo * self.label_divisor).view(_unsigned(flat.dtype)) < (
                (hi - lo + 1) * self.label_divisor
            )
            mask = part if mask is None else mask | part
        return mask

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
        shape = (height, width)
        flat = panoptic.reshape(-1)
        if flat.size:
            low, high = int(flat.min()), int(flat.max())
            if low < 0:
                raise ValueError(f"panoptic label has a negative value {low}")
        else:
            high = 0
        flat = flat.astype(np.int32 if high < 1 << 31 else np.int64, copy=False)
        divisor, ignore = self.label_divisor, self.ignore_label

        semantic = np.empty(flat.shape, dtype=np.int64)
        if divisor & (divisor - 1) == 0:
            np.right_shift(flat, divisor.bit_length() - 1, out=semantic, casting="unsafe")
        else:
            np.floor_divide(flat, divisor, out=semantic, casting="unsafe")
        thing = self._thing_mask(flat, semantic)
        center_weights = np.empty(flat.shape, dtype=np.float32)
        semantic_weights = np.ones(flat.shape, dtype=np.float32)
        offset_weights = np.zeros(flat.shape, dtype=np.float32)

        if self.variant == "detectron2":
            # Every thing pixel (crowd included) gets a centre and an offset.
            pixels = np.flatnonzero(thing)
            np.not_equal(semantic, ignore, out=center_weights, casting="unsafe")
        else:
            valid = semantic != ignore
            inst0 = (flat % divisor) == 0
            crowd = thing & inst0
            np.copyto(center_weights, valid & ~crowd, casting="unsafe")
            np.copyto(offset_weights, thing & ~crowd, casting="unsafe")
            pixels = np.flatnonzero(valid & ~inst0)

        # Segments among the centre-bearing pixels: a dense table over their value range.
        vals = flat[pixels]
        if vals.size:
            lo, hi = int(vals.min()), int(vals.max())
        else:
            lo, hi = 0, 0
        if hi - lo < _DENSE_LIMIT:
            counts = np.bincount(vals - lo, minlength=hi - lo + 1)
            present = np.flatnonzero(counts)
            values, areas = present + lo, counts[present]
            lut = np.zeros(hi - lo + 1, dtype=np.int32)
            lut[present] = np.arange(present.size, dtype=np.int32)
            seg = lut[vals - lo]
        else:
            values, seg, areas = np.unique(vals, return_inverse=True, return_counts=True)
            seg = seg.reshape(-1)
        sw_lut = np.where(areas < self.small_instance_area, self.small_instance_weight, 1.0)
        if (sw_lut != 1).any():
            semantic_weights[pixels] = sw_lut.astype(np.float32)[seg]

        if self.variant == "detectron2":
            seg_crowd = (values % divisor) == 0
            if seg_crowd.any():
                keep = (~seg_crowd).astype(np.float32)[seg]
                center_weights[pixels] = keep
                if self.ignore_crowd_in_semantic:
                    semantic[pixels[seg_crowd[seg]]] = ignore
            else:
                keep = np.float32(1)
            if self.ignore_stuff_in_offset:
                offset_weights[pixels] = keep
            else:
                np.copyto(offset_weights, center_weights)

        out = {
            "semantic": semantic.reshape(shape),
            "semantic_weights": semantic_weights.reshape(shape),
            "center": np.zeros((1, height, width), dtype=np.float32),
            "center_weights": center_weights.reshape(shape),
            "offset": np.zeros((2, height, width), dtype=np.float32),
            "offset_weights": offset_weights.reshape(shape),
        }
        if values.size == 0:
            return out

        # Mass centres (exact: integer sums in float64), then offsets on those pixels only.
        py, px = np.divmod(pixels, width)
        cy = np.bincount(seg, weights=py, minlength=values.size) / areas
        cx = np.bincount(seg, weights=px, minlength=values.size) / areas
        ry = np.rint(cy).astype(np.int64)  # round half to even, as Python's round()
        rx = np.rint(cx).astype(np.int64)
        if self.variant == "detectron2":
            dy = (cy[seg] - py).astype(np.float32)
            dx = (cx[seg] - px).astype(np.float32)
        else:  # DeepLab2: integer offsets to the rounded centre
            dy = (ry[seg] - py).astype(np.float32)
            dx = (rx[seg] - px).astype(np.float32)
        out["offset"][0].reshape(-1)[pixels] = dy
        out["offset"][1].reshape(-1)[pixels] = dx

        heat = out["center"][0]
        reach = 3 * self.sigma + 1
        size = self._kernel32.shape[0]
        for s in range(values.size):
            top, left = int(ry[s]) - reach, int(rx[s]) - reach
            y0, y1 = max(top, 0), min(top + size, height)
            x0, x1 = max(left, 0), min(left + size, width)
            window = heat[y0:y1, x0:x1]
            np.maximum(
                window, self._kernel32[y0 - top : y1 - top, x0 - left : x1 - left], out=window
            )
        return out


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ids as inclusive runs of consecutive integers."""
    runs: list[tuple[int, int]] = []
    for i in ids:
        if runs and runs[-1][1] + 1 == i:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _unsigned(dtype: np.dtype) -> type:
    return np.uint32 if np.dtype(dtype).itemsize == 4 else np.uint64
