"""tf.train.Example codec: round trips and hand-made wire bytes."""

import pytest

from panseg.records.example import (
    ExampleDecodeError,
    FeatureValues,
    decode_example,
    encode_example,
)


def test_round_trip_all_kinds():
    data = encode_example(
        {
            "b": b"\x00\xff",
            "s": "text",
            "i": 7,
            "il": [1, -2, 2**40],
            "f": 0.5,
            "fl": [1.0, 2.5],
            "empty": FeatureValues("int64", []),
        }
    )
    out = decode_example(data)
    assert out["b"] == FeatureValues("bytes", [b"\x00\xff"])
    assert out["s"] == FeatureValues("bytes", [b"text"])
    assert out["i"] == FeatureValues("int64", [7])
    assert out["il"].values == [1, -2, 2**40]
    assert out["f"] == FeatureValues("float", [0.5])
    assert out["fl"].values == [1.0, 2.5]
    assert out["empty"] == FeatureValues("int64", [])


def test_wire_bytes_by_hand():
    # Example{features{feature{key:"a" value{int64_list{value:[3]}}}}}
    # Int64List packed: 0a 01 03; Feature.int64_list (field 3): 1a 03 0a 01 03
    # FeatureEntry: key 0a 01 'a', value 12 05 <feature>; Features.feature: 0a 0a <entry>
    # Example.features: 0a 0c <features>
    expected = bytes.fromhex("0a0c0a0a0a016112051a030a0103")
    assert encode_example({"a": 3}) == expected
    assert decode_example(expected)["a"].values == [3]


def test_mixed_list_is_rejected():
    with pytest.raises(TypeError, match="'x'"):
        encode_example({"x": [b"a", 1]})


def test_garbage_is_reported():
    with pytest.raises(ExampleDecodeError):
        decode_example(b"\xff\xff\xff")


def test_serialization_is_deterministic_whatever_the_insertion_order():
    a = encode_example({"z": 1, "a": b"x", "m": [0.5]})
    b = encode_example({"m": [0.5], "a": b"x", "z": 1})
    assert a == b
