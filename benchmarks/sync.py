"""``panseg sync`` throughput against plain copies that check nothing.

A record directory of random shards (with a real manifest: sizes and CRC32C) is copied

* disk -> disk: ``panseg.sync.sync`` against ``shutil.copytree`` (the reference);
* disk -> S3 and S3 -> disk, on a local S3 server (moto, started here on 127.0.0.1):
  ``sync`` against s3fs ``put``/``get`` of the same files;

then synced again with nothing to do (resume). sync reads every byte once and computes its
CRC32C on the way, so the ratio shows what the check costs. moto keeps objects in memory in
one Python process: its figures say little about a real bucket, only about the overhead.

    python benchmarks/sync.py            # 16 shards x 16 MiB
    python benchmarks/sync.py --quick    # 4 shards x 2 MiB
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import google_crc32c
import numpy as np

from panseg import fsio
from panseg.datasets.coco import coco_panoptic_info
from panseg.records.manifest import Manifest, ShardEntry, SplitEntry, save_manifest
from panseg.sync import sync


def make_records(root: str, shards: int, size: int) -> int:
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    entries = []
    for k in range(shards):
        name = f"train-{k:05d}-of-{shards:05d}.tfrecord"
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        crc = f"{google_crc32c.value(data):08x}"
        entries.append(ShardEntry(name, 1, size, crc, (0,)))
    manifest = Manifest("deeplab2", coco_panoptic_info(), {}, {},
                        {"train": SplitEntry(tuple(entries))})
    save_manifest(manifest, root)
    return shards * size


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def row(what: str, total: int, ours: float, ref: float | None, ref_name: str) -> None:
    mb = total / 1e6
    line = f"{what:22s} sync {mb / ours:8.1f} MB/s ({ours:6.2f} s)"
    if ref is not None:
        line += f"   {ref_name} {mb / ref:8.1f} MB/s ({ref:6.2f} s)   sync/ref time {ours / ref:5.2f}"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 shards x 2 MiB")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--mib", type=int, default=16, help="MiB per shard")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--no-s3", action="store_true", help="disk -> disk only")
    args = parser.parse_args()
    shards, size = (4, 2 << 20) if args.quick else (args.shards, args.mib << 20)

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        total = make_records(src, shards, size)
        print(f"{shards} shards x {size / 2**20:.0f} MiB = {total / 1e6:.0f} MB, "
              f"--jobs {args.jobs}")
        ref = timed(lambda: shutil.copytree(src, os.path.join(tmp, "ref")))
        ours = timed(lambda: sync(src, os.path.join(tmp, "dst"), jobs=args.jobs,
                                  progress=False))
        row("disk -> disk", total, ours, ref, "copytree")
        again = timed(lambda: sync(src, os.path.join(tmp, "dst"), jobs=args.jobs,
                                   progress=False))
        print(f"{'resume (nothing to do)':22s} {again:.3f} s")
        verify = timed(lambda: sync(src, os.path.join(tmp, "dst"), jobs=args.jobs,
                                    verify=True, progress=False))
        row("verify disk (no copy)", total, verify, None, "")
        if args.no_s3:
            return

        proc, endpoint = start_moto()
        try:
            options = {"key": "bench", "secret": "bench",
                       "client_kwargs": {"endpoint_url": endpoint, "region_name": "eu-west-1"}}
            fsio.configure({"s3": options})
            fs = fsio.filesystem("s3://")
            fs.mkdir("bench")
            files = sorted(os.listdir(src))
            ref = timed(lambda: fs.put([os.path.join(src, n) for n in files],
                                       [f"bench/ref/{n}" for n in files]))
            ours = timed(lambda: sync(src, "s3://bench/dst", jobs=args.jobs, progress=False))
            row("disk -> S3 (moto)", total, ours, ref, "s3fs put")
            again = timed(lambda: sync(src, "s3://bench/dst", jobs=args.jobs,
                                       progress=False))
            print(f"{'resume S3 (nothing)':22s} {again:.3f} s")
            back = os.path.join(tmp, "back")
            os.makedirs(os.path.join(tmp, "refback"))
            ref = timed(lambda: fs.get([f"bench/ref/{n}" for n in files],
                                       [os.path.join(tmp, "refback", n) for n in files]))
            ours = timed(lambda: sync("s3://bench/dst", back, jobs=args.jobs, progress=False))
            row("S3 (moto) -> disk", total, ours, ref, "s3fs get")
        finally:
            fsio.configure(None)
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
