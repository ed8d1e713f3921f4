"""COCO -> DeepLab2 records: images/s of the Dask engine against the local engine.

    python benchmarks/convert_dask.py            # 200 images, 16 shards, 2 workers, 3 pairs
    python benchmarks/convert_dask.py --quick    # 24 images, 4 shards, 1 pair

Data: a synthetic COCO train split of 640x480 images with 8 to 26 segments (``synth_coco``).
The local engine (``workers=N``, a spawn process pool, started in each run as the CLI does)
is the reference. The Dask engine runs on N one-thread worker processes: once with the
cluster start (what ``--engine dask --local-workers N`` costs), then ``--repeat`` times on two
running clusters (what ``--scheduler`` costs): panseg's ``local_cluster`` (workers without
Dask's ``MALLOC_TRIM_THRESHOLD_=65536``) and a ``LocalCluster`` with Dask's default worker
environment. The runs are interleaved so that all see the same load. Every run writes the
same bytes; the script checks it.

On a shared machine wall time is noisy, so the script also measures the CPU time of the
thread that encodes one shard (``time.thread_time``, user + system): in this process and as a
task on each cluster, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
import time

from panseg.convert import LocalEngine, convert
from panseg.convert_dask import DaskEngine, local_cluster
from panseg.convert_workers import _write_one_shard
from panseg.datasets.coco import CocoPanopticSource, coco_panoptic_info
from panseg.datasets.synthetic import synth_coco
from panseg.records.deeplab2 import PanopticDeepLab2Encoder


def run(root: str, out: str, engine, shards: int) -> float:
    info = coco_panoptic_info()
    start = time.perf_counter()
    convert(
        source=CocoPanopticSource(root), encoder=PanopticDeepLab2Encoder(info, crowd="ignore"),
        out_dir=out, splits=["train"], num_shards=shards, dataset=info, schema="deeplab2",
        options={"task": "panoptic", "crowd": "ignore"}, engine=engine, progress=False,
        log=lambda m: None,
    )
    return time.perf_counter() - start


def shard_cpu(root: str, out: str, count: int) -> float:
    """CPU seconds of the calling thread to encode and write one shard of ``count`` images."""
    info = coco_panoptic_info()
    source = CocoPanopticSource(root)
    items = source.list_split("train")[0][:count]
    start = time.thread_time()
    _write_one_shard(
        source, PanopticDeepLab2Encoder(info, crowd="ignore"), out, "cpu.tfrecord", items,
        "-", "-", {},
    )
    return time.thread_time() - start


def same_tree(a: str, b: str) -> bool:
    names = sorted(n for n in os.listdir(a) if os.path.isfile(os.path.join(a, n)))
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return not mismatch and not errors


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved local/dask pairs")
    parser.add_argument("--quick", action="store_true", help="24 images, 4 shards")
    args = parser.parse_args()
    if args.quick:
        args.images, args.shards, args.repeat = 24, 4, 1

    from distributed import Client, LocalCluster

    work = tempfile.mkdtemp(prefix="panseg-bench-dask-")
    try:
        root = os.path.join(work, "coco")
        synth_coco(root, images=args.images, height=480, width=640, min_things=8, max_things=26)
        n, w = args.images, args.workers
        outs = []

        def timed(name: str, engine) -> float:
            out = os.path.join(work, f"{name}-{len(outs)}")
            outs.append(out)
            return n / run(root, out, engine, args.shards)

        cold = timed("cold", DaskEngine(local_workers=w))
        print(f"dask, local cluster started in the run: {cold:7.1f} images/s", flush=True)
        rates: dict[str, list[float]] = {"local": [], "dask": [], "dask-defaults": []}
        with local_cluster(w) as tuned, Client(tuned) as tuned_client, LocalCluster(
            n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None
        ) as plain, Client(plain) as plain_client:
            for _ in range(args.repeat):
                rates["local"].append(timed("local", LocalEngine(w)))
                rates["dask"].append(timed("dask", DaskEngine(client=tuned_client)))
                rates["dask-defaults"].append(
                    timed("defaults", DaskEngine(client=plain_client))
                )
                print(f"local engine ({w} processes) {rates['local'][-1]:6.1f}, dask "
                      f"(local_cluster) {rates['dask'][-1]:6.1f}, dask (Dask's default worker "
                      f"environment) {rates['dask-defaults'][-1]:6.1f} images/s; load average "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
            k = min(n, 40)
            cpu: dict[str, list[float]] = {"local": [], "dask": [], "dask-defaults": []}
            for _ in range(args.repeat):
                cpu["local"].append(shard_cpu(root, os.path.join(work, "cpu"), k))
                for name, c in (("dask", tuned_client), ("dask-defaults", plain_client)):
                    cpu[name].append(c.submit(
                        shard_cpu, root, os.path.join(work, "cpu"), k, pure=False
                    ).result())
            print(f"CPU per image (one shard of {k}, best of {args.repeat}): " + ", ".join(
                f"{name} {1e3 * min(v) / k:.2f} ms" for name, v in cpu.items()))
        best = {k: max(v) for k, v in rates.items()}
        print(f"best of {args.repeat}: " + ", ".join(f"{k} {v:.1f}" for k, v in best.items())
              + " images/s")
        print(f"ratio dask / local: {best['dask'] / best['local']:.2f}x; "
              f"dask with Dask's default worker environment / local: "
              f"{best['dask-defaults'] / best['local']:.2f}x")
        for out in outs[1:]:
            if not same_tree(outs[0], out):
                print(f"ERROR: {out} differs from {outs[0]}")
                return 1
        print("outputs: byte-for-byte identical")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
