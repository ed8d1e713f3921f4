"""DeepLab2's semantic records: the image and an 8-bit PNG of train ids, format ``png``.

Reference: DeepLab2 ``data/build_cityscapes_data.py`` with ``--create_panoptic_data=false``
(commit 64bc1c1, L234-239, L298-306): ``image/segmentation/class/encoded`` is the file
``*_gtFine_labelTrainIds.png`` passed through byte for byte, ``.../format`` is ``png``; only
its size is checked against the image (``data/data_utils.py`` L146-152). Test images carry no
label keys. The other keys are those of :func:`panseg.records.deeplab2.deeplab2_example`.

:class:`SemanticPngEncoder` either passes such a PNG through (``lut=None``) or builds it from
a PNG of source ids (Cityscapes ``*_gtFine_labelIds.png``) with a table, saving it as PIL
saves a new ``L`` image with default options, which is how cityscapesScripts'
``json2labelImg`` writes ``*_labelTrainIds.png``.

Beyond DeepLab2 it checks that the label is an 8-bit grayscale PNG (DeepLab2's decoder reads
an RGB label as luminance, silently changing ids: deeplab2#75) and that every value is a class
id or the ignore label (passthrough) or a known source id (table).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from panseg.datasets.base import ItemProblems, Problem
from panseg.datasets.info import DatasetInfo
from panseg.datasets.runs import distinct_values
from panseg.datasets.semantic import RawSemanticExample
from panseg.records.deeplab2 import check_item, encode_item

if TYPE_CHECKING:
    from PIL import Image


def map_label_png(label: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Apply a 256-entry table to an 8-bit label.

    Args:
        label: ``uint8 (H, W)`` source ids.
        lut: ``(256,)`` integers in ``[0, 255]`` (entries of unknown ids are never used).

    Returns:
        ``uint8 (H, W)``: ``lut[label]``.
    """
    return np.take(np.asarray(lut).astype(np.uint8), label)


def encode_label_png(label: np.ndarray) -> bytes:
    """``uint8 (H, W)`` -> PNG bytes, as PIL saves a new ``L`` image with default options."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8), mode="L").save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class SemanticPngEncoder:
    """Turns a :class:`RawSemanticExample` into a DeepLab2 semantic Example.

    Args:
        info: the label space: label values must be class ids or ``info.ignore_label``.
        lut: ``None`` to pass the label PNG through; else 256 integers mapping each source id
            to a train id (or the ignore label), ``-1`` for an id that must not occur.
        source_ids_name: how messages call the source ids (e.g. ``Cityscapes label id``).
    """

    info: DatasetInfo
    lut: tuple[int, ...] | None = None
    source_ids_name: str = "label id"

    def __post_init__(self) -> None:
        if self.lut is not None and len(self.lut) != 256:
            raise ValueError(f"lut must have 256 entries, got {len(self.lut)}")

    def check_listing(self, key: str, segments: Sequence, file: str) -> list[Problem]:
        return []

    def read_label(self, raw: RawSemanticExample, height: int, width: int) -> Image.Image:
        """The label as a decoded PIL ``L`` image, checked; raises :class:`ItemProblems`."""
        from PIL import Image, UnidentifiedImageError

        assert raw.label_bytes is not None

        def problem(message: str) -> ItemProblems:
            return ItemProblems([Problem(raw.label_path, message, item=raw.key)])

        try:
            image = Image.open(io.BytesIO(raw.label_bytes))
            if image.format != "PNG" or image.mode != "L":
                raise problem(
                    f"label must be an 8-bit grayscale PNG, got {image.format} mode {image.mode}"
                )
            if image.size != (width, height):
                raise problem(
                    f"label size {image.size[1]}x{image.size[0]} differs from image size "
                    f"{height}x{width} ({raw.image_path})"
                )
            image.load()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise problem(f"not a readable PNG ({exc})") from None
        present = distinct_values(np.asarray(image)).tolist()
        if self.lut is None:
            allowed = set(self.info.class_ids) | {self.info.ignore_label}
            bad = [v for v in present if v not in allowed]
            if bad:
                raise problem(
                    f"values {bad} are neither class ids nor the ignore label "
                    f"{self.info.ignore_label}"
                )
        else:
            bad = [v for v in present if self.lut[v] < 0]
            if bad:
                raise problem(f"unknown {self.source_ids_name}(s) {bad}")
        return image

    def label(self, raw: RawSemanticExample, height: int, width: int) -> bytes:
        """The label PNG bytes to store; raises :class:`ItemProblems`."""
        image = self.read_label(raw, height, width)
        if self.lut is None:
            assert raw.label_bytes is not None
            return raw.label_bytes
        # PIL's point() is map_label_png in C; a fresh image (no info copied from the source
        # PNG) saves exactly as encode_label_png(map_label_png(...)) does.
        mapped = image.point([max(v, 0) for v in self.lut])
        mapped.info = {}
        out = io.BytesIO()
        mapped.save(out, format="PNG")
        return out.getvalue()

    def check(self, raw: RawSemanticExample) -> list[Problem]:
        """Every problem of one item, without encoding it (the validation pass)."""
        return check_item(raw, lambda height, width: self.read_label(raw, height, width))

    def encode(self, raw: RawSemanticExample) -> tuple[bytes, str]:
        """The serialized Example and a warning (``""`` when none).

        Raises:
            ItemProblems: every problem found in this item's image or label.
        """
        return encode_item(raw, lambda height, width: self.label(raw, height, width), "png")
