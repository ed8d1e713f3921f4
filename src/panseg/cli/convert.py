"""``panseg convert``: datasets to sharded TFRecords."""

from __future__ import annotations

import argparse
import os
import sys

from panseg import fsio
from panseg.cli.common import CommandError, add_command
from panseg.cli.storage import add_storage_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_command(
        subparsers,
        "convert",
        help="convert a dataset to sharded TFRecords",
        description="Convert a dataset to sharded TFRecords (DeepLab2's schema by default).",
        examples=(
            "  panseg convert coco --root /data/coco --out /data/records/coco\n"
            "  panseg convert coco --root /data/coco --out OUT --splits val --num-shards 10 "
            "--workers 8\n"
            "  panseg convert cityscapes --root /data/cityscapes --out /data/records/cityscapes\n"
            "  panseg convert coco --root /shared/coco --out s3://bucket/coco --engine dask "
            "--scheduler tcp://host:8786   # docs/dask.md"
        ),
    )
    sub = group.add_subparsers(dest="dataset", metavar="DATASET")
    coco = add_command(
        sub,
        "coco",
        help="COCO panoptic to DeepLab2 records",
        description=(
            "COCO panoptic (train2017/, val2017/, test2017/, annotations/panoptic_*2017.json and\n"
            "PNGs) to DeepLab2's records, field for field as deeplab2/data/build_coco_data.py:\n"
            "shards {split}-{k:05d}-of-{N:05d}.tfrecord, contiguous chunks, every shard file\n"
            "written. Shards are written atomically; a rerun skips complete shards. All problems\n"
            "are reported before anything is written (--strict), or skipped and listed\n"
            "(--skip-invalid). --schema model-garden writes what TF Model Garden's\n"
            "create_coco_tf_record.py writes (round-robin shards, 32 by default;\n"
            "docs/model-garden.md). --class-map maps COCO onto another label space."
        ),
        examples=(
            "  panseg synth coco --out /tmp/coco && \\\n"
            "  panseg convert coco --root /tmp/coco --out /tmp/records --num-shards 4\n"
            "  panseg convert coco --root /data/coco --out OUT --crowd keep --workers 16\n"
            "  panseg convert coco --root /data/coco --out OUT --schema model-garden \\\n"
            "      --include-masks --include-panoptic-masks --splits val --num-shards 8\n"
            "  panseg convert coco --root /data/coco --out OUT --class-map coco_person_vehicle_animal"
        ),
        func=run_coco,
    )
    add_common_arguments(coco, default_shards=1000, default_splits="train,val,test")
    coco.add_argument(
        "--crowd",
        choices=("ignore", "keep"),
        default="ignore",
        help="crowd thing pixels become void (ignore) or class*256 (keep)",
    )
    add_model_garden_arguments(coco)
    for action in coco._actions:  # the default depends on --schema
        if action.dest == "num_shards":
            action.type, action.default = _shards_or_auto, "auto"
            action.help = "shards per split; auto: 1000, or 32 with --schema model-garden"
    register_cityscapes(sub)
    from panseg.cli.merge import add_merge_command

    add_merge_command(sub)


