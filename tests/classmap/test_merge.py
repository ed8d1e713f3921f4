"""panseg convert merge: COCO and Cityscapes in one label space, one record set."""

import json
import os

import numpy as np
import pytest

from panseg.cli.main import main
from panseg.datasets.synthetic import synth_coco
from panseg.datasets.synthetic_cityscapes import synth_cityscapes
from panseg.records.deeplab2 import decode_deeplab2
from panseg.records.tfrecord import read_file_records

MAP = {
    "name": "people_vehicles",
    "ignore_label": 255,
    "label_divisor": 1000,
    "unmapped": "ignore",
    "classes": [
        {"id": 0, "name": "person", "thing": True, "color": [220, 20, 60],
         "sources": {"coco": ["person"], "cityscapes": ["person", "rider"]}},
        {"id": 1, "name": "vehicle", "thing": True, "color": [0, 0, 142],
         "sources": {"coco": ["car", "truck", "bus", "motorcycle", "bicycle"],
                     "cityscapes": ["car", "truck", "bus", "train", "motorcycle", "bicycle"]}},
    ],
}
# Cityscapes train id -> merged train id (255: void)
CS_LUT = np.full(256, 255)
CS_LUT[[11, 12]] = 0
CS_LUT[[13, 14, 15, 16, 17, 18]] = 1


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("merge")
    synth_coco(str(base / "coco"), images=4)
    synth_cityscapes(str(base / "cs"), images_per_city=1, splits=("val",))
    (base / "map.json").write_text(json.dumps(MAP))
    return base


def decoded(out, split="val"):
    return [decode_deeplab2(r) for r in read_file_records(
        os.path.join(out, f"{split}-00000-of-00001.tfrecord"))]


def common(out):
    return ["--out", str(out), "--splits", "val", "--num-shards", "1", "--workers", "1",
            "--no-progress"]


def test_merge_coco_and_cityscapes(trees, tmp_path):
    out = tmp_path / "merged"
    assert main(["convert", "merge", "--class-map", str(trees / "map.json"),
                 "--source", f"coco={trees / 'coco'}", "--source", f"cityscapes={trees / 'cs'}",
                 *common(out)]) == 0
    merged = decoded(out)
    # the COCO part equals a COCO conversion with the same map
    assert main(["convert", "coco", "--root", str(trees / "coco"), "--class-map",
                 str(trees / "map.json"), *common(tmp_path / "coco")]) == 0
    coco = decoded(tmp_path / "coco")
    # the Cityscapes part agrees with the default 19-class conversion, remapped
    assert main(["convert", "cityscapes", "--root", str(trees / "cs"),
                 *common(tmp_path / "cs")]) == 0
    cs = decoded(tmp_path / "cs")
    assert [e.filename for e in merged] == [e.filename for e in coco + cs]
    assert {e.image_format for e in merged} == {"jpeg", "png"}
    for a, b in zip(merged[: len(coco)], coco, strict=True):
        np.testing.assert_array_equal(a.label, b.label)
    things = 0
    for a, b in zip(merged[len(coco):], cs, strict=True):
        listed = b.label != 255000
        np.testing.assert_array_equal((a.label // 1000)[listed], CS_LUT[b.label // 1000][listed])
        thing = listed & (CS_LUT[b.label // 1000] != 255) & (b.label % 1000 > 0)
        pairs = set(zip(a.label[thing].tolist(), b.label[thing].tolist(), strict=True))
        # one merged instance per original instance, numbered 1..n within the merged class
        assert len({p[0] for p in pairs}) == len({p[1] for p in pairs}) == len(pairs)
        for cls in (0, 1):
            ids = sorted({p[0] % 1000 for p in pairs if p[0] // 1000 == cls})
            assert ids == list(range(1, len(ids) + 1))
        things += len(pairs)
    assert things > 0
    manifest = json.load(open(out / "manifest.json"))
    assert manifest["options"]["merge"] == ["coco", "cityscapes"]
    assert manifest["dataset"]["label_divisor"] == 1000


def test_merge_errors(trees, tmp_path, capsys):
    args = ["convert", "merge", *common(tmp_path / "o")]
    assert main([*args, "--source", f"coco={trees / 'coco'}"]) == 2
    assert "needs --class-map" in capsys.readouterr().err
    assert main([*args, "--class-map", str(trees / "map.json"), "--source", "kitti=/x"]) == 2
    assert "expected DATASET=ROOT" in capsys.readouterr().err
    assert main([*args, "--class-map", "coco_person_vehicle_animal",
                 "--source", f"cityscapes={trees / 'cs'}"]) == 2
    assert "the map names no cityscapes category (its sources are for: coco)" in capsys.readouterr().err
