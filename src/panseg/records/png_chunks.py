"""Deciding from PNG chunk headers alone that an image's file bytes can be stored unchanged.

:func:`panseg.records.images.prepare_image` (the reference) opens the image with PIL and asks
for its EXIF orientation. For a PNG that call decodes the whole image, because PIL looks for
an ``eXIf`` chunk after the pixel data; on a 1024x2048 Cityscapes frame that is about 45 ms,
more than everything else a converter does with the image.

:func:`png_passthrough_size` walks the chunk list instead (a few hundred headers, no decompression).
When the PNG is 8-bit truecolor (PIL mode ``RGB``) and holds no chunk that can carry an
orientation (``eXIf``, or a text chunk PIL reads EXIF or XMP from) the bytes pass through with
the size from ``IHDR``, exactly what :func:`prepare_image` returns for such a file. Anything
else (another color type, a text chunk, a damaged file) goes to PIL;
:func:`panseg.records.images.prepare_image` uses it for every PNG.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that cannot change PIL's mode or carry an orientation.
_PLAIN_CHUNKS = frozenset(
    {b"IHDR", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"pHYs", b"sBIT", b"tIME", b"bKGD"}
)
_CHUNK_HEADER = struct.Struct(">I4s")


def png_passthrough_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` when ``data`` is a plain 8-bit RGB PNG, else ``None``.

    Plain means: the PNG signature, an ``IHDR`` with bit depth 8, color type 2 and no
    interlace, then only chunks of ``_PLAIN_CHUNKS``, each with a correct CRC, up to an
    ``IEND`` that ends the file. (A damaged file goes to PIL, which names the damage.)
    """
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33:
        return None
    length, kind = _CHUNK_HEADER.unpack_from(data, 8)
    if kind != b"IHDR" or length != 13:
        return None
    width, height, depth, color, _, _, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if depth != 8 or color != 2 or interlace != 0:
        return None
    pos = 8
    end = len(data)
    view = memoryview(data)
    while pos + 12 <= end:
        length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        if kind not in _PLAIN_CHUNKS or pos + 12 + length > end:
            return None
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(view[pos + 4 : pos + 8 + length]) != crc:
            return None
        pos += 12 + length
        if kind == b"IEND":
            return (height, width) if pos == end else None
    return None
