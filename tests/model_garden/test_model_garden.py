"""Model Garden schema: hand-derived boxes and masks, panoptic PNGs, layout, problems."""

import hashlib
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from panseg.cli.main import main
from panseg.datasets.base import Segment
from panseg.datasets.coco_instances import CocoInstancesExample, CocoObject, coco_model_garden_info
from panseg.datasets.synthetic import synth_coco
from panseg.records.example import decode_example
from panseg.records.model_garden import (
    ModelGardenEncoder,
    panoptic_masks,
    panoptic_masks_reference,
    segmentation_to_mask,
)
from panseg.records.tfrecord import read_file_records
from panseg.records.writer import shard_layout

INFO = coco_model_garden_info()
PERSON, CAR, SKY, ROAD = 1, 3, 187, 149


def png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "L"
        return np.asarray(im)


def raw_example(objects=(), segments=None, ids=None, height=8, width=10, image_size=None):
    h, w = image_size or (height, width)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, format="JPEG")
    return CocoInstancesExample(
        key="x.jpg", image_path="/d/x.jpg", image_bytes=buf.getvalue(), image_format="jpg",
        segments=segments, label_path="/d/x.png",
        read_ids=None if ids is None else (lambda: np.asarray(ids, dtype=np.uint32)),
        image_id=42, file_name="x.jpg", height=height, width=width,
        objects=tuple(objects), objects_file="/d/instances.json",
    )


def obj(bbox, category=PERSON, crowd=0, segmentation=None, area=1.0):
    return CocoObject(category, tuple(float(v) for v in bbox), area, crowd, segmentation)


def test_round_robin_is_model_gardens_assignment():
    # tfrecord_lib.write_tf_record_dataset: writers[idx % num_shards]
    assert shard_layout(10, 4, "round_robin") == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
    assert shard_layout(2, 3, "round_robin") == [[0], [1], []]


def test_boxes_by_hand():
    enc = ModelGardenEncoder(INFO)
    raw = raw_example([
        obj([0, 0, 10, 8]),          # the whole image: x + w == W is kept, xmax 1.0
        obj([1, 1, 0, 3]),           # w == 0: skipped
        obj([5, 5, 5.5, 1]),         # x + w = 10.5 > 10: skipped, no clipping
        obj([-1, 2, 3, 4], CAR, 1, area=7.5),  # negative x is kept, as Model Garden does
        obj([2, 2, 3, -1]),          # h < 0: skipped
    ])
    lists, problems = enc.object_lists(raw)
    assert problems == []
    assert (lists.skipped_size, lists.skipped_outside) == (2, 1)
    assert lists.xmin == [0.0, -0.1] and lists.xmax == [1.0, 0.2]
    assert lists.ymin == [0.0, 0.25] and lists.ymax == [1.0, 0.75]
    assert lists.label == [PERSON, CAR] and lists.text == [b"person", b"car"]
    assert lists.is_crowd == [0, 1] and lists.area == [1.0, 7.5]
    example, warning = enc.encode(raw)
    feats = decode_example(example)
    assert feats["image/object/bbox/xmin"].values == pytest.approx([0.0, -0.1])
    assert feats["image/object/area"].kind == "float"
    assert "skipped 3 annotation(s)" in warning
    assert "image/object/mask" not in feats


def test_all_boxes_skipped_writes_no_object_keys():
    enc = ModelGardenEncoder(INFO, include_masks=True)
    feats = decode_example(enc.encode(raw_example([obj([0, 0, 0, 1])]))[0])
    assert not [k for k in feats if k.startswith("image/object/")]
    assert sorted(feats) == sorted([
        "image/encoded", "image/format", "image/filename", "image/source_id",
        "image/key/sha256", "image/height", "image/width"])
    assert feats["image/format"].values == [b"jpg"] and feats["image/source_id"].values == [b"42"]


