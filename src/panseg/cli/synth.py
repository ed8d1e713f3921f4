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
