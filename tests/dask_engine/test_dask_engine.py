"""The Dask engine: the same bytes as the local engine, resume, retries, failure reports, CLI.

One LocalCluster of two one-thread worker *processes* serves the module, so sources,
encoders and this module's failing source really cross process boundaries by pickling.
"""

import json
import os
import sys
from dataclasses import dataclass

import cloudpickle
import distributed  # dask[distributed] is in the `test` extra: these tests run in CI
import pytest

from motoserver import moto_server, s3_options
from panseg.cli.main import main
from panseg.convert import ConversionFailed, LocalEngine, TaskFailed, convert
from panseg.convert_dask import DaskEngine, local_cluster
from panseg.datasets.cityscapes import CityscapesSource
from panseg.datasets.cityscapes_labels import cityscapes_panoptic_info
from panseg.datasets.coco import CocoPanopticSource, coco_panoptic_info
from panseg.datasets.synthetic import synth_coco
from panseg.datasets.synthetic_cityscapes import synth_cityscapes
from panseg.records.deeplab2 import PanopticDeepLab2Encoder
from panseg.records.deeplab2_small_ids import SmallIdPanopticEncoder

# Workers import classes by module name; this test module is not importable there.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass(frozen=True)
class FlakySource(CocoPanopticSource):
    """Fails with an unexpected error on one image and notes every attempt in a file."""

    bad: str = ""
    attempts: str = ""

    def load(self, item):
        if self.item_key(item) == self.bad:
            with open(self.attempts, "a") as f:
                f.write(f"{os.getpid()}\n")
            raise ValueError("decoder crashed")
        return super().load(item)


@pytest.fixture(scope="module")
def client():
    with local_cluster(2) as cluster, distributed.Client(cluster) as c:
        assert list(c.nthreads().values()) == [1, 1]
        assert len(set(c.run(os.getpid).values()) | {os.getpid()}) == 3  # two processes
        yield c


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask") / "coco"
    synth_coco(str(root), images=12, height=48, width=64)
    return root


def tree(out) -> dict[str, bytes]:
    """Every file under ``out`` (shards, manifest, sidecars) by relative path."""
    files = {}
    for directory, _, names in os.walk(out):
        for name in names:
            path = os.path.join(directory, name)
            files[os.path.relpath(path, out)] = open(path, "rb").read()
    return files


def mtimes(out) -> dict[str, int]:
    return {
        os.path.join(d, n): os.stat(os.path.join(d, n)).st_mtime_ns
        for d, _, names in os.walk(out) for n in names
    }


def coco_convert(source, out, engine, splits=("train", "val"), num_shards=3, **kw):
    info = coco_panoptic_info()
    return convert(
        source=source, encoder=PanopticDeepLab2Encoder(info, crowd="ignore"), out_dir=str(out),
        splits=list(splits), num_shards=num_shards, dataset=info, schema="deeplab2",
        options={"task": "panoptic", "crowd": "ignore"}, engine=engine, progress=False,
        log=lambda m: None, **kw,
    )


def test_coco_byte_for_byte_then_resume_writes_nothing(client, coco_root, tmp_path):
    source = CocoPanopticSource(str(coco_root))
    coco_convert(source, tmp_path / "local", LocalEngine(1))
    report = coco_convert(source, tmp_path / "dask", DaskEngine(client=client))
    assert [r.written_shards for r in report.splits.values()] == [3, 3]
    expected = tree(tmp_path / "local")
    assert "manifest.json" in expected and "train-00002-of-00003.tfrecord" in expected
    assert tree(tmp_path / "dask") == expected

    before = mtimes(tmp_path / "dask")
    again = coco_convert(source, tmp_path / "dask", DaskEngine(client=client))
    assert [(r.written_shards, r.skipped_shards) for r in again.splits.values()] == [(0, 3)] * 2
    assert {k: v for k, v in mtimes(tmp_path / "dask").items() if "manifest" not in k} == {
        k: v for k, v in before.items() if "manifest" not in k}
    assert tree(tmp_path / "dask") == expected


