"""Class maps: strict loading, resolution rules, the shipped maps."""

import dataclasses
import json
import pickle

import pytest

from panseg.datasets.cityscapes_labels import cityscapes_panoptic_info
from panseg.datasets.classmap import (
    IGNORE,
    ClassMapError,
    SourceCategory,
    builtin_class_map,
    class_map_from_dict,
    dataset_categories,
    load_class_map,
)
from panseg.datasets.coco import coco_panoptic_info

CATS = (
    SourceCategory(1, "person", True),
    SourceCategory(3, "car", True),
    SourceCategory(8, "truck", True),
    SourceCategory(187, "sky", False),
    SourceCategory(149, "road", False),
)


def make(**overrides):
    data = {
        "name": "demo",
        "ignore_label": 255,
        "classes": [
            {"id": 0, "name": "background", "thing": False, "color": [0, 0, 0]},
            {"id": 1, "name": "person", "thing": True, "sources": ["person"]},
            {"id": 2, "name": "vehicle", "thing": True, "sources": {"coco": ["car", 8]}},
        ],
        "background": 0,
        "unmapped": "background",
    }
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}  # None: leave the key out
    return class_map_from_dict(data, "demo.yaml")


def test_resolution_by_name_id_and_background():
    cmap = make()
    table = cmap.resolve(CATS, "coco").table
    assert table == {1: 1, 3: 2, 8: 2, 187: 0, 149: 0}
    assert cmap.lookup("truck", CATS, "coco") == 2
    assert cmap.lookup(187, CATS, "coco") == 0
    info = cmap.dataset_info(label_divisor=256, resolved=cmap.resolve(CATS, "coco"))
    assert [c.source_ids for c in info.classes] == [(149, 187), (1,), (3, 8)]
    assert info.thing_ids == {1, 2} and info.num_classes == 3 and info.ignore_label == 255


def test_unmapped_ignore_and_explicit_ignore():
    cmap = make(unmapped="ignore", background=None, ignore=["sky"])
    table = cmap.resolve(CATS, "coco").table
    assert table[187] is IGNORE and table[149] is IGNORE
    assert cmap.resolve(CATS, "coco").ignored == {187, 149}
    assert pickle.loads(pickle.dumps(IGNORE)) is IGNORE


def test_unmapped_categories_are_an_error_by_default():
    cmap = make(unmapped="error", background=None)
    with pytest.raises(ClassMapError, match=r"2 coco categories are not mapped: 'sky' \(id 187\)"):
        cmap.resolve(CATS, "coco")


def test_per_dataset_sources_only_apply_to_their_dataset():
    cmap = make(unmapped="ignore", background=None)
    cs = (SourceCategory(3, "car", True), SourceCategory(1, "person", True))
    table = cmap.resolve(cs, "cityscapes").table
    assert table == {1: 1, 3: IGNORE}  # the vehicle sources are listed for coco only


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": 1}, r"unknown key\(s\) \['colour'\]"),
        ({"ignore_label": "255"}, "ignore_label must be int"),
        ({"ignore_label": True}, "ignore_label must be int"),
        ({"unmapped": "drop"}, "unmapped must be one of"),
        ({"background": 7}, "background 7 is not a declared class"),
        ({"unmapped": "background", "background": None}, "needs a background class"),
        ({"ignore_label": 1}, "uses the ignore label 1"),
        ({"num_classes": 2}, "num_classes 2 but the largest train id is 2"),
        ({"classes": []}, "at least one class"),
        ({"classes": [{"id": 1, "name": "a"}]}, r"missing key\(s\) \['thing'\]"),
        ({"classes": [{"id": 1, "name": "a", "thing": True, "color": [0, 0, 256]}]}, "color"),
        ({"classes": [{"id": 1, "name": "a", "thing": True, "sources": [1.5]}]}, "neither"),
        ({"classes": [{"id": 1, "name": "a", "thing": True, "shape": 1}]}, "unknown key"),
    ],
)
def test_strict_loading(overrides, message):
    with pytest.raises(ClassMapError, match=message):
        make(**overrides)


def test_a_train_id_declared_thing_and_stuff_is_an_error():
    classes = [
        {"id": 1, "name": "car", "thing": True},
        {"id": 1, "name": "cars", "thing": False},
    ]
    with pytest.raises(ClassMapError, match="train id 1 is declared both thing and stuff"):
        make(classes=classes, background=None, unmapped="ignore")


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ([{"id": 1, "name": "x", "thing": True, "sources": ["bus"]}], "coco has no category with name 'bus'"),
        ([{"id": 1, "name": "x", "thing": True, "sources": [99]}], "coco has no category with id 99"),
        ([{"id": 1, "name": "x", "thing": True, "sources": ["sky"]}], "thing class but coco category 'sky'"),
        (
            [{"id": 1, "name": "x", "thing": True, "sources": ["car"]},
             {"id": 2, "name": "y", "thing": True, "sources": [3]}],
            r"'car' \(id 3\) is mapped twice",
        ),
    ],
)
def test_resolution_errors(classes, message):
    cmap = make(classes=classes, background=None, unmapped="ignore")
    with pytest.raises(ClassMapError, match=message):
        cmap.resolve(CATS, "coco")


def test_files_json_and_yaml_round_trip(tmp_path):
    cmap = make()
    path = tmp_path / "m.json"
    path.write_text(json.dumps(cmap.to_dict()))
    loaded = load_class_map(str(path))
    assert loaded.to_dict() == cmap.to_dict()
    ypath = tmp_path / "m.yaml"
    ypath.write_text("name: y\nignore_label: 0\nclasses:\n  - {id: 1, name: a, thing: false}\n")
    assert load_class_map(str(ypath)).classes[0].color == (128, 0, 0)  # a default color
    ypath.write_text("name: [unclosed\n")
    with pytest.raises(ClassMapError, match="not valid YAML"):
        load_class_map(str(ypath))
    with pytest.raises(ClassMapError, match="cannot read it"):
        load_class_map(str(tmp_path / "missing.yaml"))


def test_shipped_coco133_is_deeplab2s_label_space():
    cmap = builtin_class_map("coco_panoptic133")
    resolved = cmap.resolve(dataset_categories("coco"), "coco")
    info = cmap.dataset_info(label_divisor=1, resolved=resolved)
    assert info.name == "coco_panoptic133"
    assert dataclasses.replace(info, name="coco_panoptic") == coco_panoptic_info()


def test_shipped_cityscapes19_is_deeplab2s_label_space():
    cmap = builtin_class_map("cityscapes19")
    resolved = cmap.resolve(dataset_categories("cityscapes"), "cityscapes")
    info = cmap.dataset_info(label_divisor=1, resolved=resolved)
    assert dataclasses.replace(info, name="cityscapes_panoptic") == cityscapes_panoptic_info()
    assert resolved.table[0] is IGNORE and resolved.table[29] is IGNORE  # unlabeled, caravan
    assert resolved.table[26] == 13  # car


def test_shipped_person_vehicle_animal_map():
    cmap = builtin_class_map("coco_person_vehicle_animal")
    table = cmap.resolve(dataset_categories("coco"), "coco").table
    assert table[1] == 1
    assert {k for k, v in table.items() if v == 2} == set(range(2, 10))
    assert {k for k, v in table.items() if v == 3} == set(range(16, 26))
    assert sum(v == 0 for v in table.values()) == 133 - 19
    with pytest.raises(ClassMapError, match="no shipped class map"):
        builtin_class_map("coco_panoptic134")
