"""Joint image/label augmentation on a sample dict, with parameters drawn once per sample.

A sample is ``{"image": uint8 H×W×3, "panoptic": int32 H×W (optional), ...}`` (numpy; CPU
tensors are accepted and converted). Every transform is a callable ``t(sample, rng)`` that
returns a new sample; ``rng`` is the sample's own ``numpy.random.Generator``, so a sample's
augmentation depends only on the seed it was given, never on worker or process state.
:class:`Compose` chains transforms like torchvision's ``transforms.v2.Compose``.

Geometry is applied to image and label together: bilinear (Pillow, the resampling detectron2's
``ResizeTransform`` uses) for the image, nearest for the label by index gathering, so label
values are only ever copied from the input. Both use the pixel-centre convention
(``src = (dst + 0.5) * in / out - 0.5``), which keeps them aligned. Inside :class:`Compose`, a
resize followed by :class:`RandomCrop` is fused: the crop is drawn in the resized frame and
only its window is resampled (labels identical to resize-then-crop, images within Pillow's
rounding), which saves most of the work when scaling up.

Defaults follow detectron2's Panoptic-DeepLab configs (``projects/Panoptic-DeepLab/configs``):
Cityscapes trains on short side 512..2048 (scale 0.5..2.0 of 1024×2048) with a 512×1024 crop,
COCO on short side 320..960 (longest side at most 960) with a 640×640 crop; both flip with
p = 0.5. Unlike detectron2's ``RandomCrop``, which shrinks the crop to the image, crops here pad
the image (bottom/right, with the mean pixel) and the label (with void) to the crop size as
DeepLab2 does, so every training sample has the crop's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

Sample = dict[str, Any]
Transform = Callable[[Sample, np.random.Generator], Sample]

# ImageNet mean in RGB, 0..255 (detectron2's PIXEL_MEAN for these configs), rounded for uint8.
MEAN_RGB = (124, 116, 104)


def _as_numpy(sample: Sample) -> Sample:
    out = dict(sample)
    for key in ("image", "panoptic"):
        if key in out and not isinstance(out[key], np.ndarray):
            out[key] = np.asarray(out[key])
    image = out["image"]
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"sample image must be uint8 H×W×3, got {image.dtype} {image.shape}")
    if "panoptic" in out and out["panoptic"].shape != image.shape[:2]:
        raise ValueError(
            f"sample label {out['panoptic'].shape} does not match image {image.shape[:2]}"
        )
    return out


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize (Pillow, antialiased when shrinking).

    Args: image uint8 H×W×3. Returns uint8 height×width×3.
    """
    if image.shape[:2] == (height, width):
        return image
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.resize((width, height), Image.BILINEAR))


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each output pixel for nearest resizing: floor((i + 0.5) * in / out).

    Returns int64 array of length ``size_out``, values in 0..size_in-1.
    """
    idx = ((np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out)).astype(np.int64)
    return np.minimum(idx, size_in - 1)


def resize_label(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest resize by gathering rows then columns; output values are input values.

    Args: label any dtype H×W. Returns the same dtype, height×width.
    """
    if label.shape == (height, width):
        return label
    rows = nearest_indices(label.shape[0], height)
    cols = nearest_indices(label.shape[1], width)
    return np.ascontiguousarray(label[rows][:, cols])


