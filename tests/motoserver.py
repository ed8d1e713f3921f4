"""A local S3 server (moto) on 127.0.0.1 for tests (importable: tests/ is on pytest's path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

KEY, SECRET, REGION = "testing", "testing", "eu-west-1"


@contextmanager
def moto_server(timeout: float = 20.0) -> Iterator[str]:
    """Start ``moto.server`` on a free loopback port; yields its URL, stops it on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
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


def s3_options(url: str) -> dict:
    """fsspec/s3fs options for the server at ``url``."""
    return {"key": KEY, "secret": SECRET,
            "client_kwargs": {"endpoint_url": url, "region_name": REGION}}
