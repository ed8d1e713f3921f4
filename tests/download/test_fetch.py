"""Whole flows: `panseg download coco|cityscapes` against the local server."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys

import pytest

from panseg.cli.main import main
from panseg.download import archives as tables
from panseg.download import fetch
from panseg.download.fetch import STATE_FILE, fetch_archives
from panseg.download.http import ChecksumError, DownloadError

FAST = ["--chunk-mb", "0.016", "--connections", "3", "--quiet"]


@pytest.fixture
def coco_server(server, monkeypatch, dl):
    """The local server holding tiny COCO archives; the CLI's table has their facts."""
    base, state = server
    blobs = dl.coco_like()
    table = dl.table_for(tables.COCO_ARCHIVES, blobs)
    for a in table.values():
        state.files[dl.url_path(a)] = blobs[a.name]
    monkeypatch.setattr(tables, "COCO_ARCHIVES", table)
    return base, state, table


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name != STATE_FILE)


def test_download_coco_builds_the_converters_tree(coco_server, tmp_path, capsys, dl):
    base, state, _ = coco_server
    root = tmp_path / "coco"
    assert main(["download", "coco", "--out", str(root), "--mirror", base, *FAST]) == 0
    assert _files(root) == [
        "annotations/instances_train2017.json",
        "annotations/instances_val2017.json",
        "annotations/panoptic_train2017.json",
        "annotations/panoptic_train2017/000000000009.png",
        "annotations/panoptic_train2017/000000000025.png",
        "annotations/panoptic_train2017/000000000030.png",
        "annotations/panoptic_val2017.json",
        "annotations/panoptic_val2017/000000000139.png",
        "annotations/panoptic_val2017/000000000285.png",
        "train2017/000000000009.jpg",
        "train2017/000000000025.jpg",
        "train2017/000000000030.jpg",
        "val2017/000000000139.jpg",
        "val2017/000000000285.jpg",
    ]
    assert (root / "train2017/000000000025.jpg").read_bytes() == dl.random_bytes(40000, 25)
    assert list((root / "archives").iterdir()) == []  # archives deleted after extraction
    err = capsys.readouterr().err
    assert "plan: 4 archive(s)" in err and "train2017.zip: extracted train2017" in err
    assert "MB/s with verification" in err and "at this rate the remaining" in err
    assert f"next: panseg convert coco --root {root} --out RECORDS_DIR" in err
    assert "test2017.zip" not in err  # not in the default parts

    # a second run finds everything extracted and downloads nothing
    state.reset_counts()
    assert main(["download", "coco", "--out", str(root), "--mirror", base, *FAST]) == 0
    assert state.requests == []
    assert "already extracted" in capsys.readouterr().err


def test_parts_and_keep_archives(coco_server, tmp_path):
    base, state, table = coco_server
    root = tmp_path / "coco"
    assert main(["download", "coco", "--out", str(root), "--mirror", base, "--parts", "test,val",
                 "--keep-archives", *FAST]) == 0
    assert _files(root) == ["archives/test2017.zip", "archives/val2017.zip",
                            "test2017/000000000001.jpg", "test2017/000000000002.jpg",
                            "val2017/000000000139.jpg", "val2017/000000000285.jpg"]
    state_file = json.loads((root / STATE_FILE).read_text())
    assert state_file["extracted"]["val2017.zip"]["md5"] == table["val2017.zip"].md5


def test_corrupt_archive_is_never_extracted(coco_server, tmp_path, capsys, dl):
    base, state, table = coco_server
    path = dl.url_path(table["val2017.zip"])
    bad = bytearray(state.files[path])
    bad[-200] ^= 1
    state.files[path] = bytes(bad)
    root = tmp_path / "coco"
    assert main(["download", "coco", "--out", str(root), "--mirror", base, "--parts", "val",
                 *FAST]) == 2
    err = capsys.readouterr().err
    assert "panoptic" not in err and "panseg: error: val2017.zip: md5" in err
    assert "does not match" in err
    assert not (root / "val2017").exists()
    assert (root / "archives/val2017.zip.corrupt").exists()


def test_bad_part_name_is_a_clear_error(capsys, tmp_path):
    assert main(["download", "coco", "--out", str(tmp_path), "--parts", "train,bogus"]) == 2
    assert "unknown COCO part ['bogus']" in capsys.readouterr().err