def resize_image_window(
    image: np.ndarray, height: int, width: int, top: int, left: int, ch: int, cw: int
) -> np.ndarray:
    """The window ``[top:top+ch, left:left+cw]`` of ``image`` resized to height×width,
    resampled directly from the source (Pillow's bilinear with a source box).

    Equals resizing the whole image and cropping up to Pillow's fixed-point rounding (at most
    a couple of grey levels) at a fraction of the cost when upscaling.
    Args: image uint8 H×W×3. Returns uint8 ch×cw×3.
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image[top : top + ch, left : left + cw]
    sy, sx = h / height, w / width
    box = (left * sx, top * sy, (left + cw) * sx, (top + ch) * sy)
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.resize((cw, ch), Image.BILINEAR, box=box))


def _resize(sample: Sample, height: int, width: int) -> Sample:
    out = dict(sample)
    out["image"] = resize_image(sample["image"], height, width)
    if "panoptic" in sample:
        out["panoptic"] = resize_label(sample["panoptic"], height, width)
    return out


class Compose:
    """Apply transforms in order, passing the same per-sample generator to each."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        sample = _as_numpy(sample)
        steps = self.transforms
        i = 0
        while i < len(steps):
            t = steps[i]
            nxt = steps[i + 1] if i + 1 < len(steps) else None
            if hasattr(t, "target_size") and isinstance(nxt, RandomCrop):
                # Resize then crop, fused: only the crop window is resampled.
                size = t.target_size(*sample["image"].shape[:2], rng)
                sample = nxt(sample, rng, resize_to=size)
                i += 2
            else:
                sample = t(sample, rng)
                i += 1
        return sample

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomScale:
    """Resize by a random factor (DeepLab2's ``min/max_scale_factor`` and step).

    The factor is uniform on [min_scale, max_scale], or on the grid min_scale + k·step when
    ``step > 0``; the new size is ``int(size * factor + 0.5)`` per side (at least 1).
    """

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0, step: float = 0.0) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.min_scale, self.max_scale, self.step = float(min_scale), float(max_scale), step

    def draw(self, rng: np.random.Generator) -> float:
        if self.step > 0:
            count = int(round((self.max_scale - self.min_scale) / self.step)) + 1
            return self.min_scale + self.step * int(rng.integers(count))
        return float(rng.uniform(self.min_scale, self.max_scale))

    def target_size(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int]:
        factor = self.draw(rng)
        return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return _resize(sample, *self.target_size(*sample["image"].shape[:2], rng))

    def __repr__(self) -> str:
        return f"RandomScale({self.min_scale}, {self.max_scale}, step={self.step})"


class ResizeShortestEdge:
    """detectron2's ``ResizeShortestEdge``: short side drawn from ``lengths`` (choice) or
    uniformly from [lengths[0], lengths[1]] (range), longest side capped at ``max_size``;
    the output size is detectron2's ``get_output_shape`` (``int(x + 0.5)`` rounding)."""

    def __init__(
        self, lengths: Sequence[int], max_size: int = 1 << 30, sample_style: str = "choice"
    ) -> None:
        if sample_style not in ("choice", "range"):
            raise ValueError(f"sample_style must be choice or range, got {sample_style!r}")
        if sample_style == "range" and len(lengths) != 2:
            raise ValueError(f"range sampling needs two lengths, got {list(lengths)}")
        self.lengths = [int(v) for v in lengths]
        self.max_size = int(max_size)
        self.sample_style = sample_style

    @staticmethod
    def output_shape(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
        scale = short / min(h, w)
        newh, neww = (short, scale * w) if h < w else (scale * h, short)
        if max(newh, neww) > max_size:
            scale = max_size / max(newh, neww)
            newh, neww = newh * scale, neww * scale
        return int(newh + 0.5), int(neww + 0.5)

    def target_size(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int]:
        if self.sample_style == "range":
            short = int(rng.integers(self.lengths[0], self.lengths[1] + 1))
        else:
            short = self.lengths[int(rng.integers(len(self.lengths)))]
        return self.output_shape(h, w, short, self.max_size)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return _resize(sample, *self.target_size(*sample["image"].shape[:2], rng))

    def __repr__(self) -> str:
        return f"ResizeShortestEdge({self.lengths}, max_size={self.max_size})"


class RandomCrop:
    """Crop ``height``×``width`` at a uniform random offset, padding first when smaller.

    Padding goes to the bottom/right: the image with ``image_fill`` (RGB), the label with
    ``label_fill`` (the dataset's void value, ``ignore_label * label_divisor``).
    """

    def __init__(
        self,
        height: int,
        width: int,
        *,
        label_fill: int,
        image_fill: Sequence[int] = MEAN_RGB,
    ) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"crop size must be positive, got {height}×{width}")
        self.height, self.width = int(height), int(width)
        self.label_fill = int(label_fill)
        self.image_fill = np.asarray(image_fill, dtype=np.uint8).reshape(3)

    def __call__(
        self,
        sample: Sample,
        rng: np.random.Generator,
        resize_to: tuple[int, int] | None = None,
    ) -> Sample:
        """Crop ``sample``; with ``resize_to``, crop the sample as if first resized to that size
        (the window is resampled directly, see :func:`resize_image_window`)."""
        image = sample["image"]
        h, w = resize_to if resize_to is not None else image.shape[:2]
        top = int(rng.integers(max(h - self.height, 0) + 1))
        left = int(rng.integers(max(w - self.width, 0) + 1))
        ch, cw = min(self.height, h - top), min(self.width, w - left)
        out = dict(sample)
        crop = np.empty((self.height, self.width, 3), dtype=np.uint8)
        crop[...] = self.image_fill
        if resize_to is None:
            crop[:ch, :cw] = image[top : top + ch, left : left + cw]
        else:
            crop[:ch, :cw] = resize_image_window(image, h, w, top, left, ch, cw)
        out["image"] = crop
        if "panoptic" in sample:
            label = sample["panoptic"]
            lab = np.full((self.height, self.width), self.label_fill, dtype=label.dtype)
            if resize_to is None:
                lab[:ch, :cw] = label[top : top + ch, left : left + cw]
            else:
                rows = nearest_indices(label.shape[0], h)[top : top + ch]
                cols = nearest_indices(label.shape[1], w)[left : left + cw]
                lab[:ch, :cw] = label[rows][:, cols]
            out["panoptic"] = lab
        return out

    def __repr__(self) -> str:
        return f"RandomCrop({self.height}, {self.width}, label_fill={self.label_fill})"


