"""``panseg demo``: the whole path on a fresh machine, with no download.

1. :func:`panseg.datasets.synthetic.synth_coco` writes a COCO-panoptic tree of small images
   (class-colored stuff bands and overlapping thing shapes, crowd, void);
2. it is converted to DeepLab2 records exactly as ``panseg convert coco`` does;
3. a small Panoptic-DeepLab (ResNet-18 at a quarter width, light decoders; the shipped
   ``demo_synthetic.yaml``) trains on the CPU, evaluating on the synthetic val split;
4. the final PQ / SQ / RQ / mIoU are printed, val overlays (image | ground truth | prediction)
   and a loss / PQ plot are written.

``fast=True`` shrinks everything (a few images and steps) to check the pipeline end to end in
well under a minute; its PQ means nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from panseg import fsio

DEMO_CONFIG = "demo_synthetic"

FULL = {"images": 96, "overrides": []}  # val: 24 images (synth_coco: a quarter)
FAST = {
    "images": 8,
    "overrides": ["solver.max_iter=6", "solver.batch_size=2", "solver.warmup_iters=2",
                  "solver.log_period=2", "eval.period=0"],
}


def shipped_config(name: str) -> str:
    """Path of a config shipped with panseg (``src/panseg/configs/NAME.yaml``)."""
    here = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")
    path = os.path.join(here, name if name.endswith(".yaml") else f"{name}.yaml")
    if not os.path.isfile(path):
        names = sorted(n[:-5] for n in os.listdir(here) if n.endswith(".yaml"))
        raise FileNotFoundError(f"no shipped config {name!r}; shipped: {', '.join(names)}")
    return path


def prepare_records(out: str, *, images: int, seed: int, height: int, width: int) -> str:
    """Synthetic COCO tree under OUT/coco, DeepLab2 records under OUT/records."""
    from panseg.convert import convert
    from panseg.datasets.coco import CocoPanopticSource
    from panseg.datasets.synthetic import synth_coco
    from panseg.records.deeplab2 import PanopticDeepLab2Encoder

    root, records = os.path.join(out, "coco"), os.path.join(out, "records")
    synth_coco(root, images=images, seed=seed, height=height, width=width)
    source = CocoPanopticSource(root)
    info = source.dataset_info()
    convert(
        source=source, encoder=PanopticDeepLab2Encoder(info, crowd="ignore"), out_dir=records,
        splits=["train", "val"], num_shards=2, dataset=info, schema="deeplab2",
        options={"task": "panoptic", "crowd": "ignore"}, workers=1, progress=False,
        log=lambda msg: None,
    )
    return records


def write_overlays(run_dir: str, records: str, out_dir: str, count: int) -> list[str]:
    """``count`` val images as image | ground truth | prediction PNGs."""
    from panseg.engine.data import build_eval_dataset
    from panseg.engine.inference import Predictor, png_bytes
    from panseg.engine.run import load_run
    from panseg.viz.overlay import overlay, side_by_side

    cfg, info, model, _ = load_run(run_dir)
    predictor = Predictor(model, info, cfg.eval)
    dataset = build_eval_dataset(records, cfg.data.val_split)
    fsio.makedirs(out_dir)
    paths = []
    for index in range(min(count, dataset.num_examples)):
        sample = dataset.get(index)
        image = sample["image"].permute(1, 2, 0).numpy()
        pred = predictor(sample["image"][None])[0]
        panel = side_by_side(image, overlay(image, sample["panoptic"].numpy(), info),
                             overlay(image, pred, info))
        path = fsio.join(out_dir, f"val_{index:03d}.png")
        fsio.write_bytes_atomic(path, png_bytes(panel))
        paths.append(path)
    return paths


def run_demo(
    out: str,
    *,
    fast: bool = False,
    seed: int = 0,
    overrides: list[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo into ``out``; returns ``{"eval", "seconds", "run_dir", "overlays",
    "plot", "steps"}``."""
    from panseg.engine.config import load_config
    from panseg.engine.inference import png_bytes
    from panseg.engine.plot import training_curves
    from panseg.engine.run import read_metrics
    from panseg.engine.trainer import train

    mode = FAST if fast else FULL
    start = time.time()
    cfg = load_config(shipped_config(DEMO_CONFIG), mode["overrides"] + list(overrides or []))
    height, width = cfg.data.crop_size
    log(f"[1/4] synthetic COCO panoptic dataset: {mode['images']} train images of "
        f"{height}×{width}")
    records = prepare_records(out, images=mode["images"], seed=seed, height=height, width=width)
    log(f"[2/4] DeepLab2 records: {records}")
    cfg = load_config(shipped_config(DEMO_CONFIG),
                      [f"data.root={records}", *mode["overrides"], *(overrides or [])])
    run_dir = os.path.join(out, "run")
    log(f"[3/4] training {cfg.model.get('backbone')} for {cfg.solver.max_iter} steps "
        f"(batch {cfg.solver.batch_size}) into {run_dir}")
    result = train(cfg, run_dir, progress=progress, log=log)
    log("[4/4] overlays and training curves")
    overlays = write_overlays(run_dir, records, os.path.join(out, "overlays"), 4 if fast else 8)
    plot = os.path.join(out, "training_curves.png")
    fsio.write_bytes_atomic(plot, png_bytes(training_curves(read_metrics(run_dir))))
    seconds = time.time() - start
    return {"eval": result["eval"], "seconds": seconds, "run_dir": run_dir,
            "overlays": overlays, "plot": plot, "steps": result["step"]}
