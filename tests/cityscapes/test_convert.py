"""panseg convert cityscapes: hand-derived labels, raw == prepared (cityscapesScripts as the
oracle), record fields, layout, validation, resume, CLI."""

import contextlib
import io
import os

import numpy as np
import pytest
from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic
from PIL import Image

from cityscapes.cstree import labels, read_records, run, write_raw
from panseg.cli.main import main
from panseg.convert import ConversionFailed
from panseg.records.deeplab2 import decode_deeplab2
from panseg.records.example import decode_example
from panseg.records.tfrecord import read_file_records

V = 255000
HAND_IDS = np.array(
    [
        [23, 23, 23, 23, 23, 23],
        [26000, 26000, 26002, 26002, 24, 24],
        [7, 7, 9, 9, 0, 1],
        [29000, 25001, 25001, 33000, 26, 26],
    ],
    dtype=np.uint16,
)
# sky 10; cars 26000 and 26002 become 13001 and 13002 (the gap is renumbered); person group
# 24 and car group 26 are crowd; road is 0; parking, void and caravan are void.
HAND_IGNORE = [
    [10000] * 6,
    [13001, 13001, 13002, 13002, V, V],
    [0, 0, V, V, V, V],
    [V, 12001, 12001, 18001, V, V],
]
HAND_KEEP = [row[:] for row in HAND_IGNORE]
HAND_KEEP[1][4:] = [11000, 11000]
HAND_KEEP[3][4:] = [13000, 13000]


@pytest.fixture
def hand_root(tmp_path):
    root = tmp_path / "cs"
    write_raw(root, "train", "aachen", "aachen_000000_000019", HAND_IDS)
    return root


def cs_prepare(root, splits=("train",)):
    with contextlib.redirect_stdout(io.StringIO()):
        convert2panoptic(str(root / "gtFine"), None, True, list(splits))


@pytest.mark.parametrize(("crowd", "expected"), [("ignore", HAND_IGNORE), ("keep", HAND_KEEP)])
def test_hand_derived_panoptic_label(hand_root, tmp_path, crowd, expected):
    run(hand_root, tmp_path / "raw", crowd=crowd)
    assert labels(tmp_path / "raw", "train")["aachen_000000_000019"].tolist() == expected
    cs_prepare(hand_root)
    run(hand_root, tmp_path / "prep", mode="prepared", crowd=crowd)
    assert read_records(tmp_path / "raw", "train") == read_records(tmp_path / "prep", "train")


def test_record_fields_are_deeplab2s(hand_root, tmp_path):
    write_raw(hand_root, "test", "berlin", "berlin_000000_000019", np.zeros((4, 6), np.uint16))
    run(hand_root, tmp_path / "out", splits=("train", "test"))
    (record,) = read_records(tmp_path / "out", "train")
    feats = decode_example(record)
    image_path = hand_root / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    assert feats["image/encoded"].one() == image_path.read_bytes()
    assert feats["image/filename"].one() == b"aachen_000000_000019"
    assert feats["image/format"].one() == b"png"
    assert (feats["image/height"].one(), feats["image/width"].one()) == (4, 6)
    assert feats["image/channels"].one() == 3
    assert feats["image/segmentation/class/format"].one() == b"raw"
    assert len(feats["image/segmentation/class/encoded"].one()) == 4 * 6 * 4
    (test_record,) = read_records(tmp_path / "out", "test")
    test_feats = decode_example(test_record)
    assert "image/segmentation/class/encoded" not in test_feats
    assert "image/segmentation/class/format" not in test_feats
    assert test_feats["image/filename"].one() == b"berlin_000000_000019"


