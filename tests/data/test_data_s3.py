"""Reading shards from s3:// through a local S3 server (moto) started on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from records_fixture import cityscapes_like_info, write_record_dir
from torch.utils.data import DataLoader

from panseg.data.records_dataset import PanopticRecordDataset

pytest.importorskip("s3fs")  # the `s3` extra; CI installs it with `test`


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_reads_shards_from_s3(tmp_path, s3_endpoint):
    import s3fs

    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "eu-west-1"},
    }
    write_record_dir(str(tmp_path), 5, 2)
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("recs")
    for name in os.listdir(tmp_path):
        fs.pipe(f"recs/data/{name}", (tmp_path / name).read_bytes())

    local = PanopticRecordDataset(str(tmp_path), split="train")
    remote = PanopticRecordDataset(
        "s3://recs/data", split="train", shuffle=True, seed=1, storage_options=options
    )
    got = {s["index"]: s for s in remote}
    assert sorted(got) == list(range(5))
    # Forked DataLoader workers open their own S3 sessions.
    workers = DataLoader(remote, batch_size=None, num_workers=2)
    assert sorted(int(s["index"]) for s in workers) == list(range(5))
    for want in local:
        s = got[want["index"]]
        assert (s["image"] == want["image"]).all() and (s["panoptic"] == want["panoptic"]).all()

    # Without a manifest: shards by glob, offsets indexed on first use.
    globbed = PanopticRecordDataset(
        "s3://recs/data/train-*.tfrecord", info=cityscapes_like_info(), storage_options=options
    )
    assert globbed.counts() == [2, 3]
    assert [s["filename"] for s in globbed] == [f"img{i:04d}" for i in range(5)]