def test_masks_by_hand():
    square = [[0, 0, 4, 0, 4, 4, 0, 4]]
    expected = np.zeros((6, 8), np.uint8)
    expected[:4, :4] = 1
    np.testing.assert_array_equal(segmentation_to_mask(square, 6, 8), expected)
    two = [[0, 0, 2, 0, 2, 2, 0, 2], [6, 4, 8, 4, 8, 6, 6, 6]]
    expected = np.zeros((6, 8), np.uint8)
    expected[:2, :2] = expected[4:, 6:] = 1
    np.testing.assert_array_equal(segmentation_to_mask(two, 6, 8), expected)
    # uncompressed RLE, column-major runs starting with zeros: 1 zero, 2 ones, 3 zeros, ...
    rle = {"size": [3, 4], "counts": [1, 2, 3, 1, 5]}
    np.testing.assert_array_equal(
        segmentation_to_mask(rle, 3, 4), [[0, 0, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0]]
    )
    np.testing.assert_array_equal(segmentation_to_mask([], 2, 3), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="RLE size"):
        segmentation_to_mask({"size": [4, 3], "counts": [12]}, 3, 4)
    with pytest.raises(ValueError, match="pycocotools cannot read"):
        segmentation_to_mask([[1, 2]], 3, 4)


def test_mask_pngs_are_0_1_and_aligned_with_kept_boxes():
    enc = ModelGardenEncoder(INFO, include_masks=True)
    rle = {"size": [8, 10], "counts": [80]}
    raw = raw_example([
        obj([0, 0, 0, 2], segmentation=[[0, 0, 1, 0, 1, 1]]),  # skipped: no mask either
        obj([0, 0, 4, 4], segmentation=[[0, 0, 4, 0, 4, 4, 0, 4]]),
        obj([0, 0, 10, 8], CAR, 1, segmentation=rle),
    ])
    feats = decode_example(enc.encode(raw)[0])
    masks = [png(m) for m in feats["image/object/mask"].values]
    assert feats["image/object/class/label"].values == [PERSON, CAR]
    assert masks[0].shape == (8, 10) and masks[0].sum() == 16 and masks[0].max() == 1
    assert masks[1].sum() == 0


def test_bad_segmentation_is_a_problem_naming_the_object():
    enc = ModelGardenEncoder(INFO, include_masks=True)
    problems = enc.check(raw_example([obj([0, 0, 2, 2], segmentation={"size": [1, 1], "counts": [1]})]))
    assert len(problems) == 1 and problems[0].where == f"object #0 (category {PERSON})"
    assert "RLE size" in problems[0].message and problems[0].file == "/d/instances.json"


SEGMENTS = (
    Segment(7, SKY, False, 2),       # stuff: 187 - 90 = 97
    Segment(3, PERSON, False, 1),    # thing at index 1: instance 2
    Segment(9, CAR, True, 1),        # crowd thing at index 2: instance 3 (or void)
    Segment(4, ROAD, False, 1),      # stuff: 149 - 90 = 59
)
IDS = [[7, 7, 3], [9, 4, 0]]


@pytest.mark.parametrize("skip_crowd", [False, True])
def test_panoptic_masks_by_hand(skip_crowd):
    enc = ModelGardenEncoder(INFO, include_panoptic_masks=True, skip_crowd=skip_crowd)
    feats = decode_example(enc.encode(raw_example(segments=SEGMENTS, ids=IDS, height=2, width=3))[0])
    c = 0 if skip_crowd else 1
    np.testing.assert_array_equal(png(feats["image/segmentation/class/encoded"].values[0]),
                                  [[97, 97, 1], [c, 59, 0]])
    np.testing.assert_array_equal(png(feats["image/panoptic/category_mask"].values[0]),
                                  [[SKY, SKY, PERSON], [CAR * c, ROAD, 0]])
    np.testing.assert_array_equal(png(feats["image/panoptic/instance_mask"].values[0]),
                                  [[0, 0, 2], [3 * c, 0, 0]])


def test_semantic_only_without_include_panoptic_masks():
    feats = decode_example(ModelGardenEncoder(INFO).encode(
        raw_example(segments=SEGMENTS, ids=IDS, height=2, width=3))[0])
    assert "image/segmentation/class/encoded" in feats
    assert "image/panoptic/category_mask" not in feats


