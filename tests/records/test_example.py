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


def test_fast_encoder_equals_protobuf_on_random_features():
    import numpy as np

    from panseg.records.example import encode_example_reference

    rng = np.random.default_rng(0)
    keys = ["", "a", "aa", "ab", "abc", "b", "e", "é", "image/encoded", "image/height", "z"]
    for _ in range(500):
        feats = {}
        for _ in range(int(rng.integers(0, 7))):
            key = str(rng.choice(keys))
            kind, n = int(rng.integers(0, 5)), int(rng.integers(1, 4))
            if kind == 0:
                feats[key] = [rng.bytes(int(rng.integers(0, 300))) for _ in range(n)]
            elif kind == 1:
                feats[key] = [int(x) for x in rng.integers(-(2**63), 2**63 - 1, n)]
            elif kind == 2:  # includes values a float32 rounds, flushes or overflows
                feats[key] = [float(x) for x in rng.normal(size=n) * 10.0 ** rng.integers(-50, 50)]
            elif kind == 3:
                feats[key] = FeatureValues(["bytes", "int64", "float"][n % 3], [])
            else:
                feats[key] = "text"
        assert encode_example(feats) == encode_example_reference(feats), feats


def test_map_key_order_is_protobufs():
    # upb's deterministic order: bytewise over the common length, then the longer key first.
    data = encode_example({"": 1, "a": 1, "aa": 1, "b": 1})
    keys = []
    i = 2
    while i < len(data):
        size = data[i + 1]
        entry = data[i + 2 : i + 2 + size]
        keys.append(entry[2 : 2 + entry[1]].decode())
        i += 2 + size
    assert keys == ["aa", "a", "b", ""]
