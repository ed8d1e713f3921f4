"""Reading shards from s3:// through a local S3 server (moto) started on 127.0.0.1."""

from __future__ import annotations

import os

import pytest
from records_fixture import cityscapes_like_info, write_record_dir
from torch.utils.data import DataLoader

from motoserver import moto_server, s3_options
from panseg.data.records_dataset import PanopticRecordDataset

pytest.importorskip("s3fs")  # the `s3` extra; CI installs it with `test`


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_server() as url:
        yield url


def test_reads_shards_from_s3(tmp_path, s3_endpoint):
    import s3fs

    options = s3_options(s3_endpoint)
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
