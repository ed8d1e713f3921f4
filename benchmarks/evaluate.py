"""Seconds to compute PQ over COCO-size panoptic PNG + JSON pairs: panseg vs. the reference.

Writes a synthetic COCO panoptic ground truth and a perturbed prediction (640x480 by default,
about 30 segments per image with things, stuff, crowd and VOID), then times
``panseg.evaluation.coco_format.evaluate_coco_panoptic`` with 1 and 2 workers. The reference is
panopticapi's ``pq_compute`` with its default workers (one per CPU) when ``--panopticapi DIR``
points at a checkout of github.com/cocodataset/panopticapi (it needs only numpy and Pillow);
without it, the reference is panseg's slow ``pq_reference`` (single process). The figures of
both runs are compared to 1e-9. The in-memory path (``PanopticEvaluator.update`` on integer
arrays) is timed on up to 100 decoded pairs, and every method's CPU time in one process
(``time.process_time``) is printed too: the machine is shared, CPU time is the steadier figure.

    python benchmarks/evaluate.py --quick
    python benchmarks/evaluate.py --images 500 --panopticapi /tmp/pqcheck/panopticapi_src
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

NUM_STUFF, NUM_THINGS = 53, 80  # COCO panoptic: 80 thing and 53 stuff categories


def _categories() -> list[dict]:
    cats = [{"id": k + 1, "name": f"thing{k}", "isthing": 1} for k in range(NUM_THINGS)]
    cats += [{"id": 100 + k, "name": f"stuff{k}", "isthing": 0} for k in range(NUM_STUFF)]
    return cats


def _id2rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def _synth_pair(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, list, np.ndarray, list]:
    """One GT id map + segments and a perturbed prediction id map + segments."""
    sem = np.zeros((h, w), np.int64)  # category id, 0 = void
    inst = np.zeros((h, w), np.int64)
    stuff = rng.choice(np.arange(100, 100 + NUM_STUFF), size=rng.integers(3, 8), replace=False)
    for k, cat in enumerate(stuff):  # horizontal bands of stuff
        y0 = int(k * h / len(stuff))
        sem[y0:, :] = cat
    for n in range(1, rng.integers(10, 30)):  # thing boxes with rounded-ish shapes
        cat = int(rng.integers(1, NUM_THINGS + 1))
        bh, bw = int(rng.integers(8, h // 3)), int(rng.integers(8, w // 3))
        y, x = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
        yy, xx = np.ogrid[:bh, :bw]
        ell = ((yy - bh / 2) / (bh / 2)) ** 2 + ((xx - bw / 2) / (bw / 2)) ** 2 <= 1
        sem[y : y + bh, x : x + bw][ell] = cat
        inst[y : y + bh, x : x + bw][ell] = 0 if rng.random() < 0.1 else n  # 10 % crowd
    vy, vx = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 20))
    sem[vy : vy + 20, vx : vx + int(rng.integers(5, 60))] = 0  # a void strip
    inst[sem == 0] = 0

    def to_segments(sem: np.ndarray, inst: np.ndarray, crowd_ok: bool) -> tuple[np.ndarray, list]:
        key = sem * 1000 + inst
        uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        ids = rng.choice(np.arange(1, 256**3), size=len(uniq), replace=False)
        ids[uniq == 0] = 0
        segs = []
        for u, sid, area in zip(uniq.tolist(), ids.tolist(), counts.tolist(), strict=True):
            if u == 0:
                continue
            cat, k = divmod(u, 1000)
            segs.append(
                {
                    "id": sid,
                    "category_id": cat,
                    "iscrowd": int(crowd_ok and cat <= NUM_THINGS and k == 0),
                    "area": area,
                    "bbox": [0, 0, 1, 1],
                }
            )
        return ids[inverse.reshape(sem.shape)], segs

    gt_map, gt_segs = to_segments(sem, inst, True)
    # prediction: shifted, some categories swapped, some instances merged, void blobs
    dy, dx = (int(v) for v in rng.integers(-6, 7, size=2))
    psem = np.roll(sem, (dy, dx), axis=(0, 1))
    pinst = np.roll(inst, (dy, dx), axis=(0, 1))
    pinst[(psem >= 1) & (psem <= NUM_THINGS) & (pinst == 0)] = 999
    for _ in range(int(rng.integers(0, 4))):
        by, bx = int(rng.integers(0, h - 40)), int(rng.integers(0, w - 40))
        psem[by : by + 40, bx : bx + 40] = 0 if rng.random() < 0.5 else int(rng.integers(1, 81))
    swap = rng.random() < 0.3
    if swap:
        a = int(rng.integers(1, NUM_THINGS + 1))
        psem[psem == a] = a % NUM_THINGS + 1
    pinst[psem == 0] = 0
    pinst[psem >= 100] = 0
    pred_map, pred_segs = to_segments(psem, pinst, False)
    for s in pred_segs:
        s.pop("iscrowd")
    return gt_map, gt_segs, pred_map, pred_segs


def make_dataset(root: str, images: int, height: int, width: int, seed: int = 0) -> dict:
    """Write gt.json, gt/, pred.json, pred/ under ``root``; return their paths."""
    rng = np.random.default_rng(seed)
    paths = {k: os.path.join(root, k) for k in ("gt", "pred")}
    for p in paths.values():
        os.makedirs(p, exist_ok=True)
    gt_anns, pred_anns, imgs = [], [], []
    for i in range(images):
        gt_map, gt_segs, pred_map, pred_segs = _synth_pair(rng, height, width)
        name = f"{i:012d}.png"
        Image.fromarray(_id2rgb(gt_map)).save(os.path.join(paths["gt"], name))
        Image.fromarray(_id2rgb(pred_map)).save(os.path.join(paths["pred"], name))
        imgs.append({"id": i, "file_name": name.replace(".png", ".jpg"), "height": height, "width": width})
        gt_anns.append({"image_id": i, "file_name": name, "segments_info": gt_segs})
        pred_anns.append({"image_id": i, "file_name": name, "segments_info": pred_segs})
    cats = _categories()
    for name, anns in (("gt", gt_anns), ("pred", pred_anns)):
        with open(os.path.join(root, f"{name}.json"), "w") as f:
            json.dump({"images": imgs, "annotations": anns, "categories": cats}, f)
    return {
        "gt_json": os.path.join(root, "gt.json"),
        "gt_dir": paths["gt"],
        "pred_json": os.path.join(root, "pred.json"),
        "pred_dir": paths["pred"],
    }


def _flatten(result: dict) -> dict[str, float]:
    out = {}
    for group in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq", "n"):
            out[f"{group}.{key}"] = result[group][key]
    for cat, vals in result["per_class"].items():
        for key in ("pq", "sq", "rq"):
            out[f"{int(cat)}.{key}"] = vals[key]
    return out


def _reference_panseg(paths: dict) -> dict:
    """panseg's slow oracle over the same files (single process)."""
    from panseg.evaluation.coco_format import (
        categories_from_json,
        load_json,
        match_annotations,
        read_id_png,
    )
    from panseg.evaluation.pq import PQStats
    from panseg.evaluation.pq_reference import reference_average, reference_image_stats

    gt = load_json(paths["gt_json"], "gt")
    pred = load_json(paths["pred_json"], "pred")
    cats = categories_from_json(gt)
    stats = PQStats.zeros(len(cats))
    for g, p in match_annotations(gt, pred):
        stats += reference_image_stats(
            read_id_png(os.path.join(paths["gt_dir"], g["file_name"])),
            read_id_png(os.path.join(paths["pred_dir"], p["file_name"])),
            g["segments_info"],
            p["segments_info"],
            cats,
        )
    res = {name: reference_average(stats, cats, t) for name, t in (("All", None), ("Things", True), ("Stuff", False))}
    res["per_class"] = {}
    return res