def test_fast_masks_agree_with_the_reference_loop():
    rng = np.random.default_rng(0)
    for trial in range(20):
        k = int(rng.integers(0, 40))
        seg_ids = rng.choice(np.arange(1, 1 << 24), size=k, replace=False)
        cats = rng.choice([c.id for c in INFO.classes], size=k)
        crowd = rng.random(k) < 0.2
        segments = [Segment(int(s), int(c), bool(w)) for s, c, w in zip(seg_ids, cats, crowd, strict=True)]
        pool = np.concatenate([seg_ids, [0, 5]]) if k else np.array([0, 5])
        ids = rng.choice(pool, size=(13, 17)).astype(np.uint32)
        skip = bool(trial % 2)
        enc = ModelGardenEncoder(INFO, include_panoptic_masks=True, skip_crowd=skip)
        sem, cat, inst, _ = enc.segment_values(segments, file="f", key="k")
        fast = panoptic_masks(ids, seg_ids, sem, cat, inst)[:3]
        is_thing = {c.id: c.is_thing for c in INFO.classes}
        slow = panoptic_masks_reference(ids, segments, is_thing, skip_crowd=skip)
        for a, b in zip(fast, slow, strict=True):
            np.testing.assert_array_equal(a, b)


def test_more_than_255_segments_is_an_error_not_a_wrap_around():
    n = 256
    ids = np.arange(1, n + 1, dtype=np.uint32).reshape(16, 16)
    segments = tuple(Segment(i, PERSON, False, 1) for i in range(1, n + 1))
    enc = ModelGardenEncoder(INFO, include_panoptic_masks=True)
    problems = enc.check(raw_example(segments=segments, ids=ids, height=16, width=16))
    assert len(problems) == 1 and "instance id 256" in problems[0].message
    assert problems[0].where == "segment 256"
    # 255 segments fit; without the instance mask there is no limit
    assert enc.check(raw_example(segments=segments[:255], ids=np.where(ids > 255, 0, ids),
                                 height=16, width=16)) == []
    assert ModelGardenEncoder(INFO).check(raw_example(segments=segments, ids=ids, height=16, width=16)) == []


def test_size_and_area_problems():
    enc = ModelGardenEncoder(INFO, include_panoptic_masks=True)
    problems = enc.check(raw_example(segments=SEGMENTS, ids=IDS, height=2, width=3, image_size=(4, 3)))
    assert any("image is 4x3 but its images[] entry says 2x3" in p.message for p in problems)
    bad_area = (Segment(7, SKY, False, 3),)
    problems = enc.check(raw_example(segments=bad_area, ids=IDS, height=2, width=3))
    assert [p.message for p in problems] == ["area 3 in the JSON but 2 pixels in the PNG"]
    problems = enc.check(raw_example(segments=SEGMENTS, ids=IDS, height=3, width=2, image_size=(2, 3)))
    assert any("PNG size 2x3 differs" in p.message for p in problems)


def test_class_ids_outside_1_255_are_refused():
    from panseg.datasets.classmap import builtin_class_map, dataset_categories

    cmap = builtin_class_map("coco_person_vehicle_animal")
    info = cmap.dataset_info(label_divisor=256, resolved=cmap.resolve(dataset_categories("coco"), "coco"))
    with pytest.raises(ValueError, match="class 'background' has id 0"):
        ModelGardenEncoder(info)


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def synth_tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mg") / "coco")
    synth_coco(root, images=7)
    return root


def read_split(out, split, n):
    shards = []
    for k in range(n):
        path = os.path.join(out, f"{split}-{k:05d}-of-{n:05d}.tfrecord")
        shards.append([decode_example(r) for r in read_file_records(path)])
    return shards