def test_dask_resumes_a_local_run_and_the_reverse(client, coco_root, tmp_path):
    source = CocoPanopticSource(str(coco_root))
    coco_convert(source, tmp_path / "a", LocalEngine(1), splits=("val",))
    report = coco_convert(source, tmp_path / "a", DaskEngine(client=client))
    assert (report.splits["val"].written_shards, report.splits["train"].written_shards) == (0, 3)
    coco_convert(source, tmp_path / "b", DaskEngine(client=client), splits=("val",))
    report = coco_convert(source, tmp_path / "b", LocalEngine(1))
    assert report.splits["val"].written_shards == 0
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_skip_invalid_validation_pass_matches_local(client, coco_root, tmp_path):
    # A missing image is a problem of that item: the validation pass (map_items) finds it.
    root = tmp_path / "coco"
    synth_coco(str(root), images=8, height=32, width=48)
    os.remove(root / "train2017" / "000000000003.jpg")
    source = CocoPanopticSource(str(root))
    with pytest.raises(ConversionFailed) as failed:
        coco_convert(source, tmp_path / "strict", DaskEngine(client=client))
    assert any("000000000003" in str(p) for p in failed.value.problems)
    assert not os.path.exists(tmp_path / "strict" / "manifest.json")
    local = coco_convert(source, tmp_path / "local", LocalEngine(1), skip_invalid=True)
    dask = coco_convert(source, tmp_path / "dask", DaskEngine(client=client), skip_invalid=True)
    assert [p.item for p in dask.splits["train"].skipped_items] == ["000000000003"]
    assert dask.splits["train"].skipped_items == local.splits["train"].skipped_items
    assert tree(tmp_path / "dask") == tree(tmp_path / "local")


def test_cityscapes_byte_for_byte(client, tmp_path):
    root = tmp_path / "cityscapes"
    synth_cityscapes(str(root), images_per_city=3, height=32, width=64, splits=("train", "val"))
    info = cityscapes_panoptic_info()
    outs = {}
    for name, engine in (("local", LocalEngine(1)), ("dask", DaskEngine(client=client))):
        report = convert(
            source=CityscapesSource(str(root)), encoder=SmallIdPanopticEncoder(info, crowd="ignore"),
            out_dir=str(tmp_path / name), splits=["train", "val"], num_shards=4, dataset=info,
            schema="deeplab2", options={"task": "panoptic", "crowd": "ignore"}, engine=engine,
            progress=False, log=lambda m: None,
        )
        assert report.splits["train"].num_items == 6
        outs[name] = tree(tmp_path / name)
    assert len([f for f in outs["local"] if f.endswith(".tfrecord")]) == 8
    assert outs["dask"] == outs["local"]


def test_failed_task_is_retried_then_reported_with_shard_and_image(client, coco_root, tmp_path):
    attempts = tmp_path / "attempts"
    bad = CocoPanopticSource(str(coco_root)).list_split("train")[0][5]
    key = CocoPanopticSource(str(coco_root)).item_key(bad)
    flaky = FlakySource(str(coco_root), bad=key, attempts=str(attempts))
    out = tmp_path / "out"
    logged = []
    with pytest.raises(TaskFailed) as failed:
        coco_convert(flaky, out, DaskEngine(client=client, retries=2, log=logged.append))
    message = str(failed.value)
    # 12 train images in 3 shards of 4: the sixth image is in the second shard.
    assert f"shard train-00001-of-00003.tfrecord, image {key}: ValueError: decoder crashed" in message
    assert "failed after 3 tries" in message
    assert len(attempts.read_text().splitlines()) == 3
    assert any(key in line for line in logged)
    # Nothing is published; the other train shards wait, pending, for the rerun (val, the
    # next split, was not started).
    assert not [f for f in os.listdir(out) if f.endswith(".tfrecord")]
    assert sorted(os.listdir(out / ".panseg" / "pending")) == [
        f"train-0000{k}-of-00003.tfrecord{ext}" for k in (0, 2) for ext in ("", ".json")]
    report = coco_convert(CocoPanopticSource(str(coco_root)), out, DaskEngine(client=client))
    assert report.splits["train"].written_shards == 1
    assert report.splits["val"].written_shards == 3
    coco_convert(CocoPanopticSource(str(coco_root)), tmp_path / "local", LocalEngine(1))
    assert tree(out) == tree(tmp_path / "local")


