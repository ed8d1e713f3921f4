"""Decode DeepLab2-schema ``tf.train.Example`` records into numpy arrays (no torch).

Schema (DeepLab2's ``data/data_utils.py`` keys, as written by panseg's converter):

* ``image/encoded``: JPEG or PNG bytes; ``image/format``: ``jpeg`` or ``png``;
  ``image/height``, ``image/width``, ``image/channels``, ``image/filename``.
* ``image/segmentation/class/encoded``: the panoptic label
  (``semantic * label_divisor + instance``), either raw little-endian int32 H×W bytes
  (``image/segmentation/class/format`` = ``raw``) or a PNG (``png``, 8/16-bit grey or 32-bit
  integer mode). Test-split examples have no label keys.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from panseg.records.example import decode_example

IMAGE_KEY = "image/encoded"
IMAGE_FORMAT_KEY = "image/format"
FILENAME_KEY = "image/filename"
HEIGHT_KEY = "image/height"
WIDTH_KEY = "image/width"
LABEL_KEY = "image/segmentation/class/encoded"
LABEL_FORMAT_KEY = "image/segmentation/class/format"


class RecordDecodeError(ValueError):
    """A record that is not a valid DeepLab2-schema example; the message names it."""


def decode_image(data: bytes, where: str = "image") -> np.ndarray:
    """JPEG/PNG bytes to RGB pixels.

    Returns:
        uint8 array H×W×3, values 0..255 (grey and palette images are converted to RGB,
        alpha is dropped).
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", img.size)  # full-size JPEG decoding straight into RGB
            if img.mode != "RGB":
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # Pillow raises many types for bad input
        raise RecordDecodeError(f"{where}: cannot decode image bytes: {exc}") from None


def decode_label(
    data: bytes, fmt: str, height: int, width: int, where: str = "label"
) -> np.ndarray:
    """The panoptic label of a record.

    Args:
        data: raw int32 little-endian bytes (``fmt="raw"``) or PNG bytes (``fmt="png"``).
        fmt: ``raw`` or ``png``.
        height, width: the image's size; the label must match it.

    Returns:
        int32 array H×W, values ``semantic * label_divisor + instance`` (>= 0).
    """
    if fmt == "raw":
        expected = height * width * 4
        if len(data) != expected:
            raise RecordDecodeError(
                f"{where}: raw label has {len(data)} bytes, expected {expected} "
                f"(int32 {height}×{width})"
            )
        return np.frombuffer(data, dtype="<i4").reshape(height, width).astype(np.int32)
    if fmt == "png":
        try:
            with Image.open(io.BytesIO(data)) as img:
                label = np.asarray(img)
        except Exception as exc:
            raise RecordDecodeError(f"{where}: cannot decode label PNG: {exc}") from None
        if label.ndim != 2:
            raise RecordDecodeError(
                f"{where}: label PNG must be single-channel, got shape {label.shape}"
            )
        if label.shape != (height, width):
            raise RecordDecodeError(
                f"{where}: label is {label.shape[0]}×{label.shape[1]}, image is {height}×{width}"
            )
        return label.astype(np.int32)
    raise RecordDecodeError(f"{where}: unknown label format {fmt!r} (raw or png)")


def decode_record(data: bytes, where: str = "record") -> dict[str, Any]:
    """One serialized DeepLab2-schema example as arrays.

    Returns:
        ``{"image": uint8 H×W×3, "panoptic": int32 H×W (absent without labels),
        "filename": str}``.
    """
    try:
        features = decode_example(data)
    except ValueError as exc:
        raise RecordDecodeError(f"{where}: {exc}") from None

    def one(key: str) -> Any:
        if key not in features:
            raise RecordDecodeError(f"{where}: missing feature {key!r}")
        try:
            return features[key].one(key)
        except ValueError as exc:
            raise RecordDecodeError(f"{where}: {exc}") from None

    filename = one(FILENAME_KEY).decode("utf-8") if FILENAME_KEY in features else ""
    label_where = f"{where} ({filename})" if filename else where
    image = decode_image(one(IMAGE_KEY), label_where)
    height, width = image.shape[:2]
    if HEIGHT_KEY in features and WIDTH_KEY in features:
        h, w = int(one(HEIGHT_KEY)), int(one(WIDTH_KEY))
        if (h, w) != (height, width):
            raise RecordDecodeError(
                f"{label_where}: image decodes to {height}×{width} but the record says {h}×{w}"
            )
    out: dict[str, Any] = {"image": image, "filename": filename}
    if LABEL_KEY in features:
        fmt = one(LABEL_FORMAT_KEY).decode("ascii", errors="replace")
        out["panoptic"] = decode_label(one(LABEL_KEY), fmt, height, width, label_where)
    return out