def add_common_arguments(
    parser: argparse.ArgumentParser, *, default_shards: int, default_splits: str,
    root: bool = True,
) -> None:
    """Options every converter shares (``root=False``: no ``--root``, as in ``merge``)."""
    if root:
        parser.add_argument(
            "--root", required=True, help="dataset root directory (local path or URL)"
        )
    parser.add_argument("--out", required=True, help="output directory (local path or URL)")
    parser.add_argument("--splits", default=default_splits, help="comma-separated splits")
    parser.add_argument("--num-shards", type=int, default=default_shards, help="shards per split")
    parser.add_argument(
        "--workers", type=int, default=min(os.cpu_count() or 1, 8), help="worker processes"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--strict",
        dest="skip_invalid",
        action="store_false",
        help="report every problem and write nothing if there is one (default)",
    )
    mode.add_argument(
        "--skip-invalid",
        dest="skip_invalid",
        action="store_true",
        help="write the valid images; list the skipped ones in the manifest",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_engine_arguments(parser)
    add_storage_arguments(parser)
    parser.add_argument(
        "--class-map",
        metavar="FILE",
        help="map the dataset's categories onto another label space: a JSON/YAML class map "
        "(docs/class-maps.md) or a shipped one: coco_panoptic133, cityscapes19, "
        "coco_person_vehicle_animal",
    )
    parser.set_defaults(skip_invalid=False)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine local|dask`` and the Dask options (docs/dask.md)."""
    group = parser.add_argument_group("engine (docs/dask.md)")
    group.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local: --workers processes on this machine (default); dask: one Dask task per "
        "shard (needs panseg[dask]; output identical)",
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="dask: a running scheduler, e.g. tcp://host:8786, or its --scheduler-file JSON",
    )
    where.add_argument(
        "--local-workers",
        type=int,
        metavar="N",
        help="dask: start a local cluster of N worker processes (unset: one per CPU)",
    )
    group.add_argument(
        "--retries", type=int, default=2, metavar="N", help="dask: reruns of a failed task"
    )


def build_engine(args: argparse.Namespace):
    """The engine that ``args`` ask for: ``None`` (the local one) or a DaskEngine."""
    engine = getattr(args, "engine", "local")
    scheduler = getattr(args, "scheduler", None)
    local_workers = getattr(args, "local_workers", None)
    if engine != "dask":
        if scheduler or local_workers is not None:
            raise CommandError("--scheduler and --local-workers need --engine dask")
        return None
    if local_workers is not None and local_workers < 1:
        raise CommandError("--local-workers must be >= 1")
    if getattr(args, "retries", 2) < 0:
        raise CommandError("--retries must be >= 0")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise CommandError(
            "--engine dask needs dask[distributed]: pip install 'panseg[dask]'"
        ) from None
    from panseg.convert_dask import DaskEngine

    return DaskEngine(
        scheduler=scheduler,
        local_workers=local_workers,
        retries=getattr(args, "retries", 2),
        log=lambda msg: print(msg, file=sys.stderr),
    )


def parse_splits(text: str, allowed: tuple[str, ...]) -> list[str]:
    splits = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in splits if s not in allowed]
    if unknown or not splits:
        raise CommandError(f"--splits: unknown split(s) {unknown}; choose from {list(allowed)}")
    return splits


def run_conversion(args: argparse.Namespace, **kwargs) -> int:
    """Call :func:`panseg.convert.convert` and print its report or its problems."""
    from panseg.convert import ConversionFailed, TaskFailed, convert, keep_freed_memory
    from panseg.records.writer import ShardConflict

    if args.num_shards < 1:
        raise CommandError("--num-shards must be >= 1")
    keep_freed_memory()  # this process encodes too when --workers is 1
    engine = build_engine(args)
    try:
        report = convert(
            out_dir=args.out,
            num_shards=args.num_shards,
            workers=args.workers,
            engine=engine,
            skip_invalid=args.skip_invalid,
            progress=not args.no_progress,
            **kwargs,
        )
    except ConversionFailed as exc:
        for problem in exc.problems:
            print(f"problem: {problem}", file=sys.stderr)
        print(
            f"panseg: {len(exc.problems)} problem(s) found; nothing was written. "
            "Fix them, or pass --skip-invalid to write the rest.",
            file=sys.stderr,
        )
        return 1
    except ShardConflict as exc:
        raise CommandError(str(exc)) from None
    except TaskFailed as exc:
        raise CommandError(f"{exc}; complete shards are kept, rerun to resume") from None
    except ConnectionError as exc:  # the Dask scheduler cannot be reached
        raise CommandError(str(exc)) from None
    for split, rep in report.splits.items():
        skipped = f", {len(rep.skipped_items)} skipped" if rep.skipped_items else ""
        print(
            f"{split}: {rep.num_items} images{skipped}; {rep.written_shards} shards written, "
            f"{rep.skipped_shards} already complete"
        )
        for problem in rep.skipped_items:
            print(f"  skipped: {problem}")
    print(f"manifest: {report.manifest_path}")
    return 0


def _shards_or_auto(text: str) -> int | None:
    return None if text == "auto" else int(text)


def add_model_garden_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--schema`` switch and the Model Garden options of ``convert coco``."""
    parser.add_argument(
        "--schema",
        choices=("deeplab2", "model-garden"),
        default="deeplab2",
        help="record schema: DeepLab2's, or TF Model Garden's create_coco_tf_record.py",
    )
    mg = parser.add_argument_group("model-garden schema (docs/model-garden.md)")
    mg.add_argument(
        "--instances-json",
        metavar="PATH",
        help="instances JSON; {split} is replaced by the split "
        "(default ROOT/annotations/instances_{split}2017.json)",
    )
    mg.add_argument("--include-masks", action="store_true", help="write image/object/mask PNGs")
    mg.add_argument(
        "--include-panoptic-masks",
        action="store_true",
        help="write image/panoptic/category_mask and instance_mask (needed by the PQ evaluator)",
    )
    mg.add_argument(
        "--panoptic-skip-crowd",
        action="store_true",
        help="crowd segments stay void (0) in the three panoptic PNGs",
    )


def load_class_map_arg(args: argparse.Namespace):
    """The ``--class-map`` of ``args`` loaded, or ``None``; a bad map is a CommandError."""
    if not getattr(args, "class_map", None):
        return None
    from panseg.datasets.classmap import ClassMapError, load_class_map

    try:
        return load_class_map(args.class_map)
    except ClassMapError as exc:
        raise CommandError(str(exc)) from None


def mapped_label_space(args: argparse.Namespace, *, default, dataset: str):
    """The label space of a run: ``default``, or ``--class-map`` applied to ``dataset``."""
    from panseg.datasets.classmap import ClassMapError, dataset_categories
    from panseg.records.mapped import label_space

    try:
        return label_space(
            load_class_map_arg(args),
            default=default,
            categories=dataset_categories(dataset),
            dataset=dataset,
        )
    except ClassMapError as exc:
        raise CommandError(str(exc)) from None


def run_coco(args: argparse.Namespace) -> int:
    from panseg.datasets.coco import COCO_SPLITS, CocoPanopticSource
    from panseg.records.deeplab2 import PanopticDeepLab2Encoder

    splits = parse_splits(args.splits, COCO_SPLITS)
    if not fsio.isdir(args.root):
        raise CommandError(f"--root {args.root}: no such directory")
    if getattr(args, "num_shards", None) is None:
        args.num_shards = 32 if args.schema == "model-garden" else 1000
    if args.schema == "model-garden":
        return run_coco_model_garden(args, splits)
    mg_flags = [f"--{f.replace('_', '-')}" for f in (
        "instances_json", "include_masks", "include_panoptic_masks", "panoptic_skip_crowd"
    ) if getattr(args, f)]
    if mg_flags:
        raise CommandError(f"{', '.join(mg_flags)} need --schema model-garden")
    source = CocoPanopticSource(args.root)
    space = mapped_label_space(args, default=source.dataset_info(), dataset="coco")
    return run_conversion(
        args,
        source=source,
        encoder=space.wrap(PanopticDeepLab2Encoder(space.encoder_info, crowd=args.crowd)),
        splits=splits,
        dataset=space.info,
        schema="deeplab2",
        options={"task": "panoptic", "crowd": args.crowd, **space.options},
    )


def run_coco_model_garden(args: argparse.Namespace, splits: list[str]) -> int:
    import dataclasses

    from panseg.datasets.coco_instances import CocoInstancesSource
    from panseg.records.model_garden import ModelGardenEncoder

    if args.instances_json and "{split}" not in args.instances_json and len(splits) > 1:
        raise CommandError("--instances-json names one file: put {split} in it or convert one split")
    source = CocoInstancesSource(args.root, instances_json=args.instances_json or "")
    space = mapped_label_space(args, default=source.dataset_info(), dataset="coco")
    try:
        encoder = ModelGardenEncoder(
            space.encoder_info,
            include_masks=args.include_masks,
            include_panoptic_masks=args.include_panoptic_masks,
            skip_crowd=args.panoptic_skip_crowd,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    info = space.info
    if space.resolved is not None:
        print(f"model-garden: set stuff_classes_offset = {encoder.offset} in the model config")
        # Model Garden's masks keep void as 0 whatever the map's ignore label says.
        info = dataclasses.replace(info, ignore_label=0)
    return run_conversion(
        args,
        source=source,
        encoder=space.wrap(encoder),
        splits=splits,
        dataset=info,
        schema="model-garden",
        options={
            "include_masks": args.include_masks,
            "include_panoptic_masks": args.include_panoptic_masks,
            "panoptic_skip_crowd": args.panoptic_skip_crowd,
            "stuff_offset": encoder.offset,
            **space.options,
        },
        layout="round_robin",
    )


def register_cityscapes(sub: argparse._SubParsersAction) -> None:
    cityscapes = add_command(
        sub,
        "cityscapes",
        help="Cityscapes (raw gtFine + leftImg8bit) to DeepLab2 records",
        description=(
            "Cityscapes to DeepLab2's records, field for field as deeplab2/data/\n"
            "build_cityscapes_data.py writes them after cityscapesScripts' csCreateTrainIdLabelImgs\n"
            "and csCreatePanopticImgs --use-train-id, but in one step from the raw download\n"
            "(--source raw: *_gtFine_instanceIds.png / *_gtFine_labelIds.png). --source prepared\n"
            "reads cityscapesScripts' output as DeepLab2 does; both give identical records.\n"
            "Panoptic labels are raw int32 trainId*1000+instance (void 255000, road 0); semantic\n"
            "labels the trainId PNG. Any number of images (DeepLab2 requires the official sizes);\n"
            "shards {split}-{k:05d}-of-{N:05d}.tfrecord, contiguous chunks, written atomically;\n"
            "a rerun skips complete shards."
        ),
        examples=(
            "  panseg synth cityscapes --out /tmp/cityscapes && \\\n"
            "  panseg convert cityscapes --root /tmp/cityscapes --out /tmp/records\n"
            "  panseg convert cityscapes --root /data/cityscapes --out OUT --task semantic "
            "--workers 8\n"
            "  panseg convert cityscapes --root /data/cityscapes --out OUT --source prepared"
        ),
        func=run_cityscapes,
    )
    add_common_arguments(cityscapes, default_shards=10, default_splits="train,val,test")
    cityscapes.add_argument(
        "--task", choices=("panoptic", "semantic"), default="panoptic", help="label kind"
    )
    cityscapes.add_argument(
        "--crowd",
        choices=("ignore", "keep"),
        default="ignore",
        help="panoptic: crowd (group) pixels become void (ignore) or trainId*1000 (keep)",
    )
    cityscapes.add_argument(
        "--source",
        choices=("raw", "prepared"),
        default="raw",
        help="raw: the official download; prepared: cityscapesScripts' output files",
    )


def run_cityscapes(args: argparse.Namespace) -> int:
    from panseg.datasets.cityscapes import CITYSCAPES_SPLITS, CityscapesSource
    from panseg.datasets.cityscapes_labels import (
        cityscapes_panoptic_info,
        label_id_to_train_id_lut,
    )
    from panseg.records.deeplab2_semantic import SemanticPngEncoder
    from panseg.records.deeplab2_small_ids import SmallIdPanopticEncoder

    splits = parse_splits(args.splits, CITYSCAPES_SPLITS)
    if not fsio.isdir(args.root):
        raise CommandError(f"--root {args.root}: no such directory")
    info = cityscapes_panoptic_info()
    if args.task == "semantic":
        if getattr(args, "class_map", None):
            raise CommandError("--class-map applies to --task panoptic only")
        lut = None
        if args.source == "raw":
            lut = tuple(int(v) for v in label_id_to_train_id_lut())
        return run_conversion(
            args,
            source=CityscapesSource(args.root, task="semantic", mode=args.source),
            encoder=SemanticPngEncoder(info, lut=lut, source_ids_name="Cityscapes label id"),
            splits=splits,
            dataset=info,
            schema="deeplab2",
            options={"task": "semantic"},
        )
    options = {"task": "panoptic", "crowd": args.crowd}
    if getattr(args, "class_map", None):
        # Segments carry Cityscapes label ids; the map decides about every label, including
        # those the default label space leaves void.
        space = mapped_label_space(args, default=info, dataset="cityscapes")
        source = CityscapesSource(args.root, mode=args.source, keep_ignored=True)
        encoder = space.wrap(SmallIdPanopticEncoder(space.encoder_info, crowd=args.crowd))
        info, options = space.info, {**options, **space.options}
    else:
        source = CityscapesSource(args.root, mode=args.source)
        encoder = SmallIdPanopticEncoder(info, crowd=args.crowd)
    return run_conversion(
        args,
        source=source,
        encoder=encoder,
        splits=splits,
        dataset=info,
        schema="deeplab2",
        options=options,
    )
