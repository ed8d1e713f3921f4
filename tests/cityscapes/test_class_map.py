"""convert cityscapes --class-map: cityscapes19 gives the default records; a custom map can
use the labels the default label space leaves void (caravan)."""

import numpy as np

from cityscapes.cstree import labels, read_records, write_raw
from panseg.cli.main import main


def convert(root, out, *extra):
    return main(["convert", "cityscapes", "--root", str(root), "--out", str(out), "--splits",
                 "train", "--workers", "1", "--no-progress", *extra])


def test_cityscapes19_equals_default(synth_root, tmp_path):
    assert convert(synth_root, tmp_path / "default") == 0
    assert convert(synth_root, tmp_path / "mapped", "--class-map", "cityscapes19") == 0
    assert read_records(tmp_path / "default", "train") == read_records(tmp_path / "mapped",
                                                                         "train")


def test_custom_map_sees_ignored_labels(tmp_path):
    root = tmp_path / "cs"
    # road, car 26000, caravan 29000 (ignored in evaluation), car group 26, parking 9
    ids = np.array([[7, 26000, 29000, 26, 9]], dtype=np.uint16)
    write_raw(root, "train", "c", "c_000000_000001", ids)
    (tmp_path / "map.yaml").write_text(
        "name: road_vehicle\nignore_label: 255\nunmapped: ignore\nclasses:\n"
        "  - {id: 0, name: road, thing: false, sources: {cityscapes: [road]}}\n"
        "  - {id: 1, name: vehicle, thing: true, sources: {cityscapes: [car, caravan]}}\n"
    )
    assert convert(root, tmp_path / "out", "--class-map", str(tmp_path / "map.yaml")) == 0
    got = labels(tmp_path / "out", "train")["c_000000_000001"]
    assert got.tolist() == [[0, 1001, 1002, 255000, 255000]]
    assert main(["convert", "cityscapes", "--root", str(root), "--out", str(tmp_path / "s"),
                 "--task", "semantic", "--class-map", "cityscapes19"]) == 2
