"""``panseg inspect``: what is inside record shards, in numbers and pictures."""

from __future__ import annotations

import argparse
import os

from panseg.cli.common import CommandError, add_command
from panseg.cli.storage import add_storage_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "inspect",
        help="counts, keys, class histograms and overlays of record shards",
        description=(
            "Read DeepLab2-schema shards: examples per shard, feature keys and formats, class\n"
            "and instance histograms, and K overlay PNGs (image blended with the colored\n"
            "panoptic map, instance borders). Dataset facts come from the manifest beside the\n"
            "shards (COCO panoptic when there is none)."
        ),
        examples=(
            "  panseg inspect '/tmp/records/val-*.tfrecord'\n"
            "  panseg inspect '/tmp/records/train-*.tfrecord' --show 4 --out /tmp/overlays"
        ),
        func=run,
    )
    parser.add_argument("pattern", help="shard file or glob pattern (quote it)")
    parser.add_argument("--show", type=int, default=0, help="write K overlay PNGs")
    parser.add_argument("--out", help="directory for the overlays")
    parser.add_argument("--top", type=int, default=10, help="classes listed in the histogram")
    add_storage_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from panseg.inspect import inspect_shards

    if args.show and not args.out:
        raise CommandError("--show needs --out DIR")
    try:
        summary = inspect_shards(args.pattern, show=args.show, out_dir=args.out)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    for shard, count in summary.shard_counts.items():
        print(f"{os.path.basename(shard)}: {count} examples")
    print(f"total: {summary.num_examples} examples in {len(summary.shard_counts)} shards")
    print("keys:")
    for key, kinds in sorted(summary.keys.items()):
        print(f"  {key}: {', '.join(sorted(kinds))}")
    print("formats: " + ", ".join(f"{k} x{v}" for k, v in sorted(summary.formats.items())))
    info = summary.info
    print(f"classes (pixels, images with the class; top {args.top}):")
    ranked = sorted(summary.class_pixels.items(), key=lambda kv: -kv[1])[: args.top]
    for class_id, pixels in ranked:
        name = "void" if class_id == info.ignore_label else _name(info, class_id)
        print(f"  {class_id:4d} {name:24s} {pixels:12d} px  {summary.class_images[class_id]:6d} img")
    if summary.instances:
        print("instances per image: " + ", ".join(
            f"{n}:{c}" for n, c in sorted(summary.instances.items())))
    for path in summary.overlays:
        print(f"overlay: {path}")
    return 0


def _name(info, class_id: int) -> str:
    try:
        return info.class_by_id(class_id).name
    except KeyError:
        return "?"
