"""The ranged downloader against a local server: parallel, resume, drops, corruption."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from panseg.download.http import (
    ChecksumError,
    DownloadError,
    _merge,
    _missing,
    download_file,
    probe,
)

KB = 1024
DATA = random.Random(7).randbytes(300 * KB + 123)  # 10 chunks of 32 KiB, the last one short
MD5 = hashlib.md5(DATA).hexdigest()
FAST = {"chunk_size": 32 * KB, "backoff": 0.0, "timeout": 5.0, "progress": False}


def _serve(state, path="/f.zip", data=DATA):
    state.files[path] = data
    return path


def test_probe_sees_range_support_and_size(server):
    base, state = server
    _serve(state)
    info = probe(base + "/f.zip", backoff=0)
    assert (info.size, info.ranges) == (len(DATA), True)
    state.ranges = False
    info = probe(base + "/f.zip", backoff=0)
    assert (info.size, info.ranges) == (len(DATA), False)


def test_parallel_ranged_download_is_exact(server, tmp_path):
    base, state = server
    _serve(state)
    out = download_file(base + "/f.zip", tmp_path / "f.zip", size=len(DATA), md5=MD5,
                        connections=4, **FAST)
    assert out.read_bytes() == DATA
    ranged = [s for p, s in state.requests if s == 206]
    assert len(ranged) == 1 + 10  # the probe plus one request per chunk
    assert state.sent("/f.zip") == len(DATA) + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zip"]  # no .part, no sidecar


def test_server_without_range_support_streams_once(server, tmp_path):
    base, state = server
    _serve(state)
    state.ranges = False
    out = download_file(base + "/f.zip", tmp_path / "f.zip", size=len(DATA), md5=MD5,
                        connections=4, **FAST)
    assert out.read_bytes() == DATA
    assert [s for _, s in state.requests] == [200, 200]  # probe (closed early) + the stream


def test_dropped_connections_are_resumed_from_the_last_byte(server, tmp_path):
    base, state = server
    _serve(state)
    state.drops["/f.zip"] = 3  # the probe is 1 byte and is never cut; 3 chunk answers are
    out = download_file(base + "/f.zip", tmp_path / "f.zip", size=len(DATA), md5=MD5,
                        connections=2, **FAST)
    assert out.read_bytes() == DATA
    # each cut answer sent half its range and the retry asked only for the other half:
    # no byte was sent twice, and there were 3 extra requests
    assert state.sent("/f.zip") == len(DATA) + 1
    assert len(state.requests) == 1 + 10 + 3


def test_dropped_stream_without_ranges_restarts_and_completes(server, tmp_path):
    base, state = server
    _serve(state)
    state.ranges = False
    state.drops["/f.zip"] = 2  # cuts the (200, closed early) probe, then the stream
    out = download_file(base + "/f.zip", tmp_path / "f.zip", size=len(DATA), md5=MD5, **FAST)
    assert out.read_bytes() == DATA


def test_interrupted_run_resumes_without_refetching_completed_chunks(server, tmp_path):
    base, state = server
    real = _serve(state) and state.files
    calls = {"n": 0}

    class CutFifthChunk(dict):
        """Counts GETs: the probe, 4 whole chunks, then the 5th chunk's answer is cut."""

        def get(self, key, default=None):
            calls["n"] += 1
            if calls["n"] == 6:
                state.drops[key] = 1
            return real.get(key, default)

    state.files = CutFifthChunk(real)
    with pytest.raises(DownloadError, match=r"f\.zip: bytes 147456-163839 .* 1 attempt"):
        download_file(base + "/f.zip", tmp_path / "f.zip", size=len(DATA), md5=MD5,
                      connections=1, retries=0, **FAST)
    # 4 whole chunks, and the half of the 5th that arrived before the cut
    sidecar = json.loads((tmp_path / "f.zip.part.json").read_text())
    assert sidecar["done"] == [[0, 4 * 32 * KB + 16 * KB]]
    assert not (tmp_path / "f.zip").exists()

    state.files = real
    state.reset_counts()
    download_file(base + "/f.zip", tmp_path / "f.zip", size=len(DATA), md5=MD5,
                  connections=3, **FAST)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert state.sent("/f.zip") == 1 + len(DATA) - (4 * 32 + 16) * KB
    # the rest of the 5th chunk was asked for by itself, then the 5 untouched chunks
    ranges = sorted((r for r in state.ranges_asked if r != "bytes=0-0"),
                    key=lambda r: int(r[6:].partition("-")[0]))
    assert ranges[0] == f"bytes={(4 * 32 + 16) * KB}-{5 * 32 * KB - 1}"
    assert len(ranges) == 6


