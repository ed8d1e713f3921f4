"""``--storage-option`` parsing and ``fsio.configure`` (no server needed)."""

from __future__ import annotations

import pytest

from panseg import fsio
from panseg.cli.storage import parse_storage_options


def test_parse_storage_options():
    got = parse_storage_options(
        ["client_kwargs.endpoint_url=http://127.0.0.1:9000", "anon=true", "s3:profile=dev",
         "s3:client_kwargs.region_name=eu-west-1", "gs:token=anon", "default_block_size=1024",
         "s3:config_kwargs.s3.addressing_style=path", 'requester_pays="true"'],
        s3_endpoint="http://minio:9000",
    )
    assert got == {
        "*": {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}, "anon": True,
              "default_block_size": 1024, "requester_pays": "true"},
        "s3": {"profile": "dev", "config_kwargs": {"s3": {"addressing_style": "path"}},
               "client_kwargs": {"region_name": "eu-west-1", "endpoint_url": "http://minio:9000"}},
        "gs": {"token": "anon"},
    }
    assert parse_storage_options([]) == {}


@pytest.mark.parametrize("bad", ["novalue", "=x", "a..b=1", "a=1 a.b=2"])
def test_parse_storage_options_errors(bad):
    items = bad.split(" ")
    with pytest.raises(ValueError, match="--storage-option|already set"):
        parse_storage_options(items)


def test_configure_merges_per_protocol():
    try:
        fsio.configure({"*": {"anon": True, "a": 1}, "s3a": {"a": 2}, "gcs": {"b": 3}})
        assert fsio.storage_options("s3") == {"anon": True, "a": 2}
        assert fsio.storage_options("gs") == {"anon": True, "a": 1, "b": 3}
        assert fsio.storage_options("memory") == {"anon": True, "a": 1}
        fsio.configure({"memory": {}})
        fs = fsio.filesystem("memory://x")
        fsio.write_bytes_atomic("memory://panseg-test/x.bin", b"abc")
        assert fsio.read_bytes("memory://panseg-test/x.bin") == b"abc"
        with pytest.raises(RuntimeError), fsio.atomic_writer("memory://panseg-test/y.bin") as f:
            f.write(b"partial")
            raise RuntimeError("interrupted")
        assert not fsio.exists("memory://panseg-test/y.bin")  # no partial object left
        fs.rm("memory://panseg-test", recursive=True)
    finally:
        fsio.configure(None)
    assert fsio.storage_options() == {}
