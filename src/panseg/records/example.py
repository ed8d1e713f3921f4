"""``tf.train.Example`` encoding and decoding without TensorFlow.

The message definitions are those of TensorFlow's ``tensorflow/core/example/example.proto``
and ``feature.proto`` (package ``tensorflow``)::

    message BytesList { repeated bytes value = 1; }
    message FloatList { repeated float value = 1 [packed = true]; }
    message Int64List { repeated int64 value = 1 [packed = true]; }
    message Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                                     Int64List int64_list = 3; } }
    message Features  { map<string, Feature> feature = 1; }
    message Example   { Features features = 1; }

They are declared here as a descriptor at import time and compiled by the ``protobuf``
runtime (upb, C), so the wire format is protobuf's own; no generated code, no TensorFlow.
Decoding always goes through protobuf. Encoding has a fast path, :func:`encode_example`,
which lays out the same wire bytes itself so that a large ``bytes`` value (a raw label of
8 MB for Cityscapes) is copied once instead of four times; it equals
:func:`encode_example_reference` (protobuf, deterministic) byte for byte, which the tests
check on random features.

Python values map to features as: ``bytes``/``str`` -> bytes_list, ``bool``/``int`` ->
int64_list, ``float`` -> float_list, and lists of one of those kinds -> that list. Decoding
returns a :class:`FeatureValues` per key: its ``kind`` and list of values.

Serialization is deterministic (map keys sorted), so the same features give the same bytes in
every process; TensorFlow's own writers leave the map order to the protobuf runtime, so
compare parsed features, not bytes, against them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FeatureValue = bytes | str | int | float | Sequence[bytes] | Sequence[int] | Sequence[float]


def _build_messages():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="panseg/tensorflow_example.proto", package="tensorflow", syntax="proto3"
    )
    F = descriptor_pb2.FieldDescriptorProto

    def add_list(name: str, ftype: int) -> None:
        msg = fdp.message_type.add(name=name)
        msg.field.add(name="value", number=1, label=F.LABEL_REPEATED, type=ftype)

    add_list("BytesList", F.TYPE_BYTES)
    add_list("FloatList", F.TYPE_FLOAT)
    add_list("Int64List", F.TYPE_INT64)

    feature = fdp.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (field_name, type_name) in enumerate(
        [("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")],
        start=1,
    ):
        feature.field.add(
            name=field_name,
            number=number,
            label=F.LABEL_OPTIONAL,
            type=F.TYPE_MESSAGE,
            type_name=f".tensorflow.{type_name}",
            oneof_index=0,
        )

    features = fdp.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    entry.field.add(
        name="value",
        number=2,
        label=F.LABEL_OPTIONAL,
        type=F.TYPE_MESSAGE,
        type_name=".tensorflow.Feature",
    )
    features.field.add(
        name="feature",
        number=1,
        label=F.LABEL_REPEATED,
        type=F.TYPE_MESSAGE,
        type_name=".tensorflow.Features.FeatureEntry",
    )

    example = fdp.message_type.add(name="Example")
    example.field.add(
        name="features",
        number=1,
        label=F.LABEL_OPTIONAL,
        type=F.TYPE_MESSAGE,
        type_name=".tensorflow.Features",
    )

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


ExampleProto = _build_messages()


@dataclass(frozen=True)
class FeatureValues:
    """The decoded values of one feature: ``kind`` is ``bytes``, ``int64`` or ``float``."""

    kind: str
    values: list

    def one(self, key: str = "?"):
        """The single value of a feature that must hold exactly one."""
        if len(self.values) != 1:
            raise ValueError(f"feature {key!r} holds {len(self.values)} values, expected 1")
        return self.values[0]


class ExampleDecodeError(ValueError):
    """Bytes that are not a tf.train.Example."""


def encode_example(features: Mapping[str, FeatureValue]) -> bytes:
    """Serialize a mapping of feature name to value(s) as a ``tf.train.Example``.

    The same bytes as :func:`encode_example_reference`: map entries sorted by key, packed
    int64 and float lists, each value copied once into the result.

    Args:
        features: as for :func:`encode_example_reference`.
    """
    parts: list[bytes] = []
    for key in sorted(features, key=_map_key_order):
        kind, values = _normalize(key, features[key])
        if kind == "bytes":
            items = [b"\x0a" + _varint(len(v)) for v in values]
            list_size = sum(len(h) + len(v) for h, v in zip(items, values, strict=True))
            payload: list[bytes] = [x for h, v in zip(items, values, strict=True) for x in (h, v)]
            field = 1
        else:
            if kind == "int64":
                packed = b"".join(_varint(v & 0xFFFFFFFFFFFFFFFF) for v in values)
                field = 3
            else:
                with np.errstate(over="ignore"):  # like protobuf: out of range -> inf
                    packed = np.asarray(values, dtype="<f4").tobytes()
                field = 2
            payload = [b"\x0a" + _varint(len(packed)), packed] if values else []
            list_size = sum(len(x) for x in payload)
        feature_head = bytes([field << 3 | 2]) + _varint(list_size)
        feature_size = len(feature_head) + list_size
        key_bytes = key.encode("utf-8")
        key_part = b"\x0a" + _varint(len(key_bytes)) + key_bytes
        value_head = b"\x12" + _varint(feature_size)
        entry_size = len(key_part) + len(value_head) + feature_size
        parts += [b"\x0a" + _varint(entry_size), key_part, value_head, feature_head, *payload]
    body_size = sum(len(p) for p in parts)
    return b"".join([b"\x0a" + _varint(body_size), *parts]) if features else b""


@functools.cmp_to_key
def _map_key_order(a: str, b: str) -> int:
    """protobuf's (upb) deterministic order of string map keys: bytewise over the common
    length, then the longer key first (so ``"aa" < "a" < ""``)."""
    x, y = a.encode("utf-8"), b.encode("utf-8")
    n = min(len(x), len(y))
    if x[:n] != y[:n]:
        return -1 if x[:n] < y[:n] else 1
    return len(y) - len(x)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_example_reference(features: Mapping[str, FeatureValue]) -> bytes:
    """Serialize a mapping of feature name to value(s) as a ``tf.train.Example`` (protobuf).

    Args:
        features: name -> ``bytes``/``str`` (bytes_list), ``int``/``bool`` (int64_list),
            ``float`` (float_list), or a list/tuple of one kind. An empty list needs an
            explicit kind: pass ``FeatureValues(kind, [])``.
    """
    example = ExampleProto()
    feature_map = example.features.feature
    for key, value in features.items():
        kind, values = _normalize(key, value)
        feature = feature_map[key]
        if kind == "bytes":
            feature.bytes_list.value.extend(values)
        elif kind == "int64":
            feature.int64_list.value.extend(values)
        else:
            feature.float_list.value.extend(values)
    return example.SerializeToString(deterministic=True)


def decode_example(data: bytes) -> dict[str, FeatureValues]:
    """Parse a serialized ``tf.train.Example`` into ``{name: FeatureValues}``."""
    example = ExampleProto()
    try:
        example.ParseFromString(data)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ExampleDecodeError(f"not a tf.train.Example: {exc}") from None
    out: dict[str, FeatureValues] = {}
    for key, feature in example.features.feature.items():
        which = feature.WhichOneof("kind")
        if which == "bytes_list":
            out[key] = FeatureValues("bytes", list(feature.bytes_list.value))
        elif which == "int64_list":
            out[key] = FeatureValues("int64", list(feature.int64_list.value))
        elif which == "float_list":
            out[key] = FeatureValues("float", list(feature.float_list.value))
        else:  # a Feature with no list set: TensorFlow treats it as empty
            out[key] = FeatureValues("bytes", [])
    return out


def _normalize(key: str, value: FeatureValue | FeatureValues) -> tuple[str, list]:
    if isinstance(value, FeatureValues):
        return value.kind, list(value.values)
    if isinstance(value, (bytes, str, int, float)):
        value = [value]
    values = list(value)
    if not values:
        raise ValueError(f"feature {key!r}: an empty list needs FeatureValues(kind, [])")
    if all(isinstance(v, (bytes, str)) for v in values):
        return "bytes", [v.encode("utf-8") if isinstance(v, str) else v for v in values]
    if all(isinstance(v, (bool, int)) for v in values):
        return "int64", [int(v) for v in values]
    if all(isinstance(v, (float, int)) and not isinstance(v, bool) for v in values):
        return "float", [float(v) for v in values]
    raise TypeError(f"feature {key!r}: values must all be bytes/str, all int or all float")
