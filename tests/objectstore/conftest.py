"""A local S3 server (moto) on 127.0.0.1 for the object-store tests, one per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from panseg import fsio
from panseg.cli.main import main

pytest.importorskip("s3fs")  # the `s3` extra; CI installs it with `test`

KEY, SECRET, REGION = "testing", "testing", "eu-west-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    port = _free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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


@pytest.fixture
def s3_config(s3_endpoint) -> dict:
    """The fsspec options of the local server (``fsio.configure({"s3": ...})``)."""
    return {"key": KEY, "secret": SECRET,
            "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": REGION}}


@pytest.fixture
def s3_options(s3_endpoint, s3_config):
    """``fsio`` configured for the local server (reset afterwards); yields the same options
    as CLI flags."""
    fsio.configure({"s3": s3_config})
    yield [
        "--s3-endpoint", s3_endpoint,
        "--storage-option", f"s3:key={KEY}", "--storage-option", f"s3:secret={SECRET}",
        "--storage-option", f"s3:client_kwargs.region_name={REGION}",
    ]
    fsio.configure(None)


@pytest.fixture
def bucket(s3_options, request):
    """A fresh bucket named after the test: ``s3://NAME``."""
    name = "t-" + request.node.name.lower().replace("_", "-")[:50].strip("-")
    fs = fsio.filesystem("s3://x")
    if not fs.exists(name):
        fs.mkdir(name)
    return f"s3://{name}"


def _upload_tree(local: str, url: str) -> None:
    fs = fsio.filesystem(url)
    for directory, _, files in os.walk(local):
        for name in files:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, local).replace(os.sep, "/")
            with open(path, "rb") as f:
                fs.pipe(f"{url}/{rel}", f.read())


@pytest.fixture
def upload_tree(s3_options):
    """``upload_tree(local_dir, url)``: copy a local tree into the bucket (test set-up)."""
    return _upload_tree


@pytest.fixture(scope="session")
def coco_records(tmp_path_factory) -> tuple[str, str]:
    """``(coco_root, records_dir)``: a tiny synthetic COCO tree and its DeepLab2 records
    (train 4 and val 1 images, 3 shards each: some empty)."""
    base = tmp_path_factory.mktemp("coco")
    coco, out = str(base / "coco"), str(base / "records")
    assert main(["synth", "coco", "--out", coco, "--images", "4", "--height", "32",
                 "--width", "40"]) == 0
    assert main(["convert", "coco", "--root", coco, "--out", out, "--splits", "train,val",
                 "--num-shards", "3", "--workers", "1", "--no-progress"]) == 0
    return coco, out
