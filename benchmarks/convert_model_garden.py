"""COCO -> Model Garden records: images/s for panseg (1 and 2 workers) and Model Garden.

    python benchmarks/convert_model_garden.py                  # panseg + panoptic-mask ratio
    python benchmarks/convert_model_garden.py --mg-dir /tmp/mgref \\
        --tf-python ~/.cache/panseg/tf-venv/bin/python         # + create_coco_tf_record.py

Data: a synthetic COCO tree of 640x480 images with 10 to 30 segments (``synth_coco``, with
its instances JSON: polygons and crowd RLE). Both sides write the train split with
``--include-masks --include-panoptic-masks`` into 4 round-robin shards.
``--mg-dir`` is a directory holding ``official/vision/data/create_coco_tf_record.py`` and
``tfrecord_lib.py`` of tensorflow/models (e.g. from the ``tf-models-official`` wheel; drop
their unused ``tf_keras`` import) and needs pycocotools in the TensorFlow environment; its
``main()`` is timed without the TensorFlow import, with ``--num_processes`` 0 and 2.
The panoptic-mask ratio (panseg's one-pass lookup against the per-segment equality masks of
Model Garden's ``generate_coco_panoptics_masks``) is measured in this process.
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

from panseg.convert import convert
from panseg.datasets.coco_instances import CocoInstancesSource
from panseg.datasets.synthetic import synth_coco
from panseg.records.model_garden import (
    ModelGardenEncoder,
    panoptic_masks,
    panoptic_masks_reference,
)

MG_DRIVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from official.vision.data import create_coco_tf_record as ccr
root, out, procs = sys.argv[2], sys.argv[3], sys.argv[4]
ccr.FLAGS(["ccr", f"--image_dir={root}/train2017",
           f"--object_annotations_file={root}/annotations/instances_train2017.json",
           f"--panoptic_annotations_file={root}/annotations/panoptic_train2017.json",
           f"--panoptic_masks_dir={root}/annotations/panoptic_train2017",
           f"--output_file_prefix={out}/train", "--num_shards=4", "--include_masks",
           "--include_panoptic_masks", f"--num_processes={procs}"])
start = time.perf_counter()
ccr.main(None)
print(time.perf_counter() - start)
"""


def panseg_run(root: str, out: str, workers: int) -> float:
    source = CocoInstancesSource(root)
    info = source.dataset_info()
    encoder = ModelGardenEncoder(info, include_masks=True, include_panoptic_masks=True)
    start = time.perf_counter()
    convert(
        source=source, encoder=encoder, out_dir=out, splits=["train"], num_shards=4,
        dataset=info, schema="model-garden", options={}, layout="round_robin",
        workers=workers, progress=False, log=lambda m: None,
    )
    return time.perf_counter() - start


def masks_ratio(root: str, limit: int = 40) -> tuple[float, float]:
    source = CocoInstancesSource(root)
    items, _ = source.list_split("train")
    info = source.dataset_info()
    encoder = ModelGardenEncoder(info, include_panoptic_masks=True)
    is_thing = {c.id: c.is_thing for c in info.classes}
    cases = []
    for item in items[:limit]:
        raw = source.load(item)
        sem, cat, inst, _ = encoder.segment_values(raw.segments, file="", key="")
        cases.append((raw.read_ids(), raw.segments, sem, cat, inst))
    t0 = time.perf_counter()
    for ids, segments, sem, cat, inst in cases:
        panoptic_masks(ids, [s.id for s in segments], sem, cat, inst)
    fast = (time.perf_counter() - t0) / len(cases)
    t0 = time.perf_counter()
    for ids, segments, *_ in cases:
        panoptic_masks_reference(ids, segments, is_thing, skip_crowd=False)
    slow = (time.perf_counter() - t0) / len(cases)
    return fast, slow


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=100, help="train images")
    parser.add_argument("--mg-dir", help="directory holding official/vision/data/ of tf models")
    parser.add_argument("--tf-python", help="python of an environment with TensorFlow")
    parser.add_argument("--quick", action="store_true", help="12 images")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.images = 12

    work = tempfile.mkdtemp(prefix="panseg-bench-mg-")
    try:
        root = os.path.join(work, "coco")
        synth_coco(root, images=args.images, height=480, width=640, min_things=8, max_things=26)
        n = args.images
        results: dict[str, float] = {}
        for workers in (1, 2):
            seconds = panseg_run(root, os.path.join(work, f"out{workers}"), workers)
            results[f"panseg_{workers}w_img_s"] = n / seconds
            print(f"panseg, {workers} worker(s): {n / seconds:8.1f} images/s ({seconds:.2f} s)")
        fast, slow = masks_ratio(root)
        results.update(masks_fast_ms=fast * 1e3, masks_reference_ms=slow * 1e3)
        print(f"panoptic masks: {fast * 1e3:.2f} ms vs per-segment reference {slow * 1e3:.2f} ms "
              f"per image: {slow / fast:.1f}x")
        if args.mg_dir and args.tf_python:
            for procs in (0, 2):
                out = os.path.join(work, f"mg-out{procs}")
                os.makedirs(out)
                proc = subprocess.run(
                    [args.tf_python, "-c", MG_DRIVER, args.mg_dir, root, out, str(procs)],
                    capture_output=True, text=True,
                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                )
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    return 1
                seconds = float(proc.stdout.strip().splitlines()[-1])
                results[f"model_garden_{procs}p_img_s"] = n / seconds
                print(f"Model Garden, --num_processes={procs}: {n / seconds:8.1f} images/s "
                      f"({seconds:.2f} s)")
            for workers, procs in ((1, 0), (2, 2)):
                ratio = results[f"panseg_{workers}w_img_s"] / results[f"model_garden_{procs}p_img_s"]
                print(f"ratio panseg {workers} worker(s) / Model Garden {procs} processes: "
                      f"{ratio:.2f}x")
        else:
            print("(Model Garden not measured: pass --mg-dir and --tf-python)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