_CHILD = """
import sys
from panseg.download.http import download_file
download_file(sys.argv[1], sys.argv[2], size=int(sys.argv[3]), md5=None, connections=2,
              chunk_size=32 * 1024, backoff=0.0, timeout=5.0, progress=False)
"""


def test_killed_process_resumes_from_the_sidecar(server, tmp_path):
    base, state = server
    _serve(state)
    state.delay = 0.01  # ~1.6 MB/s: the child is still downloading when it is killed
    dest = tmp_path / "f.zip"
    sidecar = tmp_path / "f.zip.part.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, base + "/f.zip", str(dest),
                              str(len(DATA))], env=env)
    try:
        deadline = time.monotonic() + 20
        done_bytes = 0
        while time.monotonic() < deadline and done_bytes < 3 * 32 * KB:
            if sidecar.exists():
                try:
                    done_bytes = sum(e - s for s, e in json.loads(sidecar.read_text())["done"])
                except ValueError:
                    pass
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert not dest.exists() and done_bytes >= 3 * 32 * KB
    done = json.loads(sidecar.read_text())["done"]
    done_bytes = sum(e - s for s, e in done)
    assert done_bytes < len(DATA)

    state.delay = 0.0
    state.reset_counts()
    download_file(base + "/f.zip", dest, size=len(DATA), md5=MD5, connections=4, **FAST)
    assert dest.read_bytes() == DATA
    assert state.sent("/f.zip") == 1 + len(DATA) - done_bytes


def test_corrupt_download_is_kept_aside_with_a_clear_error(server, tmp_path):
    base, state = server
    bad = bytearray(DATA)
    bad[1000] ^= 0xFF
    _serve(state, data=bytes(bad))
    with pytest.raises(ChecksumError, match=r"f\.zip: md5 .* does not match .*corrupt"):
        download_file(base + "/f.zip", tmp_path / "f.zip", size=len(DATA), md5=MD5, **FAST)
    assert not (tmp_path / "f.zip").exists()
    assert (tmp_path / "f.zip.corrupt").read_bytes() == bytes(bad)
    assert not (tmp_path / "f.zip.part.json").exists()


def test_size_mismatch_is_reported_before_downloading(server, tmp_path):
    base, state = server
    _serve(state, data=DATA + b"x")
    with pytest.raises(DownloadError, match=r"f\.zip: .* serves 307324 bytes, the archive table"):
        download_file(base + "/f.zip", tmp_path / "f.zip", size=len(DATA), md5=MD5, **FAST)
    assert state.sent("/f.zip") == 1


def test_missing_file_fails_at_once(server, tmp_path):
    base, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(base + "/nope.zip", tmp_path / "nope.zip", size=10, md5=None, **FAST)


def test_untrustworthy_sidecar_restarts_from_zero(server, tmp_path):
    base, state = server
    _serve(state)
    (tmp_path / "f.zip.part").write_bytes(b"\0" * len(DATA))
    (tmp_path / "f.zip.part.json").write_text(json.dumps({"size": 5, "done": [[0, 5]]}))
    download_file(base + "/f.zip", tmp_path / "f.zip", size=len(DATA), md5=MD5, **FAST)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert state.sent("/f.zip") == 1 + len(DATA)


def test_unknown_md5_checks_size_only(server, tmp_path):
    base, state = server
    _serve(state)
    out = download_file(base + "/f.zip", Path(tmp_path) / "f.zip", size=None, md5=None, **FAST)
    assert out.read_bytes() == DATA


def test_missing_ranges_agree_with_a_byte_set_oracle():
    rng = random.Random(3)
    for _ in range(300):
        size = rng.randint(1, 60)
        raw = [tuple(sorted(rng.sample(range(size + 1), 2))) for _ in range(rng.randint(0, 5))]
        done = _merge([r for r in raw if r[0] < r[1]])
        start = rng.randint(0, size - 1)
        end = rng.randint(start + 1, size)
        covered = {b for s, e in done for b in range(s, e)}
        expect = [b for b in range(start, end) if b not in covered]
        got = _missing(done, start, end)
        assert [b for s, e in got for b in range(s, e)] == expect
        assert all(s < e for s, e in got)
        assert all(a[1] < b[0] for a, b in zip(got, got[1:], strict=False))  # maximal
