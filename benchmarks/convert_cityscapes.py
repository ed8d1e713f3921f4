"""Cityscapes -> DeepLab2 records at 1024x2048: images/s for panseg and DeepLab2.

    python benchmarks/convert_cityscapes.py                  # panseg + label-painting ratio
    python benchmarks/convert_cityscapes.py --deeplab2 /tmp/csdl2 \\
        --tf-python ~/.cache/panseg/tf-venv/bin/python       # + DeepLab2's converter
    python benchmarks/convert_cityscapes.py --quick          # smoke run: 4 small images

Data: a synthetic raw Cityscapes tree (``synth_cityscapes``) of 1024x2048 frames with 15 to
22 things, about 20 to 30 panoptic segments per image, train split only.

panseg converts the raw tree (``*_instanceIds.png`` / ``*_labelIds.png``) in one step, with
1 and 2 worker processes, and the prepared tree (``--source prepared``) with 1. DeepLab2's ``data/build_cityscapes_data.py`` ``_convert_dataset``
runs in the TensorFlow environment, as DeepLab2 runs it (one process), on the same tree after
the preparation it needs (``panseg prepare cityscapes``, whose files equal cityscapesScripts'
``csCreateTrainIdLabelImgs`` and ``csCreatePanopticImgs --use-train-id`` byte for byte),
timed without the TensorFlow import and without that preparation. DeepLab2 refuses splits of
other than the official size: the driver lifts that check by setting its
``_SPLITS_TO_SIZES`` entry in its own process (no file is changed). ``--deeplab2`` is a
directory holding a checkout of google-research/deeplab2 named ``deeplab2``. Both write 10
shards. Runs alternate between the two and the best of ``--repeats`` is reported, since the
machine may be shared; panseg's times include starting its worker processes. The label-painting ratio (one table lookup against the per-segment masks of
DeepLab2's algorithm) is measured in this process on the same instanceIds PNGs.
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
from panseg.datasets.cityscapes import (
    CityscapesSource,
    instance_values,
    panoptic_segments,
    read_instance_ids,
)
from panseg.datasets.cityscapes_labels import cityscapes_panoptic_info, label_id_to_train_id_lut
from panseg.datasets.synthetic_cityscapes import synth_cityscapes
from panseg.prepare_cityscapes import prepare_cityscapes
from panseg.records.deeplab2 import paint_segments_reference
from panseg.records.deeplab2_semantic import SemanticPngEncoder
from panseg.records.deeplab2_small_ids import SmallIdPanopticEncoder, paint_small_ids

DEEPLAB2_DRIVER = """
import glob, os, sys, time
sys.path.insert(0, sys.argv[1])
from deeplab2.data import build_cityscapes_data as b
root, out, panoptic = sys.argv[2], sys.argv[3], sys.argv[4]
b.FLAGS(["b", "--cityscapes_root=" + root, "--output_dir=" + out,
         "--create_panoptic_data=" + panoptic])
n = len(glob.glob(os.path.join(root, "leftImg8bit", "train", "*", "*_leftImg8bit.png")))
b._SPLITS_TO_SIZES["train_fine"] = n  # lift the official-size check, in this process only
start = time.perf_counter()
b._convert_dataset(root, "train", out)
print(time.perf_counter() - start)
"""


def panseg_run(root: str, out: str, task: str, source: str, workers: int) -> float:
    keep_freed_memory()  # as `panseg convert` does for its own process
    info = cityscapes_panoptic_info()
    if task == "panoptic":
        encoder = SmallIdPanopticEncoder(info)
        options = {"task": "panoptic", "crowd": "ignore"}
    else:
        lut = tuple(int(v) for v in label_id_to_train_id_lut()) if source == "raw" else None
        encoder = SemanticPngEncoder(info, lut=lut)
        options = {"task": "semantic"}
    start = time.perf_counter()
    convert(
        source=CityscapesSource(root, task=task, mode=source), encoder=encoder, out_dir=out,
        splits=["train"], num_shards=10, dataset=info, schema="deeplab2", options=options,
        workers=workers, progress=False, log=lambda m: None,
    )
    return time.perf_counter() - start


def painting_ratio(root: str, limit: int = 8) -> tuple[float, float, float]:
    """ms per image: table painting, DeepLab2's per-segment masks; mean segments."""
    items, _ = CityscapesSource(root).list_split("train")
    cases = []
    for item in items[:limit]:
        ids = read_instance_ids(item.label_path)
        segments = panoptic_segments(instance_values(ids)[0])
        seg_ids = np.array([s.id for s in segments], dtype=np.int64)
        cases.append((ids, seg_ids, np.arange(len(seg_ids), dtype=np.int32)))
    t0 = time.perf_counter()
    for ids, seg_ids, values in cases:
        paint_small_ids(ids, seg_ids, values, 255000, count_areas=False)
    fast = (time.perf_counter() - t0) / len(cases)
    t0 = time.perf_counter()
    for ids, seg_ids, values in cases:
        paint_segments_reference(ids, seg_ids.tolist(), values.tolist(), 255000)
    slow = (time.perf_counter() - t0) / len(cases)
    return fast, slow, float(np.mean([len(c[1]) for c in cases]))


