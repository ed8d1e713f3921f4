"""DeepLab2's panoptic record schema: the Example keys, the label, the encoder.

Reference: google-research/deeplab2 at 64bc1c1 (see ``docs/formats/deeplab2.md``):
``data/data_utils.py`` ``create_tfexample`` (L138-161) and ``data/build_coco_data.py``
``_generate_panoptic_label`` (L143-209). One Example per image with

=====================================  ========  =========================================
key                                    kind      value
=====================================  ========  =========================================
``image/encoded``                      bytes     image file bytes (see ``images.py``)
``image/filename``                     bytes     stem, no directory or extension
``image/format``                       bytes     ``jpeg`` (COCO) or ``png`` (Cityscapes)
``image/height``, ``image/width``      int64     stored pixel size
``image/channels``                     int64     3
``image/segmentation/class/encoded``   bytes     raw little-endian int32 H*W panoptic map
``image/segmentation/class/format``    bytes     ``raw``
=====================================  ========  =========================================

The two label keys are absent (not empty) for images without annotation (test splits).

Label rule, per segment in the annotation's order: ``c = train id of category_id``; a stuff
segment paints ``c * divisor``; a non-crowd thing paints ``c * divisor + k`` where ``k`` counts
up from 1 per class in segment order; a crowd thing paints ``ignore * divisor`` (crowd
``ignore``, DeepLab2's default) or ``c * divisor`` (crowd ``keep``); pixels whose id is 0 or not
listed paint ``ignore * divisor``. The pixel count of every listed segment must equal its
annotated area.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from panseg.datasets.base import ItemProblems, Problem, RawExample, Segment
from panseg.datasets.info import DatasetInfo
from panseg.records.example import encode_example
from panseg.records.images import image_size, prepare_image

IMAGE_ENCODED = "image/encoded"
IMAGE_FILENAME = "image/filename"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_CHANNELS = "image/channels"
LABEL_ENCODED = "image/segmentation/class/encoded"
LABEL_FORMAT = "image/segmentation/class/format"

CROWD_MODES = ("ignore", "keep")


def deeplab2_example(
    *,
    image: bytes,
    image_format: str,
    filename: str,
    height: int,
    width: int,
    label: bytes | None = None,
    label_format: str | None = None,
) -> bytes:
    """Serialize one DeepLab2 Example (label keys only when ``label`` is given)."""
    features: dict = {
        IMAGE_ENCODED: image,
        IMAGE_FILENAME: filename,
        IMAGE_FORMAT: image_format,
        IMAGE_HEIGHT: height,
        IMAGE_WIDTH: width,
        IMAGE_CHANNELS: 3,
    }
    if label is not None:
        features[LABEL_ENCODED] = label
        features[LABEL_FORMAT] = label_format or "raw"
    return encode_example(features)


# ----------------------------------------------------------------------------- label painting
def paint_segments(
    ids: np.ndarray, segment_ids: np.ndarray, values: np.ndarray, fill: int
) -> tuple[np.ndarray, np.ndarray]:
    """Paint each segment's value where the id map holds its id.

    Args:
        ids: ``uint32 (H, W)`` segment-id map.
        segment_ids: ``(K,)`` distinct ids in ``[0, 2**32)``.
        values: ``int32 (K,)``: the label value of each segment.
        fill: the value of pixels whose id is not in ``segment_ids``.

    Returns:
        ``(label, areas)``: ``int32 (H, W)`` and ``int64 (K,)`` pixel counts per segment.

    The id map is cut into runs of equal ids along its rows (a COCO or Cityscapes label has a
    few thousand, against hundreds of thousands of pixels); only the runs' ids are looked up,
    in a collision-free hash table of the segment ids (:func:`lookup_segments`), areas are
    the run lengths summed per segment, and the label is the runs' values repeated. An image
    of noise, with as many runs as pixels, costs what a per-pixel lookup would.
    """
    segment_ids = np.asarray(segment_ids, dtype=np.uint32)
    k = len(segment_ids)
    flat = np.ascontiguousarray(ids, dtype=np.uint32).ravel()
    table = np.empty(k + 1, dtype=np.int32)
    table[:k] = values
    table[k] = fill
    if flat.size == 0:
        return np.empty(ids.shape, dtype=np.int32), np.zeros(k, dtype=np.int64)
    starts = np.flatnonzero(flat[1:] != flat[:-1])
    starts += 1
    starts = np.concatenate((np.zeros(1, dtype=starts.dtype), starts))
    lengths = np.diff(starts, append=flat.size)
    index = lookup_segments(flat[starts], segment_ids)
    areas = np.bincount(index, weights=lengths, minlength=k + 1)[:k].astype(np.int64)
    return np.repeat(table[index], lengths).reshape(ids.shape), areas


def lookup_segments(ids: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
    """Index of each pixel's id in ``segment_ids``, or ``K`` when it is not listed.

    Args:
        ids: ``uint32 (H, W)``.
        segment_ids: ``uint32 (K,)``, distinct.

    Returns:
        ``intp (H, W)`` with values in ``[0, K]``.
    """
    ids = np.asarray(ids, dtype=np.uint32)
    k = len(segment_ids)
    if k == 0:
        return np.zeros(ids.shape, dtype=np.intp)
    bits = max(6, int(np.ceil(np.log2(k))) + 3)
    for attempt in range(16):
        # Knuth's multiplicative hash with odd multipliers; the top `bits` bits pick a slot.
        multiplier = np.uint32((2654435761 + 2 * 40503 * attempt) & 0xFFFFFFFF)
        shift = np.uint32(32 - bits)
        slots = (segment_ids * multiplier) >> shift
        if len(np.unique(slots)) == k:
            table = np.full(1 << bits, k, dtype=np.intp)
            table[slots] = np.arange(k)
            hashed = ids * multiplier
            np.right_shift(hashed, shift, out=hashed)
            candidate = table.take(hashed)
            guard = np.empty(k + 1, dtype=np.uint32)
            guard[:k] = segment_ids
            # The sentinel slot k can never match: pick a value that is not a listed id.
            guard[k] = _absent_value(segment_ids)
            candidate[guard.take(candidate) != ids] = k
            return candidate
        if attempt % 4 == 3:
            bits += 1
    order = np.argsort(segment_ids)  # pragma: no cover - astronomically unlikely
    sorted_ids = segment_ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, ids), k - 1)
    return np.where(sorted_ids[pos] == ids, order[pos], k)


def _absent_value(segment_ids: np.ndarray) -> np.uint32:
    candidate = np.uint32(0xFFFFFFFF)
    present = set(int(v) for v in segment_ids)
    while int(candidate) in present:
        candidate = np.uint32(int(candidate) - 1)
    return candidate


def paint_segments_reference(
    ids: np.ndarray, segment_ids: Sequence[int], values: Sequence[int], fill: int
) -> tuple[np.ndarray, np.ndarray]:
    """Slow, obvious oracle for :func:`paint_segments`: one mask per segment, as DeepLab2."""
    label = np.full(ids.shape, fill, dtype=np.int32)
    areas = np.zeros(len(segment_ids), dtype=np.int64)
    for k, (segment_id, value) in enumerate(zip(segment_ids, values, strict=True)):
        mask = ids == segment_id
        areas[k] = int(mask.sum())
        label[mask] = value
    return label, areas


# ------------------------------------------------------------------------------- the encoder
@dataclass(frozen=True)
class PanopticDeepLab2Encoder:
    """Turns a :class:`RawExample` into a DeepLab2 panoptic Example.

    Args:
        info: the label space; each class's ``source_ids`` say which source categories map
            onto it, and its ``is_thing`` decides thing or stuff (DeepLab2 uses its own table,
            not the JSON's ``isthing``).
        crowd: ``ignore`` (crowd pixels become void) or ``keep`` (``class * divisor``).
    """

    info: DatasetInfo
    crowd: str = "ignore"

    def __post_init__(self) -> None:
        if self.crowd not in CROWD_MODES:
            raise ValueError(f"crowd must be one of {CROWD_MODES}, got {self.crowd!r}")

    @cached_property
    def _lookup(self) -> dict[int, int]:
        return {src: cls.id for cls in self.info.classes for src in cls.source_ids}

    def segment_values(
        self, segments: Sequence[Segment], *, file: str, key: str
    ) -> tuple[np.ndarray, list[Problem]]:
        """The panoptic value of each segment, and the problems of the segment list."""
        info = self.info
        void = info.void_label
        counters: dict[int, int] = {}
        values = np.empty(len(segments), dtype=np.int32)
        problems: list[Problem] = []
        for k, seg in enumerate(segments):
            train_id = self._lookup.get(seg.category_id)
            if train_id is None:
                problems.append(
                    Problem(file, f"unknown category_id {seg.category_id}", f"segment {seg.id}", key)
                )
                values[k] = void
                continue
            if not info.is_thing(train_id):
                if seg.iscrowd:
                    problems.append(
                        Problem(
                            file,
                            f"crowd on stuff category {seg.category_id}",
                            f"segment {seg.id}",
                            key,
                        )
                    )
                values[k] = train_id * info.label_divisor
            elif seg.iscrowd:
                values[k] = void if self.crowd == "ignore" else train_id * info.label_divisor
            else:
                counters[train_id] = counters.get(train_id, 0) + 1
                values[k] = train_id * info.label_divisor + counters[train_id]
        for train_id, count in sorted(counters.items()):
            if count > info.max_instances:
                problems.append(
                    Problem(
                        file,
                        f"{count} instances of class {info.class_by_id(train_id).name!r} "
                        f"(train id {train_id}); label divisor {info.label_divisor} allows at "
                        f"most {info.max_instances}",
                        "",
                        key,
                    )
                )
        return values, problems

    def label(self, raw: RawExample, height: int, width: int) -> np.ndarray:
        """The ``int32 (H, W)`` panoptic label of ``raw``; raises :class:`ItemProblems`."""
        assert raw.segments is not None and raw.read_ids is not None
        values, problems = self.segment_values(raw.segments, file=raw.label_path, key=raw.key)
        if problems:
            raise ItemProblems(problems)
        try:
            ids = raw.read_ids()
        except (OSError, ValueError) as exc:
            raise ItemProblems([Problem(raw.label_path, str(exc), item=raw.key)]) from None
        if ids.shape != (height, width):
            raise ItemProblems(
                [
                    Problem(
                        raw.label_path,
                        f"label size {ids.shape[0]}x{ids.shape[1]} differs from image size "
                        f"{height}x{width} ({raw.image_path})",
                        item=raw.key,
                    )
                ]
            )
        label, areas = self.paint(ids, raw.segments, values)
        for seg, area in zip(raw.segments, [] if areas is None else areas.tolist(), strict=False):
            if seg.area is not None and seg.area != area:
                problems.append(
                    Problem(
                        raw.label_path,
                        f"area {seg.area} in the JSON but {area} pixels in the PNG",
                        f"segment {seg.id}",
                        raw.key,
                    )
                )
        if problems:
            raise ItemProblems(problems)
        return label

    def paint(
        self, ids: np.ndarray, segments: Sequence[Segment], values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(label, areas)`` of :func:`paint_segments` for this label space's void; a
        subclass may paint faster, and may return ``areas=None`` when no segment states one."""
        segment_ids = np.array([s.id for s in segments], dtype=np.uint32)
        return paint_segments(ids, segment_ids, values, self.info.void_label)

    def check_listing(self, key: str, segments: Sequence[Segment], file: str) -> list[Problem]:
        """Problems visible in the segment list alone (no pixels)."""
        return self.segment_values(segments, file=file, key=key)[1]

    def check(self, raw: RawExample) -> list[Problem]:
        """Every problem of one item, without encoding it (the validation pass)."""
        return check_item(raw, lambda height, width: self.label(raw, height, width))

    def encode(self, raw: RawExample) -> tuple[bytes, str]:
        """The serialized Example and a warning (``""`` when none).

        Raises:
            ItemProblems: every problem found in this item's image or label.
        """

        def label(height: int, width: int) -> bytes:
            return self.label(raw, height, width).astype("<i4", copy=False).tobytes()

        return encode_item(raw, label, "raw")


def check_item(raw, label: Callable[[int, int], object]) -> list[Problem]:
    """The validation pass of any DeepLab2 encoder: the image header, then
    ``label(height, width)``, which raises :class:`ItemProblems` for a bad label."""
    try:
        height, width = image_size(raw.image_bytes, raw.image_path)
        if raw.has_label:
            label(height, width)
    except ValueError as exc:
        return [Problem(raw.image_path, str(exc), item=raw.key)]
    except ItemProblems as exc:
        return exc.problems
    return []


def encode_item(raw, label: Callable[[int, int], bytes], label_format: str) -> tuple[bytes, str]:
    """The Example of any DeepLab2 encoder: the image as :func:`prepare_image` stores it and,
    when ``raw`` has a label, ``label(height, width)`` in ``label_format``; with the image's
    warning (``""`` when none). Raises :class:`ItemProblems`."""
    try:
        image = prepare_image(raw.image_bytes, raw.image_format, raw.image_path)
    except ValueError as exc:
        raise ItemProblems([Problem(raw.image_path, str(exc), item=raw.key)]) from None
    data = label(image.height, image.width) if raw.has_label else None
    example = deeplab2_example(
        image=image.data,
        image_format=raw.image_format,
        filename=raw.key,
        height=image.height,
        width=image.width,
        label=data,
        label_format=label_format if data is not None else None,
    )
    return example, image.warning


# ------------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class DecodedExample:
    """A DeepLab2 Example decoded to arrays.

    ``image``: ``uint8 (H, W, 3)``; ``label``: ``int32 (H, W)`` panoptic (``raw``) or the
    PNG's values (``png``), ``None`` without label keys.
    """

    filename: str
    image_format: str
    image: np.ndarray
    label: np.ndarray | None
    label_format: str | None


def decode_deeplab2(data: bytes, where: str = "<record>") -> DecodedExample:
    """Decode a serialized DeepLab2 Example as DeepLab2's ``SegmentationDecoder`` does.

    The image is decoded to RGB ignoring EXIF (like ``tf.io.decode_image``); a ``raw``
    label is reshaped with ``image/height`` and ``image/width``; a ``png`` label is read with
    one channel. ``where`` names the record in error messages.
    """
    import io

    from PIL import Image

    from panseg.records.example import decode_example

    feats = decode_example(data)
    try:
        height = feats[IMAGE_HEIGHT].one(IMAGE_HEIGHT)
        width = feats[IMAGE_WIDTH].one(IMAGE_WIDTH)
        image_bytes = feats[IMAGE_ENCODED].one(IMAGE_ENCODED)
        filename = feats[IMAGE_FILENAME].one(IMAGE_FILENAME).decode("utf-8")
        image_format = feats[IMAGE_FORMAT].one(IMAGE_FORMAT).decode("utf-8")
    except KeyError as exc:
        raise ValueError(f"{where}: missing feature {exc}") from None
    with Image.open(io.BytesIO(image_bytes)) as im:
        image = np.asarray(im.convert("RGB"))
    if image.shape[:2] != (height, width):
        raise ValueError(
            f"{where} ({filename}): image decodes to {image.shape[0]}x{image.shape[1]} but "
            f"image/height x image/width is {height}x{width}"
        )
    label = label_format = None
    if LABEL_ENCODED in feats:
        encoded = feats[LABEL_ENCODED].one(LABEL_ENCODED)
        label_format = feats[LABEL_FORMAT].one(LABEL_FORMAT).decode("utf-8")
        if label_format == "raw":
            if len(encoded) != height * width * 4:
                raise ValueError(
                    f"{where} ({filename}): raw label has {len(encoded)} bytes, expected "
                    f"{height}x{width}x4"
                )
            label = np.frombuffer(encoded, dtype="<i4").reshape(height, width)
        elif label_format == "png":
            with Image.open(io.BytesIO(encoded)) as im:
                label = np.asarray(im.convert("L") if im.mode not in ("L", "I", "I;16") else im)
            label = label.astype(np.int32)
        else:
            raise ValueError(f"{where} ({filename}): unknown label format {label_format!r}")
    return DecodedExample(filename, image_format, image, label, label_format)
