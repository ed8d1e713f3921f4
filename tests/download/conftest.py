"""A local HTTP server on 127.0.0.1 serving tiny COCO-like and Cityscapes-like archives.

The server supports ``Range`` (switchable off), counts the body bytes it sends per path, can
drop a connection half-way through a response, can throttle, and imitates the
cityscapes-dataset.com login (session cookie, ``POST /login`` answering 302 on success).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import threading
import time
import types
import urllib.parse
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from panseg.download.archives import Archive

USER, PASSWORD, SESSION = "alice", "s3cret", "sess-42"


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    ranges: bool = True
    drops: Counter = field(default_factory=Counter)  # path -> responses to cut half-way
    delay: float = 0.0  # seconds slept per 16 KiB block sent
    served: Counter = field(default_factory=Counter)  # path -> body bytes sent
    requests: list = field(default_factory=list)  # (path, status)
    ranges_asked: list = field(default_factory=list)  # Range headers received
    need_login: set = field(default_factory=set)  # paths that require the session cookie
    logged_in: bool = False
    active: int = 0  # responses being sent
    lock: threading.Lock = field(default_factory=threading.Lock)

    def settle(self) -> None:
        """Wait for responses still being sent (the client may finish before the server)."""
        deadline = time.monotonic() + 5
        while self.active and time.monotonic() < deadline:
            time.sleep(0.002)

    def sent(self, path: str) -> int:
        """Body bytes sent for ``path`` once every response has ended."""
        self.settle()
        return self.served[path]

    def reset_counts(self) -> None:
        self.settle()
        with self.lock:
            self.served.clear()
            self.requests.clear()
            self.ranges_asked.clear()


class _Handler(BaseHTTPRequestHandler):
    state: ServerState

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _record(self, path: str, status: int) -> None:
        with self.state.lock:
            self.state.requests.append((path, status))

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)).decode()
        form = urllib.parse.parse_qs(body)
        if self.path.rstrip("/") == "/login" and form.get("username") == [USER] \
                and form.get("password") == [PASSWORD] and form.get("submit") == ["Login"] \
                and f"PHPSESSID={SESSION}" in (self.headers.get("Cookie") or ""):
            self.state.logged_in = True
            self.send_response(302)
            self.send_header("Location", "/")
            self.send_header("Set-Cookie", "auth=ok; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._html(200, b"<html>login form</html>")

    def _html(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        st = self.state
        if self.path.rstrip("/") == "/login":
            body = b"<html><form>login</form></html>"
            self.send_response(200)
            self.send_header("Set-Cookie", f"PHPSESSID={SESSION}; Path=/")
            self.send_header("Content-Type", "text/html; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path in st.need_login and "auth=ok" not in (self.headers.get("Cookie") or ""):
            self.send_response(302)
            self.send_header("Location", "/login")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = st.files.get(self.path)
        if data is None:
            self._record(self.path, 404)
            self.send_error(404)
            return
        start, end = 0, len(data)
        rng = self.headers.get("Range")
        if rng:
            with st.lock:
                st.ranges_asked.append(rng)
        status = 200
        if st.ranges and rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start, end = int(a), min(int(b) + 1 if b else len(data), len(data))
            status = 206
        self._record(self.path, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(end - start))
        if st.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        with st.lock:
            st.active += 1
        self.end_headers()
        with st.lock:
            drop = st.drops[self.path] > 0 and end - start > 1
            if drop:
                st.drops[self.path] -= 1
        stop = start + (end - start) // 2 if drop else end
        pos = start
        try:
            while pos < stop:
                block = data[pos:min(pos + 16384, stop)]
                self.wfile.write(block)
                with st.lock:
                    st.served[self.path] += len(block)
                pos += len(block)
                if st.delay:
                    time.sleep(st.delay)
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            with st.lock:
                st.active -= 1
        if drop:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)


@pytest.fixture
def server():
    """Yields ``(base_url, state)``; files are registered in ``state.files`` by URL path."""
    state = ServerState()
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def make_zip(members: dict[str, bytes], stored: bool = True) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def coco_like() -> dict[str, bytes]:
    """Tiny archives with COCO 2017's names and layout (incl. the nested panoptic PNG zips)."""
    ids = [9, 25, 30]
    train = make_zip({f"train2017/{i:012d}.jpg": random_bytes(40000, i) for i in ids})
    val = make_zip({"val2017/": b"", **{f"val2017/{i:012d}.jpg": random_bytes(30000, 100 + i)
                                        for i in (139, 285)}})
    pan_json = {s: json.dumps({"annotations": [], "split": s}).encode() for s in ("train", "val")}
    nested = {
        "train": make_zip({f"panoptic_train2017/{i:012d}.png": random_bytes(5000, 200 + i)
                           for i in ids}),
        "val": make_zip({f"panoptic_val2017/{i:012d}.png": random_bytes(5000, 300 + i)
                         for i in (139, 285)}),
    }
    panoptic = make_zip({
        "annotations/panoptic_train2017.json": pan_json["train"],
        "annotations/panoptic_val2017.json": pan_json["val"],
        "annotations/panoptic_train2017.zip": nested["train"],
        "annotations/panoptic_val2017.zip": nested["val"],
    }, stored=False)
    instances = make_zip({
        "annotations/instances_train2017.json": b'{"images": []}',
        "annotations/instances_val2017.json": b'{"images": []}',
    }, stored=False)
    test = make_zip({f"test2017/{i:012d}.jpg": random_bytes(1000, 400 + i) for i in (1, 2)})
    return {"train2017.zip": train, "val2017.zip": val, "test2017.zip": test,
            "panoptic_annotations_trainval2017.zip": panoptic,
            "annotations_trainval2017.zip": instances}


def table_for(real: dict[str, Archive], blobs: dict[str, bytes]) -> dict[str, Archive]:
    """The real table with sizes and md5s replaced by those of the tiny archives."""
    return {name: Archive(name=a.name, url_path=a.url_path, size=len(blobs[name]),
                          md5=hashlib.md5(blobs[name]).hexdigest(), nested=a.nested,
                          expects=a.expects)
            for name, a in real.items() if name in blobs}


def url_path(archive: Archive) -> str:
    return "/" + archive.url_path


@pytest.fixture
def dl():
    """The helpers above for test modules (conftest is not importable in importlib mode)."""
    return types.SimpleNamespace(
        USER=USER, PASSWORD=PASSWORD, random_bytes=random_bytes, make_zip=make_zip,
        coco_like=coco_like, table_for=table_for, url_path=url_path,
    )
