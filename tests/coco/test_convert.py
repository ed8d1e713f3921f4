"""panseg convert coco end to end: layout, fields, validation, resume."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from cocotree import seg, write_coco
from panseg.cli.main import main
from panseg.convert import ConversionFailed, convert
from panseg.datasets.coco import CocoPanopticSource, coco_panoptic_info
from panseg.records.deeplab2 import PanopticDeepLab2Encoder, decode_deeplab2
from panseg.records.example import decode_example
from panseg.records.manifest import load_manifest
from panseg.records.tfrecord import read_file_records
from panseg.records.writer import ShardConflict, shard_layout

PERSON, CAR, SKY = 1, 3, 187


def run_convert(root, out, splits=("val",), num_shards=2, crowd="ignore", **kw):
    source = CocoPanopticSource(str(root))
    info = coco_panoptic_info()
    return convert(
        source=source, encoder=PanopticDeepLab2Encoder(info, crowd=crowd), out_dir=str(out),
        splits=list(splits), num_shards=num_shards, dataset=info, schema="deeplab2",
        options={"task": "panoptic", "crowd": crowd}, progress=False, log=lambda m: None, **kw,
    )


def records(out, split, num_shards):
    result = []
    for k in range(num_shards):
        result.extend(read_file_records(os.path.join(out, f"{split}-{k:05d}-of-{num_shards:05d}.tfrecord")))
    return result


def simple_images(n):
    images = []
    for i in range(n):
        ids = np.array([[0, 10, 10], [20, 20, 21]], dtype=np.uint32)
        images.append({"stem": f"{i:012d}", "ids": ids, "segments": [
            seg(21, PERSON, 1), seg(10, PERSON, 2), seg(20, SKY, 2)]})
    return images


def test_layout_rule_matches_deeplab2():
    assert [len(s) for s in shard_layout(23, 10)] == [3] * 7 + [2, 0, 0]
    assert [len(s) for s in shard_layout(2, 4)] == [1, 1, 0, 0]
    assert [len(s) for s in shard_layout(5000, 1000)] == [5] * 1000
    layout = shard_layout(118287, 1000)
    assert len(layout[993]) == 119 and len(layout[994]) == 1 and layout[999] == []
    assert [i for s in layout for i in s] == list(range(118287))


@pytest.mark.parametrize(("n", "shards"), [(2, 5), (7, 3)])
def test_every_shard_file_exists_and_order_is_sorted(coco_tree, tmp_path, n, shards):
    write_coco(coco_tree, "val", simple_images(n)[::-1])
    report = run_convert(coco_tree, tmp_path / "out", num_shards=shards)
    files = sorted(os.listdir(tmp_path / "out"))
    assert [f for f in files if f.endswith(".tfrecord")] == [
        f"val-{k:05d}-of-{shards:05d}.tfrecord" for k in range(shards)]
    names = [decode_example(r)["image/filename"].one() for r in records(tmp_path / "out", "val", shards)]
    assert names == [f"{i:012d}".encode() for i in range(n)]
    manifest = load_manifest(str(tmp_path / "out"))
    assert manifest.splits["val"].num_examples == n
    assert [s.num_examples for s in manifest.splits["val"].shards] == [len(s) for s in shard_layout(n, shards)]
    assert report.splits["val"].written_shards == shards


def test_fields_and_labels(coco_tree, tmp_path):
    ids = np.array([[0, 7, 10, 10], [11, 11, 12, 13], [20, 20, 20, 20]], dtype=np.uint32)
    segments = [seg(11, PERSON, 2), seg(10, PERSON, 2), seg(12, CAR, 1, crowd=1),
                seg(13, CAR, 1), seg(20, SKY, 4)]
    write_coco(coco_tree, "val", [{"stem": "000000000001", "ids": ids, "segments": segments}])
    for crowd, crowd_value in (("ignore", 0), ("keep", 3 * 256)):
        out = tmp_path / crowd
        run_convert(coco_tree, out, num_shards=1, crowd=crowd)
        (data,) = records(out, "val", 1)
        feats = decode_example(data)
        jpeg = open(coco_tree / "val2017" / "000000000001.jpg", "rb").read()
        assert feats["image/encoded"].one() == jpeg  # RGB JPEG bytes pass through unchanged
        assert feats["image/format"].one() == b"jpeg"
        assert feats["image/filename"].one() == b"000000000001"
        assert (feats["image/height"].one(), feats["image/width"].one()) == (3, 4)
        assert feats["image/channels"].one() == 3
        assert feats["image/segmentation/class/format"].one() == b"raw"
        label = np.frombuffer(feats["image/segmentation/class/encoded"].one(), "<i4").reshape(3, 4)
        sky = 120  # sky-other-merged (187) is the 40th stuff class: 80 + 40
        np.testing.assert_array_equal(label, [[0, 0, 258, 258], [257, 257, crowd_value, 769],
                                              [sky * 256] * 4])
        assert set(feats) == {"image/encoded", "image/format", "image/filename", "image/height",
                              "image/width", "image/channels", "image/segmentation/class/encoded",
                              "image/segmentation/class/format"}


def test_test_split_has_no_label_keys(coco_tree, tmp_path):
    os.makedirs(coco_tree / "test2017")
    Image.new("RGB", (5, 4)).save(coco_tree / "test2017" / "000000000009.jpg")
    run_convert(coco_tree, tmp_path / "out", splits=("test",), num_shards=1)
    (data,) = records(tmp_path / "out", "test", 1)
    assert sorted(decode_example(data)) == sorted(
        ["image/encoded", "image/filename", "image/format", "image/height", "image/width",
         "image/channels"])


def test_grayscale_jpeg_is_reencoded_like_deeplab2(coco_tree, tmp_path):
    images = simple_images(1)
    images[0]["mode"] = "L"
    write_coco(coco_tree, "val", images)
    run_convert(coco_tree, tmp_path / "out", num_shards=1)
    (data,) = records(tmp_path / "out", "val", 1)
    stored = decode_example(data)["image/encoded"].one()
    expected = io.BytesIO()
    Image.open(coco_tree / "val2017" / "000000000000.jpg").convert("RGB").save(expected, "JPEG")
    assert stored == expected.getvalue()  # PIL defaults: quality 75, 4:2:0
    assert Image.open(io.BytesIO(stored)).mode == "RGB"


def test_exif_rotation_keeps_stored_size_and_warns(coco_tree, tmp_path):
    images = simple_images(1)
    exif = Image.Exif()
    exif[0x0112] = 6
    images[0]["exif"] = exif.tobytes()
    write_coco(coco_tree, "val", images)
    messages = []
    source = CocoPanopticSource(str(coco_tree))
    info = coco_panoptic_info()
    report = convert(source=source, encoder=PanopticDeepLab2Encoder(info), out_dir=str(tmp_path / "o"),
                     splits=["val"], num_shards=1, dataset=info, schema="deeplab2", options={},
                     progress=False, log=messages.append)
    (data,) = records(tmp_path / "o", "val", 1)
    decoded = decode_deeplab2(data)
    assert decoded.image.shape[:2] == (2, 3) and decoded.label.shape == (2, 3)
    assert any("EXIF orientation 6" in w for w in report.splits["val"].warnings)
    assert any("EXIF orientation 6" in m for m in messages)


def test_every_problem_is_reported_and_nothing_written(coco_tree, tmp_path):
    ok = np.array([[1, 1]], dtype=np.uint32)
    images = [
        {"stem": "a_no_annotation", "ids": ok, "segments": None},
        {"stem": "b_no_image", "ids": ok, "segments": [seg(1, PERSON, 2)], "no_image": True},
        {"stem": "c_area", "ids": ok, "segments": [seg(1, PERSON, 5)]},
        {"stem": "d_unknown", "ids": ok, "segments": [seg(1, 12, 2)]},
        {"stem": "e_crowd_stuff", "ids": ok, "segments": [seg(1, SKY, 2, crowd=1)]},
        {"stem": "f_duplicate", "ids": ok, "segments": [seg(1, PERSON, 2), seg(1, CAR, 2)]},
        {"stem": "g_rgba", "ids": ok, "segments": [seg(1, PERSON, 2)], "png_mode": "RGBA"},
        {"stem": "h_size", "ids": ok, "segments": [seg(1, PERSON, 2)], "image_size": (2, 2)},
        {"stem": "i_many", "ids": np.arange(1, 257, dtype=np.uint32).reshape(16, 16),
         "segments": [seg(i, PERSON, 1) for i in range(1, 257)]},
        {"stem": "j_fine", "ids": ok, "segments": [seg(1, PERSON, 2)]},
    ]
    write_coco(coco_tree, "val", images)
    with pytest.raises(ConversionFailed) as err:
        run_convert(coco_tree, tmp_path / "out")
    text = "\n".join(str(p) for p in err.value.problems)
    for expected in [
        "a_no_annotation.jpg: no annotation",
        "annotation has no image b_no_image.jpg",
        "c_area.png [segment 1]: area 5 in the JSON but 2 pixels",
        "d_unknown.png [segment 1]: unknown category_id 12",
        "e_crowd_stuff.png [segment 1]: crowd on stuff",
        "f_duplicate.png segment 1]: duplicate segment id",
        "g_rgba.png: panoptic PNG must be RGB, got mode RGBA",
        "h_size.png: label size 1x2 differs from image size 2x2",
        "256 instances of class 'person'",
    ]:
        assert expected in text, (expected, text)
    assert "j_fine" not in text
    assert not [f for f in os.listdir(tmp_path / "out") if f.endswith(".tfrecord")]


def test_skip_invalid_writes_the_rest_and_lists_skipped(coco_tree, tmp_path):
    images = simple_images(3)
    images[1]["segments"] = [seg(21, PERSON, 9), seg(10, PERSON, 2), seg(20, SKY, 2)]
    write_coco(coco_tree, "val", images)
    report = run_convert(coco_tree, tmp_path / "out", num_shards=1, skip_invalid=True)
    names = [decode_example(r)["image/filename"].one() for r in records(tmp_path / "out", "val", 1)]
    assert names == [b"000000000000", b"000000000002"]
    assert [p.item for p in report.splits["val"].skipped_items] == ["000000000001"]
    manifest = load_manifest(str(tmp_path / "out"))
    assert manifest.splits["val"].skipped[0]["item"] == "000000000001"


class FailingSource(CocoPanopticSource):
    """Simulates a run killed after ``limit`` loaded items."""

    def __init__(self, root, limit):
        super().__init__(root)
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "loads", [0])

    def load(self, item):
        self.loads[0] += 1
        if self.loads[0] > self.limit:
            raise KeyboardInterrupt("killed")
        return super().load(item)


def test_resume_after_a_killed_run(coco_tree, tmp_path):
    write_coco(coco_tree, "val", simple_images(6))
    info = coco_panoptic_info()
    kwargs = dict(encoder=PanopticDeepLab2Encoder(info), splits=["val"], num_shards=3,
                  dataset=info, schema="deeplab2", options={"crowd": "ignore"}, progress=False,
                  log=lambda m: None)
    out = tmp_path / "out"
    # Shard 0 (2 items) is written, then the run dies in the middle of shard 1.
    with pytest.raises(KeyboardInterrupt):
        convert(source=FailingSource(str(coco_tree), 3), out_dir=str(out), **kwargs)
    assert not [f for f in os.listdir(out) if f.endswith(".tfrecord")]  # nothing published
    assert sorted(os.listdir(out / ".panseg" / "pending")) == [
        "val-00000-of-00003.tfrecord", "val-00000-of-00003.tfrecord.json"]  # no temporary left
    mtime = os.path.getmtime(out / ".panseg" / "pending" / "val-00000-of-00003.tfrecord")
    report = convert(source=CocoPanopticSource(str(coco_tree)), out_dir=str(out), **kwargs)
    assert report.splits["val"].skipped_shards == 1 and report.splits["val"].written_shards == 2
    assert os.path.getmtime(out / "val-00000-of-00003.tfrecord") == mtime  # not rewritten
    fresh = tmp_path / "fresh"
    convert(source=CocoPanopticSource(str(coco_tree)), out_dir=str(fresh), **kwargs)
    for k in range(3):
        name = f"val-{k:05d}-of-00003.tfrecord"
        assert (out / name).read_bytes() == (fresh / name).read_bytes()
    assert json.loads((out / "manifest.json").read_text()) == json.loads((fresh / "manifest.json").read_text())
    # A third run has nothing to do.
    report = convert(source=CocoPanopticSource(str(coco_tree)), out_dir=str(out), **kwargs)
    assert report.splits["val"].written_shards == 0


def test_pixel_problem_publishes_nothing_and_rerun_redoes_only_that_shard(coco_tree, tmp_path):
    images = simple_images(4)
    bad_png = coco_tree / "annotations" / "panoptic_val2017" / "000000000003.png"
    write_coco(coco_tree, "val", images)
    good = bad_png.read_bytes()
    Image.new("RGB", (3, 2), (99, 0, 0)).save(bad_png)  # id 99 everywhere: areas mismatch
    with pytest.raises(ConversionFailed) as err:
        run_convert(coco_tree, tmp_path / "out", num_shards=2)
    text = "\n".join(str(p) for p in err.value.problems)
    assert "000000000003.png [segment 21]: area 1 in the JSON but 0 pixels" in text
    assert not [f for f in os.listdir(tmp_path / "out") if f.endswith(".tfrecord")]
    assert not (tmp_path / "out" / "manifest.json").exists()
    bad_png.write_bytes(good)
    report = run_convert(coco_tree, tmp_path / "out", num_shards=2)
    assert report.splits["val"].written_shards == 1 and report.splits["val"].skipped_shards == 1


def test_rerun_with_other_options_is_refused(coco_tree, tmp_path):
    write_coco(coco_tree, "val", simple_images(2))
    run_convert(coco_tree, tmp_path / "out", crowd="ignore")
    with pytest.raises(ShardConflict, match="other options"):
        run_convert(coco_tree, tmp_path / "out", crowd="keep")


def test_parallel_workers_give_identical_bytes(coco_tree, tmp_path):
    write_coco(coco_tree, "val", simple_images(5))
    run_convert(coco_tree, tmp_path / "one", num_shards=2, workers=1)
    run_convert(coco_tree, tmp_path / "two", num_shards=2, workers=2)
    for k in range(2):
        name = f"val-{k:05d}-of-00002.tfrecord"
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_cli_synth_convert_inspect(tmp_path, capsys):
    root, out = str(tmp_path / "coco"), str(tmp_path / "rec")
    assert main(["synth", "coco", "--out", root, "--images", "4"]) == 0
    assert main(["convert", "coco", "--root", root, "--out", out, "--num-shards", "2",
                 "--workers", "1", "--no-progress"]) == 0
    assert main(["inspect", os.path.join(out, "val-*.tfrecord"), "--show", "1",
                 "--out", str(tmp_path / "ov")]) == 0
    text = capsys.readouterr().out
    assert "total: 2 examples in 2 shards" in text and "overlay:" in text
    assert len(os.listdir(tmp_path / "ov")) == 1


def test_cli_reports_problems_with_exit_1(coco_tree, tmp_path, capsys):
    images = simple_images(1)
    images[0]["segments"][0]["area"] = 99
    write_coco(coco_tree, "val", images)
    code = main(["convert", "coco", "--root", str(coco_tree), "--out", str(tmp_path / "o"),
                 "--splits", "val", "--num-shards", "1", "--workers", "1", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "area 99 in the JSON but 1 pixels" in err and "nothing was written" in err


def test_sigkill_mid_run_then_rerun_matches_a_clean_run(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    root, out, fresh = tmp_path / "coco", tmp_path / "out", tmp_path / "fresh"
    assert main(["synth", "coco", "--out", str(root), "--images", "40", "--height", "240",
                 "--width", "320"]) == 0
    cmd = [sys.executable, "-m", "panseg", "convert", "coco", "--root", str(root), "--splits",
           "train", "--num-shards", "20", "--workers", "1", "--no-progress"]
    proc = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pending = out / ".panseg" / "pending"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if pending.exists() and any(p.suffix == ".json" for p in pending.iterdir()):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert subprocess.run([*cmd, "--out", str(out)], capture_output=True).returncode == 0
    assert subprocess.run([*cmd, "--out", str(fresh)], capture_output=True).returncode == 0
    names = sorted(p.name for p in fresh.iterdir() if p.suffix == ".tfrecord")
    assert len(names) == 20
    for name in names:
        assert (out / name).read_bytes() == (fresh / name).read_bytes()
    assert not list(out.glob(".*.tmp-*")) and not list(pending.glob(".*tmp*"))


def test_keep_freed_memory_stops_page_faults_per_image(tmp_path):
    import subprocess
    import sys

    from panseg.datasets.synthetic import synth_coco

    synth_coco(str(tmp_path / "coco"), images=24, height=480, width=640)
    probe = (
        "import resource, sys\n"
        "from panseg.convert import convert, keep_freed_memory\n"
        "from panseg.datasets.coco import CocoPanopticSource, coco_panoptic_info\n"
        "from panseg.records.deeplab2 import PanopticDeepLab2Encoder\n"
        "if sys.argv[1] == 'tuned': assert keep_freed_memory()\n"
        "info = coco_panoptic_info()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "convert(source=CocoPanopticSource(sys.argv[2]), encoder=PanopticDeepLab2Encoder(info),\n"
        "        out_dir=sys.argv[3], splits=['train'], num_shards=2, dataset=info,\n"
        "        schema='deeplab2', options={}, progress=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {
        mode: int(subprocess.run(
            [sys.executable, "-c", probe, mode, str(tmp_path / "coco"), str(tmp_path / mode)],
            capture_output=True, text=True, check=True).stdout)
        for mode in ("default", "tuned")
    }
    # glibc's defaults fault every large buffer back in, image after image.
    assert faults["tuned"] * 3 < faults["default"], faults
