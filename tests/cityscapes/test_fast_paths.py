"""The fast paths of Cityscapes conversion against their references: PNG chunk passthrough
vs ``prepare_image``, table painting vs ``paint_segments_reference`` and the parent encoder."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from panseg.datasets.base import ItemProblems, RawExample, Segment
from panseg.datasets.cityscapes_labels import cityscapes_panoptic_info
from panseg.records.deeplab2 import PanopticDeepLab2Encoder, paint_segments_reference
from panseg.records.deeplab2_small_ids import SmallIdPanopticEncoder, paint_small_ids
from panseg.records.images import prepare_image, prepare_image_reference
from panseg.records.png_chunks import png_passthrough_size


def png(array, **save) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG", **save)
    return out.getvalue()


RGB = (np.arange(5 * 7 * 3) % 251).astype(np.uint8).reshape(5, 7, 3)


def test_plain_rgb_png_passes_through_like_prepare_image():
    data = png(RGB)
    assert png_passthrough_size(data) == (5, 7)
    assert prepare_image(data, "png") == prepare_image_reference(data, "png")
    with_dpi = png(RGB, dpi=(72, 72))  # a pHYs chunk
    assert png_passthrough_size(with_dpi) == (5, 7)


@pytest.mark.parametrize("variant", ["gray", "rgba", "text", "exif", "crc", "truncated",
                                     "trailing", "interlaced"])
def test_other_pngs_go_to_prepare_image(variant):
    if variant == "gray":
        data = png(RGB[..., 0])
    elif variant == "rgba":
        data = png(np.dstack([RGB, RGB[..., :1]]))
    elif variant == "text":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "hello")
        data = png(RGB, pnginfo=info)
    elif variant == "exif":
        exif = Image.Exif()
        exif[0x0112] = 6
        data = png(RGB, exif=exif.tobytes())
    elif variant == "interlaced":
        raw = bytearray(png(RGB))
        raw[28] = 1  # IHDR interlace byte
        raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
        data = bytes(raw)
    else:
        raw = bytearray(png(RGB))
        if variant == "crc":
            raw[45] ^= 0xFF
        elif variant == "truncated":
            raw = raw[:-20]
        else:
            raw += b"junk"
        data = bytes(raw)
    assert png_passthrough_size(data) is None
    try:
        expected = prepare_image_reference(data, "png")
    except ValueError as exc:
        with pytest.raises(ValueError, match="not a readable image"):
            prepare_image(data, "png")
        assert "not a readable image" in str(exc)
    else:
        assert prepare_image(data, "png") == expected


@pytest.mark.parametrize("blocky", [True, False])  # long runs (run path) or noise (per pixel)
@pytest.mark.parametrize("count_areas", [True, False])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32])
def test_paint_small_ids_equals_reference(dtype, count_areas, blocky):
    rng = np.random.default_rng(1)
    pool = np.array([0, 7, 24, 26000, 26001, 26999, 33000, 65535, 40])
    if blocky:
        ids = np.repeat(rng.choice(pool, size=(37, 6)), 9, axis=1)[:, :53].astype(dtype)
    else:
        ids = rng.choice(pool, size=(37, 53)).astype(dtype)
    if dtype == np.int32:
        ids[0, :5] = -1  # never listed
    listed = np.array([7, 24, 26000, 26999, 65535])
    values = np.array([0, 255000, 13001, 13002, 5000], dtype=np.int32)
    label, areas = paint_small_ids(ids, listed, values, 255000, count_areas=count_areas)
    ref_label, ref_areas = paint_segments_reference(ids, listed.tolist(), values.tolist(), 255000)
    assert label.dtype == np.int32 and np.array_equal(label, ref_label)
    if count_areas:
        assert areas.tolist() == ref_areas.tolist()
    else:
        assert areas is None
    empty, _ = paint_small_ids(ids, np.array([], np.int64), np.array([], np.int32), 9)
    assert (empty == 9).all()
    with pytest.raises(ValueError, match="segment ids must lie"):
        paint_small_ids(ids, np.array([70000]), np.array([1], np.int32), 0)


def _raw(ids, segments):
    return RawExample("k", "k.png", png(np.zeros((*ids.shape, 3), np.uint8)), "png",
                      segments=tuple(segments), label_path="k_ids.png", read_ids=lambda: ids)


@pytest.mark.parametrize("crowd", ["ignore", "keep"])
def test_small_id_encoder_equals_parent(crowd):
    info = cityscapes_panoptic_info()
    rng = np.random.default_rng(2)
    ids = rng.choice([7, 23, 24, 26000, 26002, 70000, 5], size=(9, 12)).astype(np.uint32)
    counts = {v: int((ids == v).sum()) for v in np.unique(ids).tolist()}
    for areas in (True, False):
        segments = [Segment(v, v if v < 1000 else v // 1000, v == 24,
                            counts[v] if areas else None) for v in (7, 23, 24, 26000, 26002)]
        ours = SmallIdPanopticEncoder(info, crowd).encode(_raw(ids, segments))
        parent = PanopticDeepLab2Encoder(info, crowd).encode(_raw(ids, segments))
        assert ours == parent
    # an id >= 2**16 in the segment list: the parent's path
    big = [Segment(70000, 7, False, counts[70000])]
    assert (SmallIdPanopticEncoder(info).encode(_raw(ids, big))
            == PanopticDeepLab2Encoder(info).encode(_raw(ids, big)))
    wrong = [Segment(7, 7, False, counts[7] + 1)]
    with pytest.raises(ItemProblems, match="area .* in the JSON but"):
        SmallIdPanopticEncoder(info).encode(_raw(ids, wrong))


def test_semantic_table_path_equals_numpy_reference():
    from panseg.datasets.cityscapes_labels import label_id_to_train_id_lut
    from panseg.datasets.semantic import RawSemanticExample
    from panseg.records.deeplab2_semantic import (
        SemanticPngEncoder,
        encode_label_png,
        map_label_png,
    )

    rng = np.random.default_rng(4)
    label_ids = rng.choice([0, 1, 7, 9, 26, 33, 21], size=(6, 9)).astype(np.uint8)
    lut = label_id_to_train_id_lut()
    encoder = SemanticPngEncoder(cityscapes_panoptic_info(), lut=tuple(int(v) for v in lut))
    for extra in ({}, {"dpi": (300, 300), "transparency": 7}):
        raw = RawSemanticExample("k", "k.png", png(np.zeros((6, 9, 3), np.uint8)), "png",
                                 "k_labelIds.png", png(label_ids, **extra))
        assert encoder.label(raw, 6, 9) == encode_label_png(map_label_png(label_ids, lut))


@pytest.mark.parametrize("shape", [(0, 4), (1, 1), (5, 7), (64, 64)])
def test_runs_and_distinct_values_equal_numpy(shape):
    from panseg.datasets.runs import distinct_values, runs

    rng = np.random.default_rng(5)
    ids = np.repeat(rng.integers(0, 40000, size=(shape[0], max(1, shape[1] // 3))), 3, axis=1)
    ids = ids[:, : shape[1]].astype(np.uint16)
    assert distinct_values(ids).tolist() == np.unique(ids).tolist()
    starts, lengths = runs(ids.ravel())
    assert lengths.sum() == ids.size
    assert np.array_equal(np.repeat(ids.ravel()[starts], lengths), ids.ravel())
