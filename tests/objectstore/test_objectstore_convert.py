"""End to end on a local S3 server: COCO on s3:// -> records on s3:// -> the training reader."""

from __future__ import annotations

import json

from panseg import fsio
from panseg.cli.main import main


def test_convert_s3_to_s3_then_read(tmp_path, bucket, s3_options, upload_tree, capsys):
    from panseg.data.records_dataset import PanopticRecordDataset

    coco = str(tmp_path / "coco")
    assert main(["synth", "coco", "--out", coco, "--images", "4", "--height", "48",
                 "--width", "64"]) == 0
    upload_tree(coco, f"{bucket}/coco")
    local_out = str(tmp_path / "records")
    common = ["--splits", "train,val", "--num-shards", "2", "--workers", "1", "--no-progress"]
    assert main(["convert", "coco", "--root", coco, "--out", local_out, *common]) == 0

    fsio.configure(None)  # the CLI options alone must reach the object store
    remote_out = f"{bucket}/records"
    argv = ["convert", "coco", "--root", f"{bucket}/coco", "--out", remote_out, *common]
    assert main(argv + s3_options) == 0
    # Same bytes as the local conversion, shard for shard, and an equal manifest.
    local_manifest = json.loads((tmp_path / "records" / "manifest.json").read_text())
    remote_manifest = json.loads(fsio.read_bytes(f"{remote_out}/manifest.json"))
    assert remote_manifest["splits"] == local_manifest["splits"]
    for split in local_manifest["splits"].values():
        for shard in split["shards"]:
            remote = fsio.read_bytes(f"{remote_out}/{shard['file']}")
            assert remote == (tmp_path / "records" / shard["file"]).read_bytes()
    assert fsio.glob(f"{remote_out}/.panseg/pending/*") == []  # every shard was published

    # A rerun resumes: every shard is already complete.
    capsys.readouterr()
    assert main(argv + s3_options) == 0
    assert "0 shards written, 2 already complete" in capsys.readouterr().out

    # The Model Garden path (instances JSON + panoptic PNGs) reads the bucket as well.
    mg = ["--schema", "model-garden", "--splits", "val", "--num-shards", "1", "--workers", "1",
          "--no-progress"]
    assert main(["convert", "coco", "--root", coco, "--out", str(tmp_path / "mg"), *mg]) == 0
    assert main(["convert", "coco", "--root", f"{bucket}/coco", "--out", f"{bucket}/mg", *mg,
                 *s3_options]) == 0
    name = "val-00000-of-00001.tfrecord"
    assert fsio.read_bytes(f"{bucket}/mg/{name}") == (tmp_path / "mg" / name).read_bytes()

    options = fsio.storage_options("s3")
    for split in ("train", "val"):
        want = list(PanopticRecordDataset(local_out, split=split))
        got = list(PanopticRecordDataset(remote_out, split=split, storage_options=options))
        assert len(got) == len(want) > 0
        for a, b in zip(got, want, strict=True):
            assert a["filename"] == b["filename"]
            assert (a["image"] == b["image"]).all() and (a["panoptic"] == b["panoptic"]).all()


def test_worker_processes_get_the_options():
    from panseg.convert_workers import LocalEngine, _init_worker

    options = {"s3": {"client_kwargs": {"endpoint_url": "http://127.0.0.1:1"}}, "*": {"a": 1}}
    try:
        _init_worker(None, fsio.storage_options())  # nothing configured: nothing changes
        assert fsio.storage_options() == {}
        _init_worker(None, options)
        assert fsio.storage_options() == options
        assert fsio.storage_options("s3") == {"a": 1, **options["s3"]}
        assert fsio.storage_options("gs") == {"a": 1}
        with LocalEngine(2) as engine:  # the pool hands the parent's options to _init_worker
            executor = engine._ensure()
            assert executor._initializer is _init_worker
            assert executor._initargs[1] == options
    finally:
        fsio.configure(None)


def test_convert_cityscapes_from_s3(tmp_path, bucket, s3_options, upload_tree):
    root = str(tmp_path / "cs")
    assert main(["synth", "cityscapes", "--out", root, "--images-per-city", "1",
                 "--height", "32", "--width", "64"]) == 0
    upload_tree(root, f"{bucket}/cs")
    common = ["--splits", "train,val", "--num-shards", "1", "--workers", "1", "--no-progress"]
    local_out, remote_out = str(tmp_path / "records"), f"{bucket}/records"
    assert main(["convert", "cityscapes", "--root", root, "--out", local_out, *common]) == 0
    assert main(["convert", "cityscapes", "--root", f"{bucket}/cs", "--out", remote_out,
                 *common, *s3_options]) == 0
    for name in ("train-00000-of-00001.tfrecord", "val-00000-of-00001.tfrecord"):
        data = fsio.read_bytes(f"{remote_out}/{name}")
        assert data and data == (tmp_path / "records" / name).read_bytes()


def test_failed_run_resumes_from_pending_shards_on_s3(coco_records, bucket, s3_options,
                                                     upload_tree, capsys):
    coco = coco_records[0]
    upload_tree(coco, f"{bucket}/coco")
    images = sorted(n for n in fsio.listdir(f"{bucket}/coco/train2017") if n.endswith(".jpg"))
    broken = f"{bucket}/coco/train2017/{images[-1]}"
    good = fsio.read_bytes(broken)
    fsio.write_bytes_atomic(broken, b"not a jpeg")
    out = f"{bucket}/records"
    argv = ["convert", "coco", "--root", f"{bucket}/coco", "--out", out, "--splits", "train",
            "--num-shards", "2", "--workers", "1", "--no-progress", *s3_options]
    assert main(argv) == 1  # a problem: nothing published, the good shard stays pending
    assert images[-1][:-4] in capsys.readouterr().err
    assert not fsio.exists(f"{out}/manifest.json")
    assert fsio.glob(f"{out}/*.tfrecord") == []
    assert len(fsio.glob(f"{out}/.panseg/pending/*.tfrecord")) == 1

    fsio.write_bytes_atomic(broken, good)
    assert main(argv) == 0
    assert "1 shards written, 1 already complete" in capsys.readouterr().out
    assert fsio.glob(f"{out}/.panseg/pending/*.tfrecord") == []
    for name in ("train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"):
        assert fsio.exists(f"{out}/{name}")
