"""Seconds to download + verify and to extract an archive: panseg vs. the plain reference.

Download: a local HTTP server on 127.0.0.1 serves a random file, optionally capping every
connection's rate (``--cap-mbps``; CDNs and S3 give one connection far less than the link, which
is what parallel ranges exist for). The reference is one ``urllib`` stream written to disk, then
md5 (what ``wget`` followed by ``md5sum`` does); panseg is ``download_file`` with N ranged
connections, md5 included.

Extraction: a zip of COCO-like members (random "JPEG" bytes, stored, ~160 KB each). The
reference is ``zipfile.ZipFile.extractall``; panseg is ``extract_zip`` (atomic, CRC-checked)
with 1 and 4 threads. Every extracted tree is compared byte for byte with the reference's.

    python benchmarks/download.py --quick
    python benchmarks/download.py --mb 256 --cap-mbps 20 --members 3000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from panseg.download.extract import extract_zip
from panseg.download.http import download_file


def _server(data: bytes, cap: float | None) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            start, end, status = 0, len(data), 200
            rng = self.headers.get("Range")
            if rng:
                a, _, b = rng.removeprefix("bytes=").partition("-")
                start, end, status = int(a), min(int(b) + 1 if b else len(data), len(data)), 206
            self.send_response(status)
            self.send_header("Content-Length", str(end - start))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.end_headers()
            t0, sent, block = time.monotonic(), 0, 1 << 16
            try:
                while start + sent < end:
                    n = min(block, end - start - sent)
                    self.wfile.write(data[start + sent:start + sent + n])
                    sent += n
                    if cap:  # sleep until this connection is back under its rate cap
                        ahead = sent / cap - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
            except (BrokenPipeError, ConnectionResetError):
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/f.bin"


def _reference_download(url: str, dest: Path) -> str:
    with urllib.request.urlopen(url) as resp, open(dest, "wb") as f:
        shutil.copyfileobj(resp, f, 1 << 20)
    digest = hashlib.md5()
    with open(dest, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def bench_download(mb: int, cap_mbps: float | None, connections: int, tmp: Path) -> None:
    data = random.Random(0).randbytes(mb * 1_000_000)
    md5 = hashlib.md5(data).hexdigest()
    httpd, url = _server(data, cap_mbps * 1e6 if cap_mbps else None)
    try:
        t0 = time.perf_counter()
        assert _reference_download(url, tmp / "ref.bin") == md5
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        download_file(url, tmp / "panseg.bin", size=len(data), md5=md5, connections=connections,
                      progress=False)
        t_new = time.perf_counter() - t0
    finally:
        httpd.shutdown()
        httpd.server_close()
    cap = f"{cap_mbps:g} MB/s per connection" if cap_mbps else "no cap"
    print(f"download {mb} MB, {cap}: reference stream+md5 {t_ref:.2f}s "
          f"({mb / t_ref:.0f} MB/s), panseg {connections} connections {t_new:.2f}s "
          f"({mb / t_new:.0f} MB/s), speed-up x{t_ref / t_new:.2f}")
    (tmp / "ref.bin").unlink()
    (tmp / "panseg.bin").unlink()


def _same_tree(a: Path, b: Path) -> bool:
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return fa == fb and all((a / p).read_bytes() == (b / p).read_bytes() for p in fa)


def bench_extract(members: int, kb: int, tmp: Path) -> None:
    archive = tmp / "train2017.zip"
    rnd = random.Random(1)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for i in range(members):
            zf.writestr(f"train2017/{i:012d}.jpg", rnd.randbytes(kb * 1000))
    total_mb = members * kb / 1000

    def reference() -> float:
        shutil.rmtree(tmp / "ref", ignore_errors=True)
        t0 = time.perf_counter()
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp / "ref")
        return time.perf_counter() - t0

    def panseg(workers: int) -> float:
        out = tmp / f"panseg{workers}"
        t0 = time.perf_counter()
        extract_zip(archive, out, workers=workers, progress=False)
        t = time.perf_counter() - t0
        assert _same_tree(tmp / "ref", out), "extracted trees differ"
        shutil.rmtree(out)
        return t

    # alternate the runs and keep each one's best of 3, so that page-cache and write-back
    # effects (and other jobs on a shared machine) do not favour whichever runs second
    times: dict[str, list[float]] = {"ref": [], "1": [], "4": []}
    for _ in range(3):
        times["ref"].append(reference())
        times["1"].append(panseg(1))
        times["4"].append(panseg(4))
    t_ref = min(times["ref"])
    line = f"extract {members} members, {total_mb:.0f} MB: reference extractall {t_ref:.2f}s"
    for workers in ("1", "4"):
        t = min(times[workers])
        line += f", panseg {workers} thread(s) {t:.2f}s (x{t_ref / t:.2f})"
    print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--mb", type=int, default=128, help="download size in MB")
    parser.add_argument("--cap-mbps", type=float, default=20.0,
                        help="per-connection rate cap of the capped run, MB/s")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--members", type=int, default=2000, help="zip members to extract")
    parser.add_argument("--kb", type=int, default=160, help="KB per zip member")
    args = parser.parse_args()
    if args.quick:
        args.mb, args.members = 16, 200
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_download(args.mb, None, args.connections, tmp)
        bench_download(args.mb, args.cap_mbps, args.connections, tmp)
        bench_extract(args.members, args.kb, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
