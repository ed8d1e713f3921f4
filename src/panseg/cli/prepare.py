"""``panseg prepare``: the derived files other tools expect beside a dataset."""

from __future__ import annotations

import argparse
import os

from panseg.cli.common import CommandError, add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_command(
        subparsers,
        "prepare",
        help="write the derived label files other tools expect",
        description="Write the derived label files other tools read (not needed by panseg).",
        examples="  panseg prepare cityscapes --root /data/cityscapes",
    )
    sub = group.add_subparsers(dest="dataset", metavar="DATASET")
    cityscapes = add_command(
        sub,
        "cityscapes",
        help="what csCreateTrainIdLabelImgs and csCreatePanopticImgs write",
        description=(
            "Write what cityscapesScripts' csCreateTrainIdLabelImgs and csCreatePanopticImgs\n"
            "[--use-train-id] write, with identical pixels, JSON and (with the same Pillow and\n"
            "zlib) bytes: gtFine/{split}/{city}/*_gtFine_labelTrainIds.png (from\n"
            "*_gtFine_labelIds.png), gtFine/cityscapes_panoptic_{split}_trainId.json and its\n"
            "PNGs (--ids train, what DeepLab2 reads) and/or the label-id version (--ids label).\n"
            "Files go under OUT/gtFine (default: ROOT/gtFine, where cityscapesScripts writes)."
        ),
        examples=(
            "  panseg prepare cityscapes --root /data/cityscapes --workers 8\n"
            "  panseg prepare cityscapes --root /data/cityscapes --ids train,label --splits val"
        ),
        func=run_cityscapes,
    )
    cityscapes.add_argument("--root", required=True, help="dataset root (holds gtFine/)")
    cityscapes.add_argument("--out", default=None, help="write under OUT/gtFine instead")
    cityscapes.add_argument("--splits", default="train,val,test", help="comma-separated splits")
    cityscapes.add_argument(
        "--ids", default="train", help="panoptic category ids: train, label or train,label"
    )
    cityscapes.add_argument(
        "--workers", type=int, default=min(os.cpu_count() or 1, 8), help="worker processes"
    )
    cityscapes.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run_cityscapes(args: argparse.Namespace) -> int:
    from panseg.datasets.cityscapes import CITYSCAPES_SPLITS
    from panseg.prepare_cityscapes import ID_KINDS, prepare_cityscapes

    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    kinds = [s.strip() for s in args.ids.split(",") if s.strip()]
    if not splits or any(s not in CITYSCAPES_SPLITS for s in splits):
        raise CommandError(f"--splits: choose from {list(CITYSCAPES_SPLITS)}")
    if not kinds or any(k not in ID_KINDS for k in kinds):
        raise CommandError(f"--ids: choose from {list(ID_KINDS)}")
    if not os.path.isdir(os.path.join(args.root, "gtFine")):
        raise CommandError(f"--root {args.root}: no gtFine/ directory")
    try:
        counts = prepare_cityscapes(
            args.root,
            out=args.out,
            splits=splits,
            kinds=kinds,
            workers=args.workers,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    out = os.path.join(args.out or args.root, "gtFine")
    print(f"wrote {out}: " + ", ".join(f"{k} {v} images" for k, v in counts.items()))
    return 0