def _in_memory(paths: dict, limit: int, cpu: bool = False) -> tuple[float, int, dict, dict]:
    """Seconds of ``PanopticEvaluator.update`` on integer arrays (DeepLab2 convention) decoded
    from the first ``limit`` pairs, with its PQ and the file path's PQ over the same pairs."""
    from panseg.datasets.info import ClassInfo, DatasetInfo
    from panseg.evaluation.coco_format import (
        accumulate_pairs,
        categories_from_json,
        load_json,
        match_annotations,
        read_id_png,
    )
    from panseg.evaluation.evaluator import PanopticEvaluator
    from panseg.evaluation.pq import category_index, summarize_pq

    gt = load_json(paths["gt_json"], "gt")
    cats = categories_from_json(gt)
    info = DatasetInfo(
        name="synthetic_coco",
        classes=tuple(ClassInfo(c.id, c.name, c.isthing, (0, 0, 0)) for c in cats),
        ignore_label=0,
        label_divisor=256,
        num_classes=max(c.id for c in cats) + 1,
    )
    pairs = match_annotations(gt, load_json(paths["pred_json"], "pred"))[:limit]

    def panoptic(ids: np.ndarray, segs: list) -> np.ndarray:
        lut = {0: 0}
        for k, s in enumerate(segs):
            thing = s["category_id"] <= NUM_THINGS and not s.get("iscrowd", 0)
            lut[s["id"]] = s["category_id"] * 256 + (k + 1 if thing else 0)
        keys = np.array(list(lut), np.int64)
        values = np.array(list(lut.values()), np.int64)
        order = np.argsort(keys)
        return values[order][np.searchsorted(keys[order], ids)].astype(np.int32)

    arrays = []
    for g, p in pairs:
        gt_ids = read_id_png(os.path.join(paths["gt_dir"], g["file_name"]))
        pred_ids = read_id_png(os.path.join(paths["pred_dir"], p["file_name"]))
        arrays.append((panoptic(pred_ids, p["segments_info"]), panoptic(gt_ids, g["segments_info"])))
    evaluator = PanopticEvaluator(info, semantic=False)
    clock = time.process_time if cpu else time.perf_counter
    t0 = clock()
    for pred, gt_arr in arrays:
        evaluator.update(pred, gt_arr)
    seconds = clock() - t0
    files = summarize_pq(
        accumulate_pairs(pairs, paths["gt_dir"], paths["pred_dir"], category_index(cats), 1, False)[0],
        cats,
    )
    return seconds, len(arrays), evaluator.summarize()["panoptic"], files


