"""COCO panoptic -> DeepLab2 records: images/s for panseg (1 and 2 workers) and DeepLab2.

    python benchmarks/convert_coco.py                       # panseg + label-painting ratio
    python benchmarks/convert_coco.py --deeplab2 /tmp/dl2 \\
        --tf-python ~/.cache/panseg/tf-venv/bin/python      # + DeepLab2's build_coco_data.py

Data: a synthetic COCO tree of 640x480 images with 10 to 30 segments (``synth_coco``).
``--deeplab2`` is a directory holding a checkout of google-research/deeplab2 named
``deeplab2``; its ``data/build_coco_data.py`` ``_convert_dataset`` runs in the TensorFlow
environment on the same files, timed without the TensorFlow import, as DeepLab2 runs it
(one process). Both write the train split into 1000 shards (DeepLab2's fixed count).
The label-painting ratio (panseg's one-pass hash lookup against the per-segment masks of
DeepLab2's algorithm) is measured in this process on the same PNGs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from panseg.convert import convert, keep_freed_memory
from panseg.datasets.coco import CocoPanopticSource, coco_panoptic_info, read_rgb_segment_ids
from panseg.datasets.synthetic import synth_coco
from panseg.records.deeplab2 import (
    PanopticDeepLab2Encoder,
    paint_segments,
    paint_segments_reference,
)

DEEPLAB2_DRIVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from deeplab2.data import build_coco_data
build_coco_data.FLAGS(["build_coco_data", "--coco_root=x", "--output_dir=x"])
start = time.perf_counter()
build_coco_data._convert_dataset(sys.argv[2], "train", sys.argv[3])
print(time.perf_counter() - start)
"""


def panseg_run(root: str, out: str, workers: int, shards: int) -> float:
    keep_freed_memory()  # as `panseg convert` does for its own process
    info = coco_panoptic_info()
    start = time.perf_counter()
    convert(
        source=CocoPanopticSource(root), encoder=PanopticDeepLab2Encoder(info), out_dir=out,
        splits=["train"], num_shards=shards, dataset=info, schema="deeplab2",
        options={"task": "panoptic", "crowd": "ignore"}, workers=workers, progress=False,
        log=lambda m: None,
    )
    return time.perf_counter() - start


def painting_ratio(root: str, limit: int = 40) -> tuple[float, float]:
    source = CocoPanopticSource(root)
    items, _ = source.list_split("train")
    cases = []
    for item in items[:limit]:
        ids = read_rgb_segment_ids(item.label_path)
        seg_ids = np.array([s.id for s in item.segments], dtype=np.uint32)
        cases.append((ids, seg_ids, np.arange(len(seg_ids), dtype=np.int32)))
    t0 = time.perf_counter()
    for ids, seg_ids, values in cases:
        paint_segments(ids, seg_ids, values, 0)
    fast = (time.perf_counter() - t0) / len(cases)
    t0 = time.perf_counter()
    for ids, seg_ids, values in cases:
        paint_segments_reference(ids, seg_ids.tolist(), values, 0)
    slow = (time.perf_counter() - t0) / len(cases)
    return fast, slow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="train images")
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--deeplab2", help="directory holding a 'deeplab2' checkout")
    parser.add_argument("--tf-python", help="python of an environment with TensorFlow")
    parser.add_argument("--quick", action="store_true", help="30 images, 10 shards")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.images, args.shards = 30, 10

    work = tempfile.mkdtemp(prefix="panseg-bench-coco-")
    try:
        root = os.path.join(work, "coco")
        synth_coco(root, images=args.images, height=480, width=640, min_things=8, max_things=26)
        n = args.images
        results: dict[str, float] = {}
        for workers in (1, 2):
            seconds = panseg_run(root, os.path.join(work, f"out{workers}"), workers, args.shards)
            results[f"panseg_{workers}w_img_s"] = n / seconds
            print(f"panseg, {workers} worker(s): {n / seconds:8.1f} images/s ({seconds:.2f} s)")
        fast, slow = painting_ratio(root)
        results.update(paint_fast_ms=fast * 1e3, paint_reference_ms=slow * 1e3)
        print(f"label painting: {fast * 1e3:.2f} ms vs per-segment reference {slow * 1e3:.2f} ms "
              f"per image: {slow / fast:.1f}x")
        if args.deeplab2 and args.tf_python:
            out = os.path.join(work, "deeplab2-out")
            os.makedirs(out)
            proc = subprocess.run(
                [args.tf_python, "-c", DEEPLAB2_DRIVER, args.deeplab2, root, out],
                capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            seconds = float(proc.stdout.strip().splitlines()[-1])
            results["deeplab2_img_s"] = n / seconds
            print(f"DeepLab2 build_coco_data.py: {n / seconds:8.1f} images/s ({seconds:.2f} s)")
            for workers in (1, 2):
                ratio = results[f"panseg_{workers}w_img_s"] / results["deeplab2_img_s"]
                print(f"ratio panseg {workers} worker(s) / DeepLab2: {ratio:.1f}x")
        else:
            print("(DeepLab2 not measured: pass --deeplab2 and --tf-python)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
