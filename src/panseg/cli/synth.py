"""``panseg synth``: small deterministic datasets for examples and tests."""

from __future__ import annotations

import argparse

from panseg.cli.common import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_command(
        subparsers,
        "synth",
        help="write a small synthetic dataset",
        description="Write a small, deterministic dataset in a real dataset's layout.",
        examples="  panseg synth coco --out /tmp/coco --images 16 --seed 1",
    )
    sub = group.add_subparsers(dest="dataset", metavar="DATASET")
    coco = add_command(
        sub,
        "coco",
        help="a COCO-panoptic tree",
        description=(
            "A COCO-panoptic tree with real category ids: stuff bands and overlapping thing\n"
            "shapes, crowd segments, void pixels, 24-bit segment ids, shuffled segments_info,\n"
            "an image without segments and a grayscale JPEG."
        ),
        examples=(
            "  panseg synth coco --out /tmp/coco\n"
            "  panseg synth coco --out /tmp/coco-big --images 200 --height 480 --width 640"
        ),
        func=run_coco,
    )
    coco.add_argument("--out", required=True, help="output directory")
    coco.add_argument("--images", type=int, default=8, help="train images (val/test: a quarter)")
    coco.add_argument("--seed", type=int, default=0, help="random seed")
    coco.add_argument("--height", type=int, default=120)
    coco.add_argument("--width", type=int, default=160)
    coco.add_argument("--min-things", type=int, default=2)
    coco.add_argument("--max-things", type=int, default=8)
    register_cityscapes(sub)


def run_coco(args: argparse.Namespace) -> int:
    from panseg.datasets.synthetic import synth_coco

    counts = synth_coco(
        args.out,
        images=args.images,
        seed=args.seed,
        height=args.height,
        width=args.width,
        min_things=args.min_things,
        max_things=args.max_things,
    )
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v} images" for k, v in counts.items()))
    return 0


def register_cityscapes(sub: argparse._SubParsersAction) -> None:
    cityscapes = add_command(
        sub,
        "cityscapes",
        help="a raw Cityscapes tree (leftImg8bit + gtFine)",
        description=(
            "A raw Cityscapes tree drawn from polygons as the official one is: leftImg8bit PNGs\n"
            "and gtFine polygons JSON, labelIds, instanceIds and labelTrainIds PNGs; two cities\n"
            "per split, stuff and things, crowd groups, a fully hidden instance, classes ignored\n"
            "in evaluation, an image without things; the test split's labels are void only."
        ),
        examples=(
            "  panseg synth cityscapes --out /tmp/cityscapes\n"
            "  panseg synth cityscapes --out /tmp/cs-big --height 1024 --width 2048 "
            "--min-things 15 --max-things 22"
        ),
        func=run_cityscapes,
    )
    cityscapes.add_argument("--out", required=True, help="output directory (the dataset root)")
    cityscapes.add_argument("--images-per-city", type=int, default=2, help="images per city")
    cityscapes.add_argument("--seed", type=int, default=0, help="random seed")
    cityscapes.add_argument("--height", type=int, default=64)
    cityscapes.add_argument("--width", type=int, default=128)
    cityscapes.add_argument("--min-things", type=int, default=3)
    cityscapes.add_argument("--max-things", type=int, default=8)


def run_cityscapes(args: argparse.Namespace) -> int:
    from panseg.datasets.synthetic_cityscapes import synth_cityscapes

    counts = synth_cityscapes(
        args.out,
        images_per_city=args.images_per_city,
        seed=args.seed,
        height=args.height,
        width=args.width,
        min_things=args.min_things,
        max_things=args.max_things,
    )
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v} images" for k, v in counts.items()))
    return 0