def deeplab2_run(args, root: str, out: str, panoptic: bool) -> float:
    os.makedirs(out)
    proc = subprocess.run(
        [args.tf_python, "-c", DEEPLAB2_DRIVER, args.deeplab2, root, out, str(panoptic)],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=30, help="train images")
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--deeplab2", help="directory holding a 'deeplab2' checkout")
    parser.add_argument("--tf-python", help="python of an environment with TensorFlow")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--quick", action="store_true", help="4 images of 256x512, 1 run")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.images, args.height, args.width, args.repeats = 4, 256, 512, 1

    work = tempfile.mkdtemp(prefix="panseg-bench-cityscapes-")
    try:
        root = os.path.join(work, "cityscapes")
        per_city = -(-args.images // 2)
        synth_cityscapes(root, images_per_city=per_city, height=args.height, width=args.width,
                         min_things=15, max_things=22, splits=("train",))
        n = 2 * per_city
        print(f"{n} train images of {args.height}x{args.width}")
        results: dict[str, float] = {"images": n}
        with_deeplab2 = bool(args.deeplab2 and args.tf_python)
        prepare_cityscapes(root, splits=("train",), workers=1, progress=False)
        configs = [("raw", 1), ("raw", 2), ("prepared", 1)]
        # Runs alternate and the best of --repeats is kept: the machine may be shared.
        best: dict[str, float] = {}
        for repeat in range(args.repeats):
            for task in ("panoptic", "semantic"):
                for source, workers in configs:
                    out = os.path.join(work, f"{task}-{source}{workers}-{repeat}")
                    seconds = panseg_run(root, out, task, source, workers)
                    key = f"panseg_{task}_{source}_{workers}w"
                    best[key] = min(best.get(key, seconds), seconds)
                if with_deeplab2:
                    out = os.path.join(work, f"deeplab2-{task}-{repeat}")
                    seconds = deeplab2_run(args, root, out, task == "panoptic")
                    key = f"deeplab2_{task}"
                    best[key] = min(best.get(key, seconds), seconds)
        for task in ("panoptic", "semantic"):
            for source, workers in configs:
                seconds = best[f"panseg_{task}_{source}_{workers}w"]
                results[f"panseg_{task}_{source}_{workers}w_img_s"] = n / seconds
                print(f"panseg {task}, --source {source}, {workers} worker(s): "
                      f"{n / seconds:7.2f} images/s ({seconds:.2f} s)")
            if with_deeplab2:
                seconds = best[f"deeplab2_{task}"]
                results[f"deeplab2_{task}_img_s"] = n / seconds
                print(f"DeepLab2 build_cityscapes_data.py {task}: {n / seconds:7.2f} images/s "
                      f"({seconds:.2f} s)")
                for source, workers in configs:
                    ratio = results[f"panseg_{task}_{source}_{workers}w_img_s"] / (n / seconds)
                    results[f"ratio_{task}_{source}_{workers}w"] = ratio
                    print(f"  ratio panseg --source {source}, {workers} worker(s) / DeepLab2: "
                          f"{ratio:.1f}x")
        if not with_deeplab2:
            print("(DeepLab2 not measured: pass --deeplab2 and --tf-python)")
        fast, slow, segments = painting_ratio(root)
        results.update(paint_table_ms=fast * 1e3, paint_reference_ms=slow * 1e3,
                       mean_segments=segments)
        print(f"label painting ({segments:.1f} segments): {fast * 1e3:.1f} ms vs per-segment "
              f"reference {slow * 1e3:.1f} ms per image: {slow / fast:.1f}x")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