def test_end_to_end_layout_keys_and_fields(synth_tree, tmp_path):
    out = str(tmp_path / "out")
    assert main(["convert", "coco", "--root", synth_tree, "--out", out, "--schema", "model-garden",
                 "--include-masks", "--include-panoptic-masks", "--num-shards", "3",
                 "--splits", "train,val", "--workers", "1", "--no-progress"]) == 0
    instances = json.load(open(os.path.join(synth_tree, "annotations", "instances_train2017.json")))
    names = [im["file_name"] for im in instances["images"]]
    shards = read_split(out, "train", 3)
    # round robin over images[] in JSON order (the synthetic JSON lists them in reverse)
    assert [[ex["image/filename"].values[0].decode() for ex in s] for s in shards] == [
        names[k::3] for k in range(3)]
    by_id = {}
    for ann in instances["annotations"]:
        by_id.setdefault(ann["image_id"], []).append(ann)
    for ex in (ex for s in shards for ex in s):
        image_id = int(ex["image/source_id"].values[0])
        data = open(os.path.join(synth_tree, "train2017", ex["image/filename"].values[0].decode()), "rb").read()
        assert ex["image/encoded"].values[0] == data
        assert ex["image/key/sha256"].values[0].decode() == hashlib.sha256(data).hexdigest()
        anns = [a for a in by_id.get(image_id, []) if a["bbox"][2] > 0 and a["bbox"][0] + a["bbox"][2] <= 160]
        if anns:
            assert len(ex) == 19
            assert ex["image/object/class/label"].values == [a["category_id"] for a in anns]
            assert ex["image/object/is_crowd"].values == [a["iscrowd"] for a in anns]
            assert len(ex["image/object/mask"].values) == len(anns)
        else:
            assert len(ex) == 10
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["schema"] == "model-garden" and manifest["options"]["stuff_offset"] == 90
    assert manifest["dataset"]["num_classes"] == 201


def test_end_to_end_with_a_class_map(synth_tree, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["convert", "coco", "--root", synth_tree, "--out", out, "--schema", "model-garden",
                 "--include-panoptic-masks", "--class-map", "coco_panoptic133", "--num-shards", "1",
                 "--splits", "val", "--workers", "1", "--no-progress"]) == 0
    assert "stuff_classes_offset = 79" in capsys.readouterr().out
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["dataset"]["ignore_label"] == 0 and manifest["dataset"]["num_classes"] == 134
    (shard,) = read_split(out, "val", 1)
    for ex in shard:
        cats = set(np.unique(png(ex["image/panoptic/category_mask"].values[0])).tolist())
        assert cats <= set(range(0, 134))
        for label in ex.get("image/object/class/label", type("V", (), {"values": []})).values:
            assert 1 <= label <= 80


def test_image_without_panoptic_annotation_is_a_problem(tmp_path, capsys):
    root = str(tmp_path / "coco")
    synth_coco(root, images=2)
    path = os.path.join(root, "annotations", "panoptic_val2017.json")
    data = json.load(open(path))
    data["annotations"] = data["annotations"][1:]
    json.dump(data, open(path, "w"))
    assert main(["convert", "coco", "--root", root, "--out", str(tmp_path / "o"), "--schema",
                 "model-garden", "--splits", "val", "--workers", "1", "--no-progress"]) == 1
    assert "has no panoptic annotation" in capsys.readouterr().err


def test_segment_index_paths_agree():
    from panseg.records.deeplab2 import lookup_segments
    from panseg.records.model_garden import segment_index

    rng = np.random.default_rng(1)
    for k in (0, 1, 30, 254, 300):
        seg_ids = rng.choice(np.arange(1, 1 << 24), size=k, replace=False).astype(np.uint32)
        pool = np.concatenate([seg_ids, np.array([0, 7, (1 << 24) + 5, 2**32 - 1], np.uint32)])
        ids = rng.choice(pool, size=(9, 11)).astype(np.uint32)
        expected = lookup_segments(ids, seg_ids)
        np.testing.assert_array_equal(segment_index(ids, seg_ids), expected)
        again = segment_index(ids, seg_ids)  # the per-process table was reset
        np.testing.assert_array_equal(again, expected)


