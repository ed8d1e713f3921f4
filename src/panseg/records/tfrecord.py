"""TFRecord framing without TensorFlow.

Reference: TensorFlow's record format (``tensorflow/core/lib/io/record_writer.cc`` and
``record_reader.cc``). Each record is::

    uint64  length            little-endian
    uint32  masked_crc32c(length bytes)
    bytes   data[length]
    uint32  masked_crc32c(data)

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8`` modulo 2**32. Files are
uncompressed (TensorFlow's default ``TFRecordOptions``). CRC32C comes from ``google-crc32c``,
Google's maintained, hardware-accelerated implementation.

The reader verifies both CRCs and reports the file and byte offset of a corrupt or truncated
record (:class:`CorruptRecordError`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import google_crc32c

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


class CorruptRecordError(ValueError):
    """A record whose framing or CRC is wrong; names the file and byte offset."""

    def __init__(self, path: str, offset: int, problem: str) -> None:
        super().__init__(f"{path}: corrupt TFRecord at byte offset {offset}: {problem}")
        self.path = path
        self.offset = offset
        self.problem = problem


def masked_crc32c(data: bytes | memoryview) -> int:
    """TensorFlow's masked CRC32C of ``data`` (an unsigned 32-bit integer)."""
    crc = google_crc32c.value(bytes(data) if isinstance(data, memoryview) else data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """The framed bytes of one record (header, data, footer)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + _FOOTER.pack(
        masked_crc32c(data)
    )


class TFRecordWriter:
    """Writes framed records to a binary file object and tracks offsets and a file CRC32C.

    ``offsets[i]`` is the byte offset of record ``i``; ``crc32c`` is the CRC32C of every byte
    written so far (the shard checksum stored in panseg manifests).
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        self._file = fileobj
        self._position = 0
        self._crc = google_crc32c.Checksum()
        self.offsets: list[int] = []

    def write(self, data: bytes) -> int:
        """Append one record; returns its byte offset."""
        length = struct.pack("<Q", len(data))
        header = length + struct.pack("<I", masked_crc32c(length))
        footer = _FOOTER.pack(masked_crc32c(data))
        for part in (header, data, footer):  # no concatenated copy of a large record
            self._file.write(part)
            self._crc.update(part)
        offset = self._position
        self.offsets.append(offset)
        self._position += len(header) + len(data) + len(footer)
        return offset

    @property
    def size(self) -> int:
        return self._position

    @property
    def crc32c(self) -> str:
        """Hex CRC32C of the bytes written (8 lowercase hex digits)."""
        return self._crc.hexdigest().decode("ascii")


def read_record_at(fileobj: BinaryIO, offset: int, path: str = "<stream>") -> bytes:
    """Read and verify the record starting at ``offset`` (random access through an index)."""
    fileobj.seek(offset)
    data, _ = _read_one(fileobj, offset, path)
    if data is None:
        raise CorruptRecordError(path, offset, "no record starts here (end of file)")
    return data


def iter_records(fileobj: BinaryIO, path: str = "<stream>") -> Iterator[bytes]:
    """Yield every record's data from the current position of ``fileobj``, verifying CRCs."""
    offset = fileobj.tell() if fileobj.seekable() else 0
    while True:
        data, offset = _read_one(fileobj, offset, path)
        if data is None:
            return
        yield data


def iter_record_offsets(fileobj: BinaryIO, path: str = "<stream>") -> Iterator[tuple[int, int]]:
    """Yield ``(offset, length)`` of every record without keeping the data (builds an index).

    Both CRCs are verified, so a file that indexes cleanly also reads cleanly.
    """
    offset = fileobj.tell() if fileobj.seekable() else 0
    while True:
        start = offset
        data, offset = _read_one(fileobj, offset, path)
        if data is None:
            return
        yield start, len(data)


def read_file_records(path: str) -> list[bytes]:
    """All records of a local file (convenience for tests and small files)."""
    with open(path, "rb") as f:
        return list(iter_records(f, path))


def _read_one(fileobj: BinaryIO, offset: int, path: str) -> tuple[bytes | None, int]:
    header = _read_exact(fileobj, _HEADER.size)
    if not header:
        return None, offset
    if len(header) < _HEADER.size:
        raise CorruptRecordError(path, offset, f"truncated header ({len(header)} of 12 bytes)")
    length, length_crc = _HEADER.unpack(header)
    if masked_crc32c(header[:8]) != length_crc:
        raise CorruptRecordError(path, offset, "length CRC mismatch")
    data = _read_exact(fileobj, length)
    if len(data) < length:
        raise CorruptRecordError(
            path, offset, f"truncated data ({len(data)} of {length} bytes)"
        )
    footer = _read_exact(fileobj, _FOOTER.size)
    if len(footer) < _FOOTER.size:
        raise CorruptRecordError(path, offset, "truncated data CRC")
    (data_crc,) = _FOOTER.unpack(footer)
    if masked_crc32c(data) != data_crc:
        raise CorruptRecordError(path, offset, "data CRC mismatch")
    return data, offset + _HEADER.size + length + _FOOTER.size


def _read_exact(fileobj: BinaryIO, size: int) -> bytes:
    data = fileobj.read(size)
    if len(data) == size or not data:
        return data
    # Streams (fsspec, sockets) may return short reads before the end.
    parts = [data]
    got = len(data)
    while got < size:
        chunk = fileobj.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