def test_local_engine_reports_shard_and_image_too(coco_root, tmp_path):
    source = CocoPanopticSource(str(coco_root))
    key = source.item_key(source.list_split("val")[0][1])
    flaky = FlakySource(str(coco_root), bad=key, attempts=str(tmp_path / "attempts"))
    with pytest.raises(TaskFailed, match=f"shard val-00001-of-00003.tfrecord, image {key}: "
                       "ValueError: decoder crashed"):
        coco_convert(flaky, tmp_path / "out", LocalEngine(1), splits=("val",))


def test_cli_engine_dask_model_garden_equals_local(client, coco_root, tmp_path, capsys):
    common = ["convert", "coco", "--root", str(coco_root), "--schema", "model-garden",
              "--include-panoptic-masks", "--splits", "train,val", "--num-shards", "3",
              "--no-progress"]
    address = client.scheduler.address
    assert main([*common, "--out", str(tmp_path / "local"), "--workers", "1"]) == 0
    assert main([*common, "--out", str(tmp_path / "dask"), "--engine", "dask",
                 "--scheduler", address]) == 0
    assert tree(tmp_path / "dask") == tree(tmp_path / "local")
    scheduler_file = tmp_path / "scheduler.json"  # as `dask scheduler --scheduler-file` writes
    scheduler_file.write_text(json.dumps({"type": "Scheduler", "address": address}))
    assert main([*common, "--out", str(tmp_path / "file"), "--engine", "dask",
                 "--scheduler", str(scheduler_file)]) == 0
    assert tree(tmp_path / "file") == tree(tmp_path / "local")
    assert f"dask: 2 worker(s), 2 thread(s) at {address}" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "dask"), "--engine", "dask",
                 "--scheduler", address]) == 0
    captured = capsys.readouterr()
    assert "0 shards written, 3 already complete" in captured.out
    assert "dask:" not in captured.err  # nothing to do: the cluster is not even contacted


def test_cli_engine_options_are_checked(coco_root, tmp_path, capsys):
    base = ["convert", "coco", "--root", str(coco_root), "--out", str(tmp_path / "o")]
    assert main([*base, "--local-workers", "2"]) == 2
    assert "need --engine dask" in capsys.readouterr().err
    assert main([*base, "--engine", "dask", "--local-workers", "0"]) == 2
    assert "--local-workers must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--engine", "dask", "--local-workers", "2", "--scheduler", "tcp://h:1"])
    assert not os.path.exists(tmp_path / "o")


def test_progress_counts_every_image_once(client, coco_root, tmp_path, capsys):
    info = coco_panoptic_info()
    convert(
        source=CocoPanopticSource(str(coco_root)), encoder=PanopticDeepLab2Encoder(info, crowd="ignore"),
        out_dir=str(tmp_path / "out"), splits=["train"], num_shards=2, dataset=info,
        schema="deeplab2", options={"task": "panoptic", "crowd": "ignore"},
        engine=DaskEngine(client=client), progress=True, log=lambda m: None,
    )
    err = capsys.readouterr().err
    assert "write train: 100%" in err and "12/12" in err and "13/12" not in err


