"""A local S3 server (moto) on 127.0.0.1 for the object-store tests, one per session."""

from __future__ import annotations

import os

import pytest

from motoserver import KEY, REGION, SECRET, moto_server
from motoserver import s3_options as options_for
from panseg import fsio
from panseg.cli.main import main

pytest.importorskip("s3fs")  # the `s3` extra; CI installs it with `test`

@pytest.fixture(scope="session")
def s3_endpoint():
    with moto_server() as url:
        yield url


@pytest.fixture
def s3_config(s3_endpoint) -> dict:
    """The fsspec options of the local server (``fsio.configure({"s3": ...})``)."""
    return options_for(s3_endpoint)


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
