"""panseg inspect reads both schemas through the manifest and draws overlays."""

import os

from panseg.cli.main import main


def test_inspect_deeplab2_and_model_garden(tmp_path, capsys):
    root = str(tmp_path / "coco")
    assert main(["synth", "coco", "--out", root, "--images", "4"]) == 0
    for schema in ("deeplab2", "model-garden"):
        out = str(tmp_path / schema)
        extra = ["--include-masks", "--include-panoptic-masks"] if schema == "model-garden" else []
        assert main(["convert", "coco", "--root", root, "--out", out, "--schema", schema,
                     "--splits", "val", "--num-shards", "2", "--workers", "1",
                     "--no-progress", *extra]) == 0
        capsys.readouterr()
        overlays = str(tmp_path / f"ov-{schema}")
        assert main(["inspect", os.path.join(out, "val-*.tfrecord"), "--show", "2",
                     "--out", overlays]) == 0
        text = capsys.readouterr().out
        assert "total: 2 examples in 2 shards" in text
        assert ("png masks" in text) == (schema == "model-garden")
        assert "void" in text and "instances per image" in text
        assert sorted(os.listdir(overlays)) == ["000000000005_overlay.png",
                                                "000000000006_overlay.png"]


def test_inspect_reports_a_missing_pattern(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nothing-*.tfrecord")]) == 2
    assert "no shard matches" in capsys.readouterr().err


def test_inspect_semantic_cityscapes_records(tmp_path, capsys):
    root, out = str(tmp_path / "cs"), str(tmp_path / "rec")
    assert main(["synth", "cityscapes", "--out", root]) == 0
    assert main(["convert", "cityscapes", "--root", root, "--out", out, "--task", "semantic",
                 "--splits", "val", "--num-shards", "1", "--workers", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["inspect", os.path.join(out, "val-*.tfrecord")]) == 0
    text = capsys.readouterr().out
    assert "jpeg" not in text and "png/png" in text
    # Semantic trainIds are classes, not panoptic values: more than road shows up.
    classes = [line.split()[1] for line in text.splitlines() if line.startswith("   ")]
    assert "road" in classes and len(set(classes) - {"road", "void"}) >= 2
