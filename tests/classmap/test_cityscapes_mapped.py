"""--class-map in convert cityscapes."""

import json
import os

import numpy as np

from panseg.cli.main import main
from panseg.datasets.synthetic_cityscapes import synth_cityscapes
from panseg.records.deeplab2 import decode_deeplab2
from panseg.records.tfrecord import read_file_records


def convert(root, out, *extra):
    return main(["convert", "cityscapes", "--root", str(root), "--out", str(out), "--splits",
                 "val", "--num-shards", "1", "--workers", "1", "--no-progress", *extra])


def shard(out):
    return open(os.path.join(out, "val-00000-of-00001.tfrecord"), "rb").read()


def test_cityscapes19_map_writes_the_default_records_and_a_coarser_map_merges(tmp_path):
    synth_cityscapes(str(tmp_path / "cs"), images_per_city=1, splits=("val",))
    assert convert(tmp_path / "cs", tmp_path / "a") == 0
    assert convert(tmp_path / "cs", tmp_path / "b", "--class-map", "cityscapes19") == 0
    assert shard(tmp_path / "a") == shard(tmp_path / "b")
    manifest = json.load(open(tmp_path / "b" / "manifest.json"))
    assert manifest["options"]["class_map"]["name"] == "cityscapes19"

    coarse = tmp_path / "coarse.yaml"
    coarse.write_text(
        "name: coarse\nignore_label: 255\nunmapped: ignore\nclasses:\n"
        "  - {id: 0, name: flat, thing: false, sources: {cityscapes: [road, sidewalk]}}\n"
        "  - {id: 1, name: human, thing: true, sources: {cityscapes: [person, rider]}}\n"
    )
    assert convert(tmp_path / "cs", tmp_path / "c", "--class-map", str(coarse)) == 0
    default = [decode_deeplab2(r).label for r in read_file_records(
        os.path.join(tmp_path / "a", "val-00000-of-00001.tfrecord"))]
    mapped = [decode_deeplab2(r).label for r in read_file_records(
        os.path.join(tmp_path / "c", "val-00000-of-00001.tfrecord"))]
    lut = np.full(256, 255)
    lut[[0, 1]] = 0
    lut[[11, 12]] = 1
    for a, b in zip(default, mapped, strict=True):
        listed = a != 255000
        np.testing.assert_array_equal((b // 1000)[listed], lut[a // 1000][listed])
        humans = b // 1000 == 1
        ids = np.unique(b[humans] % 1000)
        assert ids.tolist() == list(range(1, len(ids) + 1))  # renumbered within "human"