def test_finished_archive_from_an_earlier_no_extract_run_is_reused(coco_server, tmp_path):
    base, state, _ = coco_server
    root = tmp_path / "coco"
    assert main(["download", "coco", "--out", str(root), "--mirror", base, "--parts", "val",
                 "--no-extract", *FAST]) == 0
    assert _files(root) == ["archives/val2017.zip"]
    state.reset_counts()
    assert main(["download", "coco", "--out", str(root), "--mirror", base, "--parts", "val",
                 *FAST]) == 0
    assert state.requests == []
    assert _files(root) == ["val2017/000000000139.jpg", "val2017/000000000285.jpg"]


@pytest.fixture
def cityscapes_server(server, monkeypatch, dl):
    base, state = server
    blobs = {
        "gtFine_trainvaltest.zip": dl.make_zip({
            **{f"gtFine/{s}/aachen/aachen_000000_000019_gtFine_labelIds.png":
               dl.random_bytes(2000, i) for i, s in enumerate(("train", "val", "test"))},
            "README": b"readme", "license.txt": b"license"}),
        "leftImg8bit_trainvaltest.zip": dl.make_zip({
            **{f"leftImg8bit/{s}/aachen/aachen_000000_000019_leftImg8bit.png":
               dl.random_bytes(9000, 10 + i) for i, s in enumerate(("train", "val", "test"))},
            "README": b"readme", "license.txt": b"license"}),
    }
    table = dl.table_for(tables.CITYSCAPES_ARCHIVES, blobs)
    for a in table.values():
        state.files[dl.url_path(a)] = blobs[a.name]
        state.need_login.add(dl.url_path(a))
    monkeypatch.setattr(tables, "CITYSCAPES_ARCHIVES", table)
    return base, state, table


def test_download_cityscapes_logs_in_with_environment_credentials(cityscapes_server, tmp_path,
                                                                  monkeypatch, dl):
    base, state, _ = cityscapes_server
    monkeypatch.setenv("CITYSCAPES_USERNAME", dl.USER)
    monkeypatch.setenv("CITYSCAPES_PASSWORD", dl.PASSWORD)
    root = tmp_path / "cs"
    assert main(["download", "cityscapes", "--out", str(root), "--mirror", base, *FAST]) == 0
    assert _files(root) == [
        "README",
        "gtFine/test/aachen/aachen_000000_000019_gtFine_labelIds.png",
        "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png",
        "gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png",
        "leftImg8bit/test/aachen/aachen_000000_000019_leftImg8bit.png",
        "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png",
        "leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png",
        "license.txt",
    ]
    assert state.logged_in


def test_cityscapes_wrong_password_and_missing_credentials(cityscapes_server, tmp_path, capsys,
                                                           monkeypatch, dl):
    base, state, _ = cityscapes_server
    assert main(["download", "cityscapes", "--out", str(tmp_path), "--mirror", base,
                 "--username", dl.USER, "--password", "wrong", *FAST]) == 2
    assert "Cityscapes login as 'alice' failed (HTTP 200" in capsys.readouterr().err
    monkeypatch.delenv("CITYSCAPES_USERNAME", raising=False)
    monkeypatch.delenv("CITYSCAPES_PASSWORD", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert main(["download", "cityscapes", "--out", str(tmp_path), "--mirror", base, *FAST]) == 2
    assert "Cityscapes needs credentials" in capsys.readouterr().err


def test_expired_session_gets_a_login_hint_not_an_html_archive(cityscapes_server, tmp_path):
    base, state, table = cityscapes_server
    a = table["gtFine_trainvaltest.zip"]
    with pytest.raises(DownloadError,
                       match=r"serves 31 bytes \(an HTML page, redirected to .*/login: login expired"):
        fetch_archives([a], tmp_path, base_url=base, headers={"Cookie": "PHPSESSID=x"},
                       progress=False, backoff=0, log=lambda m: None)
    assert not (tmp_path / "gtFine").exists()


def test_fetch_library_call_md5_error_type(coco_server, tmp_path, dl):
    base, state, table = coco_server
    a = table["val2017.zip"]
    state.files[dl.url_path(a)] = b"x" * a.size
    with pytest.raises(ChecksumError, match="val2017.zip"):
        fetch_archives([a], tmp_path, base_url=base, progress=False, backoff=0,
                       log=lambda m: None)
    assert hashlib.md5(b"x" * a.size).hexdigest() != a.md5


def test_download_cli_never_imports_torch():
    code = ("import sys, panseg.cli.download, panseg.download.fetch; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_not_enough_disk_space_stops_before_downloading(coco_server, tmp_path, monkeypatch,
                                                        capsys):
    base, state, _ = coco_server
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    assert main(["download", "coco", "--out", str(tmp_path), "--mirror", base, *FAST]) == 2
    err = capsys.readouterr().err
    assert re.search(r"panseg: error: .*archives: 1000 bytes free, 0\.2 MB to download", err)
    assert state.requests == []