class RandomHorizontalFlip:
    """Mirror image and label left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        out = dict(sample)
        out["image"] = np.ascontiguousarray(sample["image"][:, ::-1])
        if "panoptic" in sample:
            out["panoptic"] = np.ascontiguousarray(sample["panoptic"][:, ::-1])
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ColorJitter:
    """Photometric jitter of the image only (labels untouched).

    Factors are drawn uniformly from [1 - x, 1 + x] for brightness (scale), contrast (blend
    with the mean grey level) and saturation (blend with the per-pixel grey), applied in that
    order in float32 and rounded back to uint8.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0):
        for name, v in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ):
            if not 0 <= v <= 1:
                raise ValueError(f"{name} jitter must be in [0, 1], got {v}")
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        b = rng.uniform(1 - self.brightness, 1 + self.brightness)
        c = rng.uniform(1 - self.contrast, 1 + self.contrast)
        s = rng.uniform(1 - self.saturation, 1 + self.saturation)
        img = sample["image"].astype(np.float32)
        img *= b
        grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        img = (img - grey.mean()) * c + grey.mean()
        grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        img = (img - grey[..., None]) * s + grey[..., None]
        out = dict(sample)
        out["image"] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return out

    def __repr__(self) -> str:
        return f"ColorJitter({self.brightness}, {self.contrast}, {self.saturation})"


# detectron2 Base-PanopticDeepLab-OS16.yaml INPUT.MIN_SIZE_TRAIN (Cityscapes, 1024×2048)
CITYSCAPES_SHORT_EDGES = (
    512,
    640,
    704,
    832,
    896,
    1024,
    1152,
    1216,
    1344,
    1408,
    1536,
    1664,
    1728,
    1856,
    1920,
    2048,
)
# detectron2 COCO config: [int(x * 0.1 * 640) for x in range(5, 16)]
COCO_SHORT_EDGES = tuple(int(x * 0.1 * 640) for x in range(5, 16))


def cityscapes_train_transforms(
    *, label_fill: int, crop: tuple[int, int] = (512, 1024), jitter: float = 0.0
) -> Compose:
    """detectron2's Cityscapes Panoptic-DeepLab training augmentation (short side 512..2048,
    max 4096, crop 512×1024, flip), with optional photometric jitter."""
    steps: list[Transform] = [
        ResizeShortestEdge(CITYSCAPES_SHORT_EDGES, max_size=4096),
        RandomCrop(crop[0], crop[1], label_fill=label_fill),
        RandomHorizontalFlip(0.5),
    ]
    if jitter:
        steps.append(ColorJitter(jitter, jitter, jitter))
    return Compose(steps)


def coco_train_transforms(
    *, label_fill: int, crop: tuple[int, int] = (640, 640), jitter: float = 0.0
) -> Compose:
    """detectron2's COCO Panoptic-DeepLab training augmentation (short side 320..960 step 64,
    longest side at most 960, crop 640×640, flip), with optional photometric jitter."""
    steps: list[Transform] = [
        ResizeShortestEdge(COCO_SHORT_EDGES, max_size=960),
        RandomCrop(crop[0], crop[1], label_fill=label_fill),
        RandomHorizontalFlip(0.5),
    ]
    if jitter:
        steps.append(ColorJitter(jitter, jitter, jitter))
    return Compose(steps)