def _cpu_costs(paths: dict, panopticapi: str | None, limit: int) -> dict[str, float]:
    """CPU milliseconds per image pair of each method run in this process, first ``limit`` pairs."""
    from panseg.evaluation.coco_format import (
        accumulate_pairs,
        categories_from_json,
        load_json,
        match_annotations,
    )
    from panseg.evaluation.pq import category_index

    gt = load_json(paths["gt_json"], "gt")
    pairs = match_annotations(gt, load_json(paths["pred_json"], "pred"))[:limit]
    cats = categories_from_json(gt)
    out = {}
    if panopticapi:
        from panopticapi.evaluation import pq_compute_single_core

        categories = {c["id"]: c for c in gt["categories"]}
        t0 = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            pq_compute_single_core(0, pairs, paths["gt_dir"], paths["pred_dir"], categories)
        out["panopticapi pq_compute_single_core"] = 1000 * (time.process_time() - t0) / len(pairs)
    else:
        from panseg.evaluation.coco_format import read_id_png
        from panseg.evaluation.pq import PQStats
        from panseg.evaluation.pq_reference import reference_image_stats

        t0 = time.process_time()
        stats = PQStats.zeros(len(cats))
        for g, p in pairs:
            stats += reference_image_stats(
                read_id_png(os.path.join(paths["gt_dir"], g["file_name"])),
                read_id_png(os.path.join(paths["pred_dir"], p["file_name"])),
                g["segments_info"], p["segments_info"], cats,
            )
        out["panseg pq_reference"] = 1000 * (time.process_time() - t0) / len(pairs)
    t0 = time.process_time()
    accumulate_pairs(pairs, paths["gt_dir"], paths["pred_dir"], category_index(cats), 1, False)
    out["panseg files (decode + score)"] = 1000 * (time.process_time() - t0) / len(pairs)
    in_memory_cpu = _in_memory(paths, limit, cpu=True)[0]
    out["panseg in memory (PanopticEvaluator.update)"] = 1000 * in_memory_cpu / len(pairs)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--quick", action="store_true", help="20 images, smoke run")
    parser.add_argument("--repeat", type=int, default=1, help="alternate all methods R times, report medians")
    parser.add_argument("--panopticapi", help="checkout of cocodataset/panopticapi to compare with")
    parser.add_argument("--data", help="reuse/write the synthetic data here (default: a temp dir)")
    args = parser.parse_args()
    if args.quick:
        args.images = 20

    from panseg.evaluation.coco_format import evaluate_coco_panoptic

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or tmp
        t0 = time.perf_counter()
        if os.path.exists(os.path.join(root, "gt.json")):
            paths = {
                "gt_json": os.path.join(root, "gt.json"),
                "gt_dir": os.path.join(root, "gt"),
                "pred_json": os.path.join(root, "pred.json"),
                "pred_dir": os.path.join(root, "pred"),
            }
        else:
            paths = make_dataset(root, args.images, args.height, args.width)
        n = len(json.load(open(paths["gt_json"]))["annotations"])
        print(f"data: {n} image pairs of {args.width}x{args.height} ({time.perf_counter() - t0:.1f} s to prepare)")

        if args.panopticapi:
            sys.path.insert(0, args.panopticapi)
            from panopticapi.evaluation import pq_compute

            ref_name = f"panopticapi pq_compute ({os.cpu_count()} processes)"

            def reference() -> dict:
                with contextlib.redirect_stdout(io.StringIO()):
                    return pq_compute(paths["gt_json"], paths["pred_json"], paths["gt_dir"], paths["pred_dir"])
        else:
            ref_name = "panseg pq_reference (slow oracle, 1 process)"

            def reference() -> dict:
                return _reference_panseg(paths)

        def files(workers: int):
            return lambda: evaluate_coco_panoptic(
                paths["gt_json"], paths["gt_dir"], paths["pred_json"], paths["pred_dir"],
                workers=workers, progress=False,
            )

        methods = {ref_name: reference, "panseg, 1 worker": files(1), "panseg, 2 workers": files(2)}
        runs: dict[str, list[float]] = {name: [] for name in methods}
        mem_name = "panseg in memory: PanopticEvaluator.update"
        runs[mem_name] = []
        results: dict[str, dict] = {}
        mem_n = min(n, 100)
        for _ in range(args.repeat):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                results[name] = fn()
                runs[name].append(time.perf_counter() - t0)
            mem_seconds, mem_n, mem_result, mem_files = _in_memory(paths, mem_n)
            runs[mem_name].append(mem_seconds * n / mem_n)
        times = {name: float(np.median(v)) for name, v in runs.items()}
        cpu = _cpu_costs(paths, args.panopticapi, mem_n)

        ours = _flatten(results["panseg, 1 worker"])
        ref = results[ref_name]
        theirs = _flatten({**ref, "per_class": ref.get("per_class", {})})
        worst = max(abs(float(value) - float(ours[key])) for key, value in theirs.items())
        two = _flatten(results["panseg, 2 workers"])
        same_2 = max(abs(a - b) for a, b in zip(two.values(), ours.values(), strict=True))
        mem_diff = max(
            abs(float(a) - float(b))
            for a, b in zip(_flatten(mem_result).values(), _flatten(mem_files).values(), strict=True)
        )
        print(f"{'method (median of ' + str(args.repeat) + ')':48s} {'seconds':>8s} {'ms/img':>7s} {'ratio':>6s}  all runs (s)")
        for name, sec in times.items():
            print(
                f"{name:48s} {sec:8.2f} {1000 * sec / n:7.1f} {times[ref_name] / sec:5.1f}x  "
                + " ".join(f"{v:.2f}" for v in runs[name])
            )
        print("\nCPU time of one process (time.process_time, robust to other jobs), per image pair:")
        ref_cpu = cpu.get("panopticapi pq_compute_single_core") or cpu["panseg pq_reference"]
        for name, ms in cpu.items():
            print(f"  {name:46s} {ms:7.2f} ms  {ref_cpu / ms:5.1f}x")
        print(
            f"(in memory: timed on {mem_n} pairs already decoded to integer arrays, scaled to {n}; "
            f"its PQ differs from the file path on the same pairs by {mem_diff:.1e})"
        )
        r = results["panseg, 1 worker"]
        print(
            f"PQ {100 * r['All']['pq']:.3f}  things {100 * r['Things']['pq']:.3f}  "
            f"stuff {100 * r['Stuff']['pq']:.3f}; largest difference to the reference: {worst:.2e} "
            f"over {len(theirs)} values; 1 vs 2 workers: {same_2:.1e}"
        )
        if worst > 1e-9 or mem_diff > 1e-9 or same_2 > 1e-9:
            print("MISMATCH with the reference", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