def test_synthetic_raw_equals_prepared_by_cityscapesscripts(synth_root, cs_prepared_root,
                                                             tmp_path):
    splits = ("train", "val", "test")
    for crowd in ("ignore", "keep"):
        run(synth_root, tmp_path / f"raw-{crowd}", splits=splits, crowd=crowd, workers=2)
        run(cs_prepared_root, tmp_path / f"prep-{crowd}", mode="prepared", splits=splits,
            crowd=crowd)
        for split in splits:
            raw = read_records(tmp_path / f"raw-{crowd}", split)
            assert len(raw) == 4
            assert raw == read_records(tmp_path / f"prep-{crowd}", split)
    val = labels(tmp_path / "raw-ignore", "val")
    assert list(val) == sorted(val)  # frankfurt before lindau, sorted paths
    values = np.unique(np.concatenate([v.ravel() for v in val.values()]))
    assert 0 in values and V in values and any(11001 <= v < 19000 for v in values)
    assert all(v // 1000 in set(range(19)) | {255} for v in values)


def test_semantic_raw_equals_prepared_and_train_id_files(synth_root, cs_prepared_root,
                                                         tmp_path):
    run(synth_root, tmp_path / "raw", task="semantic", splits=("train", "val", "test"))
    run(cs_prepared_root, tmp_path / "prep", task="semantic", mode="prepared",
        splits=("train", "val", "test"))
    for split in ("train", "val", "test"):
        assert read_records(tmp_path / "raw", split) == read_records(tmp_path / "prep", split)
    for record in read_records(tmp_path / "raw", "val"):
        feats = decode_example(record)
        stem = feats["image/filename"].one().decode()
        city = stem.split("_")[0]
        train_ids = cs_prepared_root / "gtFine/val" / city / f"{stem}_gtFine_labelTrainIds.png"
        assert feats["image/segmentation/class/format"].one() == b"png"
        assert feats["image/segmentation/class/encoded"].one() == train_ids.read_bytes()


def test_shards_are_deeplab2s_contiguous_chunks(tmp_path):
    root = tmp_path / "cs"
    stems = [(city, f"{city}_{i:06d}_000019") for city in ("b-x", "b", "a") for i in range(8)]
    for city, stem in stems[:23]:
        write_raw(root, "val", city, stem, np.full((2, 3), 7, np.uint16))
    run(root, tmp_path / "out", splits=("val",))
    per_shard = [
        len(read_file_records(str(tmp_path / "out" / f"val-{k:05d}-of-00010.tfrecord")))
        for k in range(10)
    ]
    assert per_shard == [3] * 7 + [2, 0, 0]
    names = [decode_deeplab2(r).filename for r in read_records(tmp_path / "out", "val")]
    # sorted by full path: "b-x/" sorts before "b/" ('-' < '/')
    expected = sorted(f"{root}/leftImg8bit/val/{c}/{s}_leftImg8bit.png" for c, s in stems[:23])
    assert names == [os.path.basename(p)[: -len("_leftImg8bit.png")] for p in expected]
    assert names[:2] == ["a_000000_000019", "a_000001_000019"]
    assert names.index("b-x_000000_000019") < names.index("b_000000_000019")


def test_edge_cases(tmp_path):
    root = tmp_path / "cs"
    many = (26000 + np.arange(300)).reshape(15, 20).astype(np.uint16)  # 300 cars
    write_raw(root, "train", "c", "c_000000_000001", many)
    write_raw(root, "train", "c", "c_000000_000002", np.zeros((3, 5), np.uint16))  # all void
    write_raw(root, "train", "c", "c_000000_000003", np.full((1, 1), 26, np.uint16))  # crowd
    write_raw(root, "train", "c", "c_000000_000004", np.full((7, 3), 21, np.uint16))  # stuff
    write_raw(root, "train", "c", "c_000000_000005", np.full((5, 4), 21, np.uint16),
              image_mode="RGBA")
    run(root, tmp_path / "out")
    got = labels(tmp_path / "out", "train")
    assert got["c_000000_000001"].tolist() == (13000 + 1 + np.arange(300)).reshape(15, 20).tolist()
    assert (got["c_000000_000002"] == V).all() and got["c_000000_000002"].shape == (3, 5)
    assert got["c_000000_000003"].tolist() == [[V]]
    assert (got["c_000000_000004"] == 8000).all()
    records = {decode_deeplab2(r).filename: r for r in read_records(tmp_path / "out", "train")}
    rgba = decode_example(records["c_000000_000005"])["image/encoded"].one()
    assert Image.open(io.BytesIO(rgba)).mode == "RGB"  # re-encoded like DeepLab2


def test_problems_are_all_reported_and_nothing_is_written(tmp_path):
    root = tmp_path / "cs"
    write_raw(root, "train", "c", "c_000000_000001", np.full((4, 4), 7, np.uint16))
    write_raw(root, "train", "c", "c_000000_000002", np.full((4, 4), 7, np.uint16),
              image_size=(4, 5))
    write_raw(root, "train", "c", "c_000000_000003", np.array([[7, 40001]], np.uint16),
              label_ids=np.array([[7, 40]]))
    write_raw(root, "train", "c", "c_000000_000004",
              (26000 + np.arange(1024) % 1000).reshape(32, 32).astype(np.uint16))
    write_raw(root, "train", "c", "c_000000_000005", np.full((4, 4), 7, np.uint16))
    os.remove(root / "gtFine/train/c/c_000000_000005_gtFine_instanceIds.png")
    with pytest.raises(ConversionFailed) as failed:
        run(root, tmp_path / "out")
    text = "\n".join(str(p) for p in failed.value.problems)
    assert "c_000000_000002_gtFine_instanceIds.png: label size 4x4 differs from image size 4x5" in text
    assert "c_000000_000003_gtFine_instanceIds.png [segment 40001]: unknown category_id 40" in text
    assert "1000 instances of class 'car'" in text and "at most 999" in text
    assert "c_000000_000005_gtFine_instanceIds.png: missing label file" in text
    assert len(failed.value.problems) == 4
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not (tmp_path / "out" / "train-00000-of-00010.tfrecord").exists()

    report = run(root, tmp_path / "skip", skip_invalid=True)
    assert len(report.splits["train"].skipped_items) == 4
    assert list(labels(tmp_path / "skip", "train")) == ["c_000000_000001"]


def test_semantic_problems(tmp_path):
    root = tmp_path / "cs"
    write_raw(root, "train", "c", "c_000000_000001", np.full((4, 4), 7, np.uint16),
              label_ids=np.full((4, 4), 34))
    write_raw(root, "train", "c", "c_000000_000002", np.full((4, 4), 7, np.uint16))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(
        root / "gtFine/train/c/c_000000_000002_gtFine_labelIds.png")
    with pytest.raises(ConversionFailed) as failed:
        run(root, tmp_path / "out", task="semantic")
    text = "\n".join(str(p) for p in failed.value.problems)
    assert "c_000000_000001_gtFine_labelIds.png: unknown label id(s) [34]" in text
    assert "must be an 8-bit grayscale PNG, got PNG mode RGB" in text


def test_rerun_skips_complete_shards(hand_root, tmp_path):
    first = run(hand_root, tmp_path / "out")
    assert first.splits["train"].written_shards == 10
    again = run(hand_root, tmp_path / "out")
    assert again.splits["train"].written_shards == 0
    assert again.splits["train"].skipped_shards == 10


def test_cli_synth_and_convert(tmp_path, capsys):
    root = tmp_path / "cs"
    assert main(["synth", "cityscapes", "--out", str(root), "--images-per-city", "1"]) == 0
    assert main(["convert", "cityscapes", "--root", str(root), "--out", str(tmp_path / "r"),
                 "--splits", "val", "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "val: 2 images; 10 shards written" in out
    assert main(["convert", "cityscapes", "--root", str(root), "--out", str(tmp_path / "s"),
                 "--splits", "val", "--workers", "1", "--no-progress", "--task", "semantic",
                 "--source", "prepared"]) == 0
    assert len(read_records(tmp_path / "s", "val")) == 2
    assert main(["convert", "cityscapes", "--root", str(root), "--out", str(tmp_path / "p"),
                 "--splits", "val", "--workers", "1", "--no-progress", "--source",
                 "prepared"]) == 1  # no panoptic JSON: a listed problem
    assert "panoptic JSON not found" in capsys.readouterr().err
