"""``panseg convert merge``: several datasets, one label space, one record set."""

from __future__ import annotations

import argparse

from panseg import fsio
from panseg.cli.common import CommandError, add_command

DATASETS = ("coco", "cityscapes")


def add_merge_command(sub: argparse._SubParsersAction) -> None:
    """Register ``convert merge`` under the ``convert`` group's sub-parsers."""
    from panseg.cli.convert import add_common_arguments

    merge = add_command(
        sub,
        "merge",
        help="several datasets mapped onto one label space, as one DeepLab2 record set",
        description=(
            "Convert several datasets into one DeepLab2 record set in one label space. Each\n"
            "--source DATASET=ROOT is read as its own converter reads it (coco: the panoptic\n"
            "download tree; cityscapes: the raw gtFine tree) and mapped with --class-map, whose\n"
            "per-dataset sources say which categories feed each train id (docs/class-maps.md).\n"
            "Items are written in --source order, each dataset in its own order; instances are\n"
            "numbered within the new classes. Label divisor: the map's, else the largest of the\n"
            "datasets' defaults (COCO 256, Cityscapes 1000)."
        ),
        examples=(
            "  panseg convert merge --class-map people_vehicles.yaml \\\n"
            "      --source coco=/data/coco --source cityscapes=/data/cityscapes \\\n"
            "      --out /data/records/merged --splits train,val --num-shards 100"
        ),
        func=run_merge,
    )
    add_common_arguments(merge, default_shards=100, default_splits="train,val", root=False)
    merge.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="DATASET=ROOT",
        help=f"a dataset to read ({', '.join(DATASETS)}); repeat for each",
    )
    merge.add_argument(
        "--crowd", choices=("ignore", "keep"), default="ignore",
        help="crowd thing pixels become void (ignore) or class*divisor (keep)",
    )


def parse_sources(values: list[str]) -> list[tuple[str, str]]:
    parts = []
    for value in values:
        dataset, sep, root = value.partition("=")
        if not sep or dataset not in DATASETS or not root:
            raise CommandError(f"--source {value!r}: expected DATASET=ROOT with DATASET in "
                               f"{list(DATASETS)}")
        if not fsio.isdir(root):
            raise CommandError(f"--source {value}: no such directory {root}")
        if dataset in [d for d, _ in parts]:
            raise CommandError(f"--source {dataset} is given twice")
        parts.append((dataset, root))
    if not parts:
        raise CommandError("give at least one --source DATASET=ROOT")
    return parts


def run_merge(args: argparse.Namespace) -> int:
    from panseg.cli.convert import load_class_map_arg, parse_splits, run_conversion
    from panseg.datasets.classmap import ClassMapError, dataset_categories
    from panseg.datasets.merged import MergedPart, MergedSource
    from panseg.records.deeplab2 import PanopticDeepLab2Encoder
    from panseg.records.mapped import identity_info

    class_map = load_class_map_arg(args)
    if class_map is None:
        raise CommandError("convert merge needs --class-map: the label space to merge into")
    parts, divisors = [], []
    for dataset, root in parse_sources(args.source):
        source, divisor = _source(dataset, root)
        try:
            resolved = class_map.resolve(dataset_categories(dataset), dataset)
        except ClassMapError as exc:
            raise CommandError(str(exc)) from None
        parts.append(MergedPart(source, resolved))
        divisors.append(divisor)
    splits = parse_splits(args.splits, ("train", "val"))
    info = class_map.dataset_info(label_divisor=max(divisors))
    source = MergedSource(tuple(parts), info)
    return run_conversion(
        args,
        source=source,
        encoder=PanopticDeepLab2Encoder(identity_info(info), crowd=args.crowd),
        splits=splits,
        dataset=info,
        schema="deeplab2",
        options={
            "task": "panoptic",
            "crowd": args.crowd,
            "merge": [d for d, _ in parse_sources(args.source)],
            "class_map": class_map.to_dict(),
        },
    )


def _source(dataset: str, root: str):
    if dataset == "coco":
        from panseg.datasets.coco import COCO_LABEL_DIVISOR, CocoPanopticSource

        return CocoPanopticSource(root), COCO_LABEL_DIVISOR
    from panseg.datasets.cityscapes import CityscapesSource
    from panseg.datasets.cityscapes_labels import CITYSCAPES_LABEL_DIVISOR

    return CityscapesSource(root, keep_ignored=True), CITYSCAPES_LABEL_DIVISOR
