"""The instanceIds rule, the synthetic tree and ``panseg prepare cityscapes`` against
cityscapesScripts (the oracle): same pixels, same JSON, same bytes."""

import contextlib
import glob
import io
import json
import os

import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image

from panseg.cli.main import main
from panseg.datasets.base import Segment
from panseg.datasets.cityscapes import instance_values, panoptic_segments
from panseg.prepare_cityscapes import panoptic_annotation, prepare_cityscapes, train_id_label


def test_segments_follow_create_panoptic_imgs_by_hand():
    # void 0 and 1, road 7, parking 9 (ignored), person group 24, cars 26000 and 26002,
    # caravan 29000 (ignored), sky 23, a stuff value above 1000 (11001, building).
    ids = np.array([[0, 1, 7, 9, 24], [26002, 26000, 29000, 23, 11001]], dtype=np.uint16)
    values, counts = instance_values(ids)
    assert values.tolist() == [0, 1, 7, 9, 23, 24, 11001, 26000, 26002, 29000]
    assert counts.tolist() == [1] * 10
    assert panoptic_segments(values) == (
        Segment(7, 7, False), Segment(23, 23, False), Segment(24, 24, True),
        Segment(11001, 11, False), Segment(26000, 26, False), Segment(26002, 26, False),
    )
    # an unknown label id is kept so that the encoder reports it
    assert panoptic_segments(np.array([40, 40001])) == (
        Segment(40, 40, False), Segment(40001, 40, False)
    )


def test_instance_values_general_dtype_matches_counting_path():
    rng = np.random.default_rng(0)
    ids = rng.choice([7, 26000, 26001, 33000, 24], size=(9, 11)).astype(np.uint16)
    a = instance_values(ids)
    b = instance_values(ids.astype(np.int32))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_synthetic_tree_renders_like_cityscapesscripts(synth_root):
    files = sorted(glob.glob(str(synth_root / "gtFine" / "*" / "*" / "*_polygons.json")))
    assert len(files) == 12
    for path in files:
        annotation = Annotation()
        annotation.fromJsonFile(path)
        base = path[: -len("polygons.json")]
        for suffix, image in (
            ("labelIds.png", createLabelImage(annotation, "ids")),
            ("labelTrainIds.png", createLabelImage(annotation, "trainIds")),
            ("instanceIds.png", createInstanceImage(annotation, "ids")),
        ):
            ours = np.asarray(Image.open(base + suffix)).astype(np.int64)
            assert np.array_equal(ours, np.asarray(image).astype(np.int64)), base + suffix


def test_train_ids_equal_cs_create_train_id_label_imgs(cs_prepared_root, synth_root, tmp_path):
    prepare_cityscapes(str(synth_root), out=str(tmp_path), kinds=(), progress=False)
    theirs = sorted(glob.glob(str(cs_prepared_root / "gtFine" / "*" / "*" / "*_labelTrainIds.png")))
    assert len(theirs) == 12
    for path in theirs:
        ours = str(tmp_path / os.path.relpath(path, cs_prepared_root))
        assert np.array_equal(np.asarray(Image.open(ours)), np.asarray(Image.open(path)))
        with open(ours, "rb") as a, open(path, "rb") as b:
            assert a.read() == b.read()  # same Pillow: same bytes


def test_train_id_label_rejects_unknown_ids():
    assert train_id_label(np.array([[7, 26, 0]], np.uint8)).tolist() == [[0, 13, 255]]
    with pytest.raises(ValueError, match=r"x.png: unknown Cityscapes label id\(s\) \[34, 200\]"):
        train_id_label(np.array([[7, 34, 200]], np.uint8), "x.png")


def test_panoptic_files_equal_cs_create_panoptic_imgs(cs_prepared_root, synth_root, tmp_path):
    counts = prepare_cityscapes(str(synth_root), out=str(tmp_path), kinds=("train", "label"),
                                progress=False)
    assert counts == {"train": 4, "val": 4, "test": 4}
    theirs_dir = tmp_path / "theirs"
    theirs_dir.mkdir()
    with contextlib.redirect_stdout(io.StringIO()):
        convert2panoptic(str(synth_root / "gtFine"), str(theirs_dir), False, ["val"])
    pairs = [
        (cs_prepared_root / "gtFine", f"cityscapes_panoptic_{s}_trainId")
        for s in ("train", "val", "test")
    ] + [(theirs_dir, "cityscapes_panoptic_val")]
    for their_dir, base in pairs:
        ours_json = tmp_path / "gtFine" / f"{base}.json"
        assert ours_json.read_bytes() == (their_dir / f"{base}.json").read_bytes(), base
        pngs = sorted(os.listdir(their_dir / base))
        assert pngs == sorted(os.listdir(tmp_path / "gtFine" / base)) and len(pngs) == 4
        for name in pngs:
            assert (tmp_path / "gtFine" / base / name).read_bytes() == (
                their_dir / base / name).read_bytes()
    doc = json.loads((tmp_path / "gtFine" / "cityscapes_panoptic_val.json").read_text())
    assert {c["id"] for c in doc["categories"]} == {7, 8} | set(range(11, 14)) | {17} | set(
        range(19, 29)) | {31, 32, 33}


def test_panoptic_annotation_by_hand():
    ids = np.array([[7, 7, 26000], [24, 0, 26000], [26001, 26001, 26001]], dtype=np.uint16)
    rgb, info = panoptic_annotation(ids, use_train_id=True)
    assert info == [
        {"id": 7, "category_id": 0, "area": 2, "bbox": [0, 0, 2, 1], "iscrowd": 0},
        {"id": 24, "category_id": 11, "area": 1, "bbox": [0, 1, 1, 1], "iscrowd": 1},
        {"id": 26000, "category_id": 13, "area": 2, "bbox": [2, 0, 1, 2], "iscrowd": 0},
        {"id": 26001, "category_id": 13, "area": 3, "bbox": [0, 2, 3, 1], "iscrowd": 0},
    ]
    assert rgb[0, 2].tolist() == [26000 % 256, 26000 // 256, 0]
    assert rgb[1, 1].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="unknown Cityscapes label id"):
        panoptic_annotation(np.array([[35000]], np.uint16), True)


def test_prepare_cli(synth_root, tmp_path, capsys):
    assert main(["prepare", "cityscapes", "--root", str(synth_root), "--out", str(tmp_path),
                 "--splits", "val", "--workers", "1", "--no-progress"]) == 0
    assert "val 4 images" in capsys.readouterr().out
    assert (tmp_path / "gtFine" / "cityscapes_panoptic_val_trainId.json").is_file()
    assert main(["prepare", "cityscapes", "--root", str(tmp_path / "nothing")]) == 2