def test_decode_round_trip():
    from panseg.records.model_garden import decode_model_garden

    enc = ModelGardenEncoder(INFO, include_masks=True, include_panoptic_masks=True)
    raw = raw_example([obj([0, 0, 2, 1], segmentation=[[0, 0, 2, 0, 2, 1, 0, 1]])],
                      segments=SEGMENTS, ids=IDS, height=2, width=3)
    dec = decode_model_garden(enc.encode(raw)[0])
    assert dec.filename == "x.jpg" and dec.source_id == "42" and dec.image.shape == (2, 3, 3)
    np.testing.assert_allclose(dec.boxes, [[0, 0, 0.5, 2 / 3]], rtol=1e-6)
    assert dec.labels.tolist() == [PERSON] and dec.texts == ["person"]
    assert dec.masks.shape == (1, 2, 3) and dec.masks.max() == 1
    np.testing.assert_array_equal(dec.instance, [[0, 0, 2], [3, 0, 0]])
    empty = decode_model_garden(ModelGardenEncoder(INFO).encode(raw_example())[0])
    assert empty.boxes.shape == (0, 4) and empty.masks.shape == (0, 8, 10)
    assert empty.semantic is None


def test_class_map_in_front_of_the_model_garden_encoder_by_hand():
    from panseg.datasets.classmap import class_map_from_dict, dataset_categories
    from panseg.records.mapped import label_space

    cmap = class_map_from_dict({
        "name": "street", "ignore_label": 0, "unmapped": "ignore",
        "classes": [
            {"id": 1, "name": "human", "thing": True, "sources": ["person"]},
            {"id": 2, "name": "vehicle", "thing": True, "sources": ["car", "truck"]},
            {"id": 4, "name": "ground", "thing": False, "sources": ["road", "dog"]},
        ],
    })
    space = label_space(cmap, default=INFO, categories=dataset_categories("coco"), dataset="coco")
    enc = space.wrap(ModelGardenEncoder(space.encoder_info, include_panoptic_masks=True))
    assert enc.inner.offset == 2  # smallest stuff id 4 -> semantic value 2
    raw = raw_example(
        [obj([0, 0, 1, 1], 8), obj([0, 0, 1, 1], 18), obj([0, 0, 1, 1], PERSON), obj([0, 0, 1, 1], 44)],
        segments=SEGMENTS, ids=IDS, height=2, width=3,
    )
    feats = decode_example(enc.encode(raw)[0])
    # truck -> vehicle; dog -> stuff "ground": no object; bottle (44) ignored
    assert feats["image/object/class/label"].values == [2, 1]
    assert feats["image/object/class/text"].values == [b"vehicle", b"human"]
    # sky is ignored: its segment is dropped, so the others move up one index
    np.testing.assert_array_equal(png(feats["image/segmentation/class/encoded"].values[0]),
                                  [[0, 0, 1], [1, 2, 0]])
    np.testing.assert_array_equal(png(feats["image/panoptic/category_mask"].values[0]),
                                  [[0, 0, 1], [2, 4, 0]])
    np.testing.assert_array_equal(png(feats["image/panoptic/instance_mask"].values[0]),
                                  [[0, 0, 1], [2, 0, 0]])


def test_instances_json_option(synth_tree, tmp_path, capsys):
    import shutil

    moved = str(tmp_path / "inst_{split}.json")
    for split in ("train", "val"):
        shutil.copy(os.path.join(synth_tree, "annotations", f"instances_{split}2017.json"),
                    moved.replace("{split}", split))
    args = ["convert", "coco", "--root", synth_tree, "--schema", "model-garden", "--workers", "1",
            "--no-progress", "--num-shards", "1"]
    assert main([*args, "--out", str(tmp_path / "a"), "--splits", "val",
                 "--instances-json", moved]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--splits", "train,val",
                 "--instances-json", str(tmp_path / "inst_val.json")]) == 2
    assert "put {split} in it" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "c"), "--splits", "val",
                 "--instances-json", str(tmp_path / "missing_{split}.json")]) == 1
    assert "missing_val.json: annotation JSON not found" in capsys.readouterr().err
