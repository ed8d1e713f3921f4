"""Data pipeline throughput and the Panoptic-DeepLab target generator against its references.

    python benchmarks/data_pipeline.py                      # panseg vs its slow reference
    python benchmarks/data_pipeline.py --detectron2 /tmp/detectron2   # + detectron2's generator
    python benchmarks/data_pipeline.py --quick              # smoke run

1. Target generation on a seeded synthetic Cityscapes-like 1024×2048 label (30 instances, two
   crowd regions, void) and a COCO-like 640×640 label: panseg's vectorized generator against
   the slow spec reference and, with ``--detectron2 CHECKOUT``, detectron2's
   ``PanopticDeepLabTargetGenerator`` loaded from
   ``CHECKOUT/projects/Panoptic-DeepLab/panoptic_deeplab/target_generator.py`` with importlib
   (it needs only numpy and torch). Runs alternate, medians are reported, and the outputs are
   checked for exact equality.
2. Samples/s of the whole pipeline (read record → decode → augment → targets → tensors) with 0
   and 2 DataLoader workers, for Cityscapes (PNG 1024×2048, crop 512×1024) and COCO (JPEG
   640×480, crop 640×640) synthetic records written to a temporary directory.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from panseg.data.collate import PanopticCollate
from panseg.data.records_dataset import PanopticRecordDataset
from panseg.data.targets import PanopticTargetGenerator
from panseg.data.targets_reference import reference_targets
from panseg.data.transforms import cityscapes_train_transforms, coco_train_transforms
from panseg.datasets.info import ClassInfo, DatasetInfo
from panseg.records.example import encode_example
from panseg.records.manifest import Manifest, ShardEntry, SplitEntry, save_manifest
from panseg.records.tfrecord import TFRecordWriter

D2_FILE = "projects/Panoptic-DeepLab/panoptic_deeplab/target_generator.py"
D2_NAMES = {
    "semantic": "sem_seg",
    "semantic_weights": "sem_seg_weights",
    "center": "center",
    "center_weights": "center_weights",
    "offset": "offset",
    "offset_weights": "offset_weights",
}


def info_for(kind: str) -> DatasetInfo:
    if kind == "cityscapes":
        classes = [ClassInfo(i, f"c{i}", 11 <= i <= 18, (i, i, i)) for i in range(19)]
        return DatasetInfo("synthetic_cityscapes", tuple(classes), 255, 1000, 19)
    classes = [ClassInfo(i, f"c{i}", i <= 80, (i, i, i)) for i in range(1, 134)]
    return DatasetInfo("synthetic_coco", tuple(classes), 0, 256, 134)


def synthetic_label(kind: str, height: int, width: int, n_things: int, seed: int) -> np.ndarray:
    """A street-scene-like panoptic label: stuff bands, void specks, ellipse/box things, two
    of them crowd (instance 0). int32 H×W."""
    info = info_for(kind)
    rng = np.random.default_rng(seed)
    div, things = info.label_divisor, sorted(info.thing_ids)
    stuff = sorted(info.stuff_ids)
    pan = np.empty((height, width), np.int32)
    bands = np.sort(rng.integers(0, height, 4))
    edges = [0, *bands.tolist(), height]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        pan[a:b] = int(rng.choice(stuff)) * div
    pan[: height // 40] = info.ignore_label * div  # a void strip (ego vehicle / border)
    yy, xx = np.ogrid[:height, :width]
    counters: dict[int, int] = {}
    for k in range(n_things):
        cls = int(rng.choice(things))
        counters[cls] = counters.get(cls, 0) + 1
        inst = 0 if k in (3, 17) else counters[cls]
        size = rng.lognormal(np.log(height / 24), 0.6)  # half-size, pixels
        h = max(2, int(size * rng.uniform(0.6, 1.6)))
        w = max(2, int(size * rng.uniform(0.6, 1.6)))
        cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
        y0, y1, x0, x1 = max(cy - h, 0), min(cy + h, height), max(cx - w, 0), min(cx + w, width)
        if k % 2:
            m = ((yy[y0:y1] - cy) / h) ** 2 + ((xx[:, x0:x1] - cx) / w) ** 2 <= 1
            pan[y0:y1, x0:x1][m] = cls * div + inst
        else:
            pan[y0:y1, x0:x1] = cls * div + inst
    return pan


def synthetic_image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    base = 255 * (0.5 + 0.25 * np.sin(6 * x + 3 * y + rng.uniform(0, 6, 3)))
    noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def segments_info(pan: np.ndarray, info: DatasetInfo) -> list[dict]:
    """detectron2's segments_info for a panoptic label (void is not a segment)."""
    out = []
    for v in np.unique(pan):
        cat, inst = int(v) // info.label_divisor, int(v) % info.label_divisor
        if cat == info.ignore_label:
            continue
        crowd = int(cat in info.thing_ids and inst == 0)
        out.append({"id": int(v), "category_id": cat, "iscrowd": crowd})
    return out


