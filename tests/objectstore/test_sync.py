"""``panseg sync`` between local disk and a local S3 server: copy, resume, repair, refuse."""

from __future__ import annotations

import json
import os

import pytest

from panseg import fsio
from panseg.cli.main import main
from panseg.sync import SyncError, sync


@pytest.fixture
def records(coco_records) -> str:
    return coco_records[1]


def _shards(directory: str) -> dict[str, bytes]:
    manifest = json.loads(fsio.read_bytes(fsio.join(directory, "manifest.json")))
    return {s["file"]: fsio.read_bytes(fsio.join(directory, s["file"]))
            for split in manifest["splits"].values() for s in split["shards"]}


def _flip_byte(path: str, at: int = 10) -> None:
    data = bytearray(fsio.read_bytes(path))
    data[at] ^= 0xFF
    fsio.write_bytes_atomic(path, bytes(data))


def test_sync_local_to_s3_and_back(records, bucket, s3_options, tmp_path, capsys):
    remote, back = f"{bucket}/records", str(tmp_path / "back")
    fsio.configure(None)  # the CLI options alone reach the store
    assert main(["sync", records, remote, "--jobs", "3", "--no-progress", *s3_options]) == 0
    assert "6 shards: 6 copied, 0 already there" in capsys.readouterr().out
    assert fsio.read_bytes(f"{remote}/manifest.json") == fsio.read_bytes(
        os.path.join(records, "manifest.json"))
    assert _shards(remote) == _shards(records)
    assert not fsio.exists(f"{remote}/.panseg")  # converter bookkeeping stays behind

    # panseg inspect reads the bucket too (manifest beside the shards).
    assert main(["inspect", f"{remote}/train-*.tfrecord", *s3_options]) == 0
    assert "total: 4 examples in 3 shards" in capsys.readouterr().out

    # Resume: a second run copies nothing.
    assert main(["sync", records, remote, "--no-progress", *s3_options]) == 0
    assert "6 shards: 0 copied, 6 already there" in capsys.readouterr().out

    # s3 -> local, then a corrupt local shard (same size) is found by --verify only.
    assert main(["sync", remote, back, "--no-progress", *s3_options]) == 0
    assert _shards(back) == _shards(records)
    shard = sorted(_shards(back))[1]
    _flip_byte(os.path.join(back, shard))
    assert main(["sync", remote, back, "--no-progress", *s3_options]) == 0
    assert "0 copied" in capsys.readouterr().out  # a completed sync compares sizes only
    assert main(["sync", remote, back, "--no-progress", "--verify", *s3_options]) == 0
    out = capsys.readouterr()
    assert "1 copied (1 copied again), 5 already there" in out.out
    assert shard in out.err
    assert _shards(back) == _shards(records)
    assert not [n for n in os.listdir(back) if n.startswith(".")]  # no temporaries left


def test_interrupted_sync_resumes_and_repairs(records, bucket, s3_options):
    remote = f"{bucket}/records"
    names = sorted(n for n, data in _shards(records).items() if data)
    # An earlier, interrupted sync: two shards there (one truncated), no manifest.
    fsio.write_bytes_atomic(f"{remote}/{names[0]}",
                            fsio.read_bytes(os.path.join(records, names[0])))
    fsio.write_bytes_atomic(f"{remote}/{names[1]}",
                            fsio.read_bytes(os.path.join(records, names[1]))[:-7])
    report = sync(records, remote, jobs=2, progress=False, log=lambda msg: None)
    assert report.skipped == [names[0]]
    assert report.recopied == [names[1]]
    assert report.copied[0] == names[1] and len(report.copied) == 5
    assert _shards(remote) == _shards(records)

    # A same-size corruption in the bucket is found by verify (the object is streamed back).
    _flip_byte(f"{remote}/{names[2]}")
    report = sync(records, remote, verify=True, progress=False, log=lambda msg: None)
    assert report.copied == [names[2]] == report.recopied
    assert _shards(remote) == _shards(records)


def test_source_that_disagrees_with_its_manifest(records, tmp_path, capsys):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    assert main(["sync", records, src, "--no-progress"]) == 0
    bad = sorted(_shards(src))[3]
    _flip_byte(os.path.join(src, bad), at=20)
    capsys.readouterr()
    assert main(["sync", src, dst, "--no-progress", "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert bad in err and "disagrees with its manifest" in err
    assert not os.path.exists(os.path.join(dst, "manifest.json"))  # DST is not complete
    assert not os.path.exists(os.path.join(dst, bad))
    assert not [n for n in os.listdir(dst) if n.startswith(".")]
    # The other shards were copied and are kept for the next run.
    assert len(os.listdir(dst)) == 5


def test_errors_name_the_problem(tmp_path, records):
    with pytest.raises(SyncError, match="no manifest"):
        sync(str(tmp_path), str(tmp_path / "x"), progress=False)
    manifest = json.loads(open(os.path.join(records, "manifest.json")).read())
    manifest["splits"]["train"]["shards"][0]["file"] = "../escape.tfrecord"
    src = tmp_path / "evil"
    src.mkdir()
    (src / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SyncError, match="not a plain file name"):
        sync(str(src), str(tmp_path / "y"), progress=False)
    assert main(["sync", str(tmp_path), str(tmp_path / "z"), "--storage-option", "novalue"]) == 2


def test_stored_checksum_of_gcs_objects(monkeypatch):
    """GCS reports crc32c as base64 of the big-endian 4 bytes: read without a download."""
    import base64

    from panseg import sync as sync_module
    from panseg.sync import FileEntry, dst_state, stored_crc32c

    class FakeGCS:
        def info(self, path):
            return {"size": 3, "crc32c": base64.b64encode(bytes.fromhex("364b3fb7")).decode()}

        def size(self, path):
            return 3

        def open(self, path, mode):
            raise AssertionError("the stored checksum must make a read unnecessary")

    monkeypatch.setattr(sync_module.fsio, "filesystem", lambda path: FakeGCS())
    assert stored_crc32c("gs://b/x") == "364b3fb7"  # CRC32C of b"abc"
    assert dst_state("gs://b/x", FileEntry("x", 3, "364b3fb7"), check_crc=True) == "ok"
    assert dst_state("gs://b/x", FileEntry("x", 3, "00000000"), check_crc=True) == "bad"
    assert stored_crc32c("/local/file") is None


def test_missing_source_shard_and_stale_temporaries(records, tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    sync(records, src, progress=False)
    names = sorted(_shards(src))
    os.remove(os.path.join(src, names[0]))
    os.makedirs(dst)
    stale = os.path.join(dst, f".{names[1]}.sync-tmp")
    with open(stale, "wb") as f:
        f.write(b"left by an interrupted run")
    with pytest.raises(SyncError, match=f"{names[0]}: FileNotFoundError.*rerun to resume"):
        sync(src, dst, progress=False)
    assert not os.path.exists(stale)
    assert sorted(os.listdir(dst)) == names[1:]  # the rest is there, no manifest
