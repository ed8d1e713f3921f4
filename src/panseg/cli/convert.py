"""``panseg convert``: datasets to sharded TFRecords."""

from __future__ import annotations

import argparse
import os
import sys

from panseg.cli.common import CommandError, add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_command(
        subparsers,
        "convert",
        help="convert a dataset to sharded TFRecords",
        description="Convert a dataset to sharded TFRecords (DeepLab2's schema by default).",
        examples=(
            "  panseg convert coco --root /data/coco --out /data/records/coco\n"
            "  panseg convert coco --root /data/coco --out OUT --splits val --num-shards 10 "
            "--workers 8"
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
            "(--skip-invalid)."
        ),
        examples=(
            "  panseg synth coco --out /tmp/coco && \\\n"
            "  panseg convert coco --root /tmp/coco --out /tmp/records --num-shards 4\n"
            "  panseg convert coco --root /data/coco --out OUT --crowd keep --workers 16"
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


def add_common_arguments(
    parser: argparse.ArgumentParser, *, default_shards: int, default_splits: str
) -> None:
    """Options every converter shares."""
    parser.add_argument("--root", required=True, help="dataset root directory")
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
    parser.set_defaults(skip_invalid=False)


def parse_splits(text: str, allowed: tuple[str, ...]) -> list[str]:
    splits = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in splits if s not in allowed]
    if unknown or not splits:
        raise CommandError(f"--splits: unknown split(s) {unknown}; choose from {list(allowed)}")
    return splits


def run_conversion(args: argparse.Namespace, **kwargs) -> int:
    """Call :func:`panseg.convert.convert` and print its report or its problems."""
    from panseg.convert import ConversionFailed, convert
    from panseg.records.writer import ShardConflict

    if args.num_shards < 1:
        raise CommandError("--num-shards must be >= 1")
    try:
        report = convert(
            out_dir=args.out,
            num_shards=args.num_shards,
            workers=args.workers,
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


def run_coco(args: argparse.Namespace) -> int:
    from panseg.datasets.coco import COCO_SPLITS, CocoPanopticSource
    from panseg.records.deeplab2 import PanopticDeepLab2Encoder

    splits = parse_splits(args.splits, COCO_SPLITS)
    if not os.path.isdir(args.root):
        raise CommandError(f"--root {args.root}: no such directory")
    source = CocoPanopticSource(args.root)
    info = source.dataset_info()
    return run_conversion(
        args,
        source=source,
        encoder=PanopticDeepLab2Encoder(info, crowd=args.crowd),
        splits=splits,
        dataset=info,
        schema="deeplab2",
        options={"task": "panoptic", "crowd": args.crowd},
    )
