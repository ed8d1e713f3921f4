"""--class-map in the converters: hand-derived labels, identity with the default, errors."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from panseg.cli.main import main
from panseg.records.deeplab2 import decode_deeplab2
from panseg.records.tfrecord import read_file_records

PERSON, BICYCLE, CAR, TRUCK, BOTTLE, SKY, ZEBRA = 1, 2, 3, 8, 44, 187, 24


def write_tree(root, split, images):
    """A minimal COCO panoptic tree: ``images`` = [(stem, ids uint32 HxW, segments_info)]."""
    os.makedirs(os.path.join(root, f"{split}2017"), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations", f"panoptic_{split}2017"), exist_ok=True)
    anns = []
    for index, (stem, ids, segments) in enumerate(images):
        ids = np.asarray(ids, dtype=np.uint32)
        rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], -1).astype(np.uint8)
        Image.fromarray(rgb).save(os.path.join(root, "annotations", f"panoptic_{split}2017", f"{stem}.png"))
        Image.fromarray(np.full(ids.shape + (3,), 90, np.uint8)).save(
            os.path.join(root, f"{split}2017", f"{stem}.jpg"))
        anns.append({"image_id": index + 1, "file_name": f"{stem}.png", "segments_info": segments})
    with open(os.path.join(root, "annotations", f"panoptic_{split}2017.json"), "w") as f:
        json.dump({"annotations": anns, "images": [], "categories": []}, f)


def seg(id_, category, area, crowd=0):
    return {"id": id_, "category_id": category, "area": area, "iscrowd": crowd}


def labels(out, split="val", shards=1):
    return [
        decode_deeplab2(r).label
        for k in range(shards)
        for r in read_file_records(os.path.join(out, f"{split}-{k:05d}-of-{shards:05d}.tfrecord"))
    ]


def convert(root, out, *extra):
    return main(["convert", "coco", "--root", str(root), "--out", str(out), "--splits", "val",
                 "--num-shards", "1", "--workers", "1", "--no-progress", *extra])


def test_person_vehicle_animal_labels_by_hand(tmp_path):
    ids = [[1, 2, 3, 4], [5, 6, 7, 0], [8, 8, 9, 9]]
    segments = [
        seg(9, SKY, 2), seg(3, TRUCK, 1), seg(1, PERSON, 1), seg(2, CAR, 1),
        seg(4, CAR, 1, crowd=1), seg(5, ZEBRA, 1), seg(6, BOTTLE, 1, crowd=1),
        seg(7, BICYCLE, 1), seg(8, BOTTLE, 2),
    ]
    write_tree(tmp_path / "coco", "val", [("a", ids, segments)])
    assert convert(tmp_path / "coco", tmp_path / "out", "--class-map",
                   "coco_person_vehicle_animal") == 0
    (label,) = labels(tmp_path / "out")
    void = 255 * 256
    # vehicle instances renumbered within the new class in segment order: truck 1, car 2,
    # bicycle 3; the crowd car is void (--crowd ignore); the crowd bottle became background
    # stuff (0) like the other bottle and the sky; void pixels stay void.
    expected = [
        [1 * 256 + 1, 2 * 256 + 2, 2 * 256 + 1, void],
        [3 * 256 + 1, 0, 2 * 256 + 3, void],
        [0, 0, 0, 0],
    ]
    np.testing.assert_array_equal(label, expected)
    manifest = json.load(open(tmp_path / "out" / "manifest.json"))
    assert manifest["options"]["class_map"]["name"] == "coco_person_vehicle_animal"
    assert manifest["dataset"]["name"] == "coco_person_vehicle_animal"
    assert manifest["dataset"]["classes"][2]["source_ids"] == list(range(2, 10))


def test_coco133_map_writes_the_default_records(tmp_path):
    from panseg.datasets.synthetic import synth_coco

    synth_coco(str(tmp_path / "coco"), images=4)
    assert convert(tmp_path / "coco", tmp_path / "a") == 0
    assert convert(tmp_path / "coco", tmp_path / "b", "--class-map", "coco_panoptic133") == 0
    for x, y in zip(labels(tmp_path / "a"), labels(tmp_path / "b"), strict=True):
        np.testing.assert_array_equal(x, y)
    a = open(tmp_path / "a" / "val-00000-of-00001.tfrecord", "rb").read()
    assert a == open(tmp_path / "b" / "val-00000-of-00001.tfrecord", "rb").read()


def test_ignored_categories_become_void(tmp_path):
    ids = [[1, 2], [3, 0]]
    write_tree(tmp_path / "coco", "val", [("a", ids, [seg(1, PERSON, 1), seg(2, SKY, 1), seg(3, CAR, 1)])])
    cmap = tmp_path / "people.json"
    cmap.write_text(json.dumps({
        "name": "people", "ignore_label": 0, "unmapped": "ignore",
        "classes": [{"id": 1, "name": "person", "thing": True, "sources": {"coco": ["person"]}},
                    {"id": 2, "name": "sky", "thing": False, "sources": {"coco": [187]}}],
    }))
    assert convert(tmp_path / "coco", tmp_path / "out", "--class-map", str(cmap)) == 0
    (label,) = labels(tmp_path / "out")
    np.testing.assert_array_equal(label, [[1 * 256 + 1, 2 * 256], [0, 0]])


def test_unknown_category_in_the_data_is_a_problem(tmp_path, capsys):
    write_tree(tmp_path / "coco", "val", [("a", [[1]], [seg(1, 91, 1)])])  # 91: no such id
    assert convert(tmp_path / "coco", tmp_path / "out", "--class-map",
                   "coco_person_vehicle_animal") == 1
    err = capsys.readouterr().err
    assert "a.png [segment 1]: category_id 91 is not a coco category known to the class map" in err


def test_bad_map_is_a_one_line_error(tmp_path, capsys):
    write_tree(tmp_path / "coco", "val", [("a", [[1]], [seg(1, PERSON, 1)])])
    cmap = tmp_path / "bad.yaml"
    cmap.write_text("name: x\nignore_label: 255\nclasses:\n  - {id: 1, name: p, thing: true, sources: [person]}\n")
    assert convert(tmp_path / "coco", tmp_path / "out", "--class-map", str(cmap)) == 2
    err = capsys.readouterr().err
    assert err.startswith("panseg: error: ") and "132 coco categories are not mapped" in err
    assert convert(tmp_path / "coco", tmp_path / "out", "--class-map", "nope") == 2
    assert "shipped maps" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--include-masks", "--panoptic-skip-crowd"])
def test_model_garden_flags_need_the_schema(tmp_path, flag, capsys):
    write_tree(tmp_path / "coco", "val", [("a", [[1]], [seg(1, PERSON, 1)])])
    assert convert(tmp_path / "coco", tmp_path / "out", flag) == 2
    assert "need --schema model-garden" in capsys.readouterr().err