@pytest.fixture
def s3_endpoint():
    """A local S3 server (moto), configured in this process only (``fsio.configure``): the
    engine hands the options to the workers."""
    from panseg import fsio

    previous = fsio.storage_options()
    with moto_server() as url:
        fsio.configure({"s3": s3_options(url)})
        try:
            yield url
        finally:
            fsio.configure(previous)


def test_workers_write_to_an_object_store(client, coco_root, tmp_path, s3_endpoint):
    from panseg import fsio

    fs = fsio.filesystem("s3://records")
    fs.mkdir("records")
    source = CocoPanopticSource(str(coco_root))
    val = {"splits": ("val",)}
    report = coco_convert(source, "s3://records/coco", DaskEngine(client=client), **val)
    assert report.manifest_path == "s3://records/coco/manifest.json"
    coco_convert(source, tmp_path / "local", LocalEngine(1), **val)
    expected = tree(tmp_path / "local")
    assert {path[len("records/coco/"):]: fs.cat(path) for path in fs.find("records/coco")} == expected
    again = coco_convert(source, "s3://records/coco", DaskEngine(client=client), **val)
    assert again.splits["val"].written_shards == 0


def test_a_lost_worker_is_reported_with_its_shard():
    class KilledWorker(Exception):  # raised by the scheduler, not inside the task
        pass

    class Future:  # what as_completed hands back for a task whose workers kept dying
        status = "error"

        def exception(self):
            return KilledWorker("attempted to run task on 3 different workers, all died")

    message = DaskEngine._failure(Future(), "shard train-00001-of-00003.tfrecord")
    assert message == ("shard train-00001-of-00003.tfrecord: KilledWorker: attempted to run task "
                       "on 3 different workers, all died")
    Future.status = "cancelled"
    assert "cancelled" in DaskEngine._failure(Future(), "shard s")


def test_cli_merge_with_a_class_map_equals_local(client, coco_root, tmp_path):
    synth_cityscapes(str(tmp_path / "cs"), images_per_city=1, height=32, width=64,
                     splits=("val",))
    (tmp_path / "map.json").write_text(json.dumps({
        "name": "people", "ignore_label": 255, "label_divisor": 1000, "unmapped": "ignore",
        "classes": [{"id": 0, "name": "person", "thing": True, "color": [220, 20, 60],
                     "sources": {"coco": ["person"], "cityscapes": ["person", "rider"]}}],
    }))
    args = ["convert", "merge", "--class-map", str(tmp_path / "map.json"),
            "--source", f"coco={coco_root}", "--source", f"cityscapes={tmp_path / 'cs'}",
            "--splits", "val", "--num-shards", "2", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "local"), "--workers", "1"]) == 0
    assert main([*args, "--out", str(tmp_path / "dask"), "--engine", "dask",
                 "--scheduler", client.scheduler.address]) == 0
    assert tree(tmp_path / "dask") == tree(tmp_path / "local")


def test_cli_prints_a_failed_task_in_one_line(coco_root, tmp_path, capsys, monkeypatch):
    # In-process local engine, so that the patched load is the one that runs.
    def load(self, item):
        raise MemoryError("out of memory while decoding")

    monkeypatch.setattr(CocoPanopticSource, "load", load)
    assert main(["convert", "coco", "--root", str(coco_root), "--out", str(tmp_path / "o"),
                 "--splits", "val", "--num-shards", "3", "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["panseg: error: shard val-00000-of-00003.tfrecord, image 000000000013: "
                   "MemoryError: out of memory while decoding; complete shards are kept, "
                   "rerun to resume"]


def test_progress_ticks_are_capped_per_task_and_ignored_once_it_is_done():
    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    engine, bar = DaskEngine(), Bar()
    sizes, ticked, done = [4, 3], [0, 0], [False, True]
    for msg in ([0, 2], [0, 1], [1, 3], [0, 2]):  # task 0 retried; task 1 already topped up
        engine._events.put(msg)
    engine._drain(bar, ticked, sizes, done, timeout=0.01)
    assert (bar.n, ticked) == (4, [4, 0])