def load_detectron2(checkout: str):
    path = os.path.join(checkout, D2_FILE)
    spec = importlib.util.spec_from_file_location("d2_target_generator", path)
    if spec is None or not os.path.exists(path):
        raise SystemExit(f"--detectron2: {path} not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PanopticDeepLabTargetGenerator


def timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def bench_targets(kind: str, d2_class, reps: int, reference_reps: int) -> None:
    info = info_for(kind)
    size, sigma = ((1024, 2048), 10) if kind == "cityscapes" else ((640, 640), 8)
    pan = synthetic_label(kind, *size, n_things=30, seed=1)
    thing_px = np.isin(pan // info.label_divisor, list(info.thing_ids)).mean()
    segs = segments_info(pan, info)
    gen = PanopticTargetGenerator.for_dataset(info, sigma=sigma)
    fast = gen(pan)
    print(
        f"\n[targets] {kind} {size[0]}x{size[1]}, sigma {sigma}, {len(segs)} segments "
        f"({sum(s['category_id'] in info.thing_ids for s in segs)} things, "
        f"{sum(s['iscrowd'] for s in segs)} crowd), thing pixels {thing_px:.0%}"
    )
    ref = reference_targets(
        pan,
        ignore_label=info.ignore_label,
        label_divisor=info.label_divisor,
        thing_ids=info.thing_ids,
        sigma=sigma,
    )
    for k in fast:
        if not np.array_equal(fast[k], ref[k]):
            raise SystemExit(f"{kind}: panseg and the reference differ in {k}")
    candidates = {"panseg": lambda: gen(pan)}
    if d2_class is not None:
        d2 = d2_class(
            ignore_label=info.ignore_label,
            thing_ids=list(info.thing_ids),
            sigma=sigma,
            ignore_stuff_in_offset=True,
            small_instance_area=4096,
            small_instance_weight=3,
            ignore_crowd_in_semantic=False,
        )
        out = d2(pan, segs)
        for k, name in D2_NAMES.items():
            theirs = out[name].numpy()
            if not np.array_equal(fast[k].reshape(theirs.shape), theirs):
                raise SystemExit(f"{kind}: panseg and detectron2 differ in {k}")
        print("  outputs identical to detectron2's (all six targets)")
        candidates["detectron2"] = lambda: d2(pan, segs)
    times = {name: [] for name in candidates}
    for _ in range(reps):  # alternate, so load on the shared machine hits both alike
        for name, fn in candidates.items():
            times[name] += timed(fn, 1)
    ref_t = timed(
        lambda: reference_targets(
            pan,
            ignore_label=info.ignore_label,
            label_divisor=info.label_divisor,
            thing_ids=info.thing_ids,
            sigma=sigma,
        ),
        reference_reps,
    )
    med = {name: statistics.median(t) * 1000 for name, t in times.items()}
    ref_ms = statistics.median(ref_t) * 1000
    print(f"  panseg      {med['panseg']:8.1f} ms  (median of {reps})")
    print(f"  reference   {ref_ms:8.1f} ms  x{ref_ms / med['panseg']:.1f}")
    if "detectron2" in med:
        ratio = med["detectron2"] / med["panseg"]
        print(f"  detectron2  {med['detectron2']:8.1f} ms  x{ratio:.1f}")


def write_records(directory: str, kind: str, count: int) -> None:
    info = info_for(kind)
    h, w, fmt = (1024, 2048, "png") if kind == "cityscapes" else (480, 640, "jpeg")
    name = "train-00000-of-00001.tfrecord"
    with open(os.path.join(directory, name), "wb") as f:
        writer = TFRecordWriter(f)
        for i in range(count):
            buf = io.BytesIO()
            Image.fromarray(synthetic_image(h, w, i)).save(
                buf, format="PNG" if fmt == "png" else "JPEG", quality=90
            )
            pan = synthetic_label(kind, h, w, n_things=30 if kind == "cityscapes" else 12, seed=i)
            writer.write(
                encode_example(
                    {
                        "image/encoded": buf.getvalue(),
                        "image/filename": f"{kind}{i}",
                        "image/format": fmt,
                        "image/height": h,
                        "image/width": w,
                        "image/channels": 3,
                        "image/segmentation/class/encoded": pan.astype("<i4").tobytes(),
                        "image/segmentation/class/format": "raw",
                    }
                )
            )
    shard = ShardEntry(name, count, writer.size, writer.crc32c, tuple(writer.offsets))
    manifest = Manifest(
        "deeplab2", info, {"dataset": "synthetic"}, {}, {"train": SplitEntry((shard,))}
    )
    save_manifest(manifest, directory)


def bench_pipeline(kind: str, count: int, workers_list: list[int]) -> None:
    info = info_for(kind)
    with tempfile.TemporaryDirectory() as tmp:
        write_records(tmp, kind, count)
        void = info.void_label
        if kind == "cityscapes":
            transforms, sigma = cityscapes_train_transforms(label_fill=void), 10
        else:
            transforms, sigma = coco_train_transforms(label_fill=void), 8
        ds = PanopticRecordDataset(
            tmp,
            split="train",
            shuffle=True,
            seed=0,
            transforms=transforms,
            target_generator=PanopticTargetGenerator.for_dataset(info, sigma=sigma),
        )
        crop = "512x1024" if kind == "cityscapes" else "640x640"
        print(f"\n[pipeline] {kind}: {count} records, crop {crop}, sigma {sigma}")
        # Stage split in this process.
        stages = {"read": 0.0, "decode": 0.0, "augment": 0.0, "targets": 0.0}
        from panseg.data.decode import decode_record

        for index in range(count):
            t0 = time.perf_counter()
            data = ds.read_record(*ds.locate(index))
            t1 = time.perf_counter()
            sample = decode_record(data)
            t2 = time.perf_counter()
            sample = transforms(sample, ds.sample_rng(index))
            t3 = time.perf_counter()
            ds.target_generator(sample["panoptic"])
            t4 = time.perf_counter()
            for k, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                stages[k] += dt
        print(
            "  per sample: "
            + ", ".join(f"{k} {v / count * 1000:.1f} ms" for k, v in stages.items())
        )
        collate = PanopticCollate(ignore_label=info.ignore_label, void_label=void)
        for workers in workers_list:
            loader = DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=collate)
            start = time.perf_counter()
            n = sum(int(b["image"].shape[0]) for b in loader)
            rate = n / (time.perf_counter() - start)
            print(f"  {workers} workers: {rate:6.2f} samples/s ({n} samples, batch 2)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detectron2", help="a checkout of facebookresearch/detectron2")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--only", choices=("targets", "pipeline"), help="run one of the two parts")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    d2_class = load_detectron2(args.detectron2) if args.detectron2 else None
    reps = 3 if args.quick else 9
    if args.only != "pipeline":
        for kind in ("cityscapes", "coco"):
            bench_targets(kind, d2_class, reps, 1)
    if args.only != "targets":
        bench_pipeline("cityscapes", 4 if args.quick else 24, [0, 2])
        bench_pipeline("coco", 6 if args.quick else 48, [0, 2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
