"""TFRecord framing: round trip, the known masked CRC, corruption reports."""

import io
import struct

import pytest

from panseg.records.tfrecord import (
    CorruptRecordError,
    TFRecordWriter,
    frame,
    iter_record_offsets,
    iter_records,
    masked_crc32c,
    read_record_at,
)


def test_masked_crc_of_known_value():
    # CRC32C("123456789") = 0xE3069283 (the standard check value); masked by hand:
    crc = 0xE3069283
    expected = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert masked_crc32c(b"123456789") == expected


def test_frame_layout_by_hand():
    data = b"abc"
    framed = frame(data)
    assert len(framed) == 8 + 4 + 3 + 4
    assert struct.unpack("<Q", framed[:8]) == (3,)
    assert struct.unpack("<I", framed[8:12]) == (masked_crc32c(framed[:8]),)
    assert framed[12:15] == data
    assert struct.unpack("<I", framed[15:]) == (masked_crc32c(data),)


def test_round_trip_offsets_and_random_access():
    payloads = [b"", b"x", bytes(range(256)) * 50, b"last"]
    buf = io.BytesIO()
    writer = TFRecordWriter(buf)
    offsets = [writer.write(p) for p in payloads]
    assert offsets == writer.offsets
    assert writer.size == len(buf.getvalue())
    buf.seek(0)
    assert list(iter_records(buf)) == payloads
    buf.seek(0)
    assert [o for o, _ in iter_record_offsets(buf)] == offsets
    for offset, payload in zip(offsets, payloads, strict=True):
        assert read_record_at(buf, offset) == payload


def test_file_checksum_is_crc32c_of_bytes():
    import google_crc32c

    buf = io.BytesIO()
    writer = TFRecordWriter(buf)
    writer.write(b"hello")
    assert writer.crc32c == f"{google_crc32c.value(buf.getvalue()):08x}"


@pytest.mark.parametrize(
    ("position", "problem"),
    [(2, "length CRC mismatch"), (13, "data CRC mismatch"), (-1, "data CRC mismatch")],
)
def test_corruption_names_file_and_offset(position, problem):
    good = frame(b"first record")
    bad = bytearray(frame(b"second"))
    bad[position] ^= 0xFF
    stream = io.BytesIO(good + bytes(bad))
    with pytest.raises(CorruptRecordError) as err:
        list(iter_records(stream, "shard.tfrecord"))
    assert err.value.offset == len(good)
    assert problem in str(err.value)
    assert "shard.tfrecord" in str(err.value)


def test_truncated_file():
    data = frame(b"complete") + frame(b"truncated")[:-6]
    with pytest.raises(CorruptRecordError, match="truncated"):
        list(iter_records(io.BytesIO(data), "x.tfrecord"))
