"""Image bytes as DeepLab2's ``create_features`` stores them, minus its EXIF mistake.

Reference (DeepLab2 ``data/data_utils.py``, commit 64bc1c1, L31-49 and L124-135): the file is
opened with PIL and passed through ``ImageOps.exif_transpose``; an ``RGB`` image keeps its
file bytes unchanged, any other mode (``L``, ``CMYK``, ``RGBA``, ``P``, ...) is converted to
RGB and saved again with PIL's defaults in the declared format (JPEG quality 75 with 4:2:0
subsampling and no EXIF/ICC, or PNG compress level 6). Height and width are those of the
transposed image.

panseg differs on purpose where the EXIF orientation swaps the axes (orientations 5-8): the
bytes of an RGB JPEG pass through unchanged and TensorFlow's ``decode_image`` ignores EXIF, so
DeepLab2's height and width match neither the decoded pixels nor the label. panseg writes the
stored size and returns a warning. A non-RGB image is re-encoded *without* the transpose, so its
pixels stay aligned with the label (DeepLab2 rotates them).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

_EXIF_ORIENTATION = 0x0112
_PIL_FORMAT = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG"}


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    height: int
    width: int
    reencoded: bool
    warning: str = ""


def prepare_image(data: bytes, image_format: str, path: str = "<image>") -> PreparedImage:
    """The bytes, height and width to store for an image file.

    A plain 8-bit RGB PNG is recognized from its chunk headers
    (:func:`panseg.records.png_chunks.png_passthrough_size`) without decoding it; PIL asks
    for the EXIF orientation of a PNG only after decoding every pixel (about 45 ms for a
    Cityscapes frame). Everything else goes to :func:`prepare_image_reference`, which this
    function equals on every input.

    Args:
        data: the image file's bytes.
        image_format: the declared format, ``jpeg``, ``jpg`` or ``png``.
        path: used in messages.

    Raises:
        ValueError: an unsupported format, or bytes PIL cannot read (message names ``path``).
    """
    if image_format == "png":
        from panseg.records.png_chunks import png_passthrough_size

        size = png_passthrough_size(data)
        if size is not None:
            return PreparedImage(data, size[0], size[1], False, "")
    return prepare_image_reference(data, image_format, path)


def prepare_image_reference(
    data: bytes, image_format: str, path: str = "<image>"
) -> PreparedImage:
    """:func:`prepare_image` through PIL alone (the oracle of its PNG fast path)."""
    from PIL import Image, UnidentifiedImageError

    if image_format not in _PIL_FORMAT:
        raise ValueError(f"{path}: image format must be jpeg, jpg or png, got {image_format!r}")
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    warning = ""
    if orientation in (5, 6, 7, 8):
        warning = (
            f"{path}: EXIF orientation {orientation}; stored size {height}x{width} written "
            f"(DeepLab2 writes the rotated size {width}x{height}, which matches neither the "
            "decoded pixels nor the label)"
        )
    if image.mode == "RGB":
        return PreparedImage(data, height, width, False, warning)
    try:
        rgb = image.convert("RGB")
    except OSError as exc:
        raise ValueError(f"{path}: cannot decode image ({exc})") from None
    out = io.BytesIO()
    rgb.save(out, format=_PIL_FORMAT[image_format])
    return PreparedImage(out.getvalue(), height, width, True, warning)


def image_size(data: bytes, path: str = "<image>") -> tuple[int, int]:
    """``(height, width)`` of the stored pixels, read from the header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    return height, width
