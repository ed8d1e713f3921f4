"""The ``panseg`` command: one sub-command group per module in :mod:`panseg.cli`.

Each module listed in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds
its parser(s) and sets ``func`` to a callable taking the parsed ``argparse.Namespace``
and returning an exit code. Modules import heavy libraries (torch, PIL) only inside
their ``run`` functions so that ``panseg --help`` and the data-preparation commands
start fast and never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from panseg import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "convert",
    "prepare",
    "synth",
    "inspect",
    "download",
    "evaluate",
    "benchmark",
    "train",
    "predict",
    "demo",
    "sync",
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the hand-wrapped examples in descriptions and shows defaults."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="panseg",
        formatter_class=HelpFormatter,
        description=(
            "Panoptic segmentation toolkit: dataset conversion to DeepLab2 and Model Garden\n"
            "TFRecords, PyTorch loading, Panoptic-DeepLab training, post-processing and exact\n"
            "PQ evaluation.\n\n"
            "examples:\n"
            "  panseg synth coco --out /tmp/coco\n"
            "  panseg convert coco --root /tmp/coco --out /tmp/records --num-shards 4\n"
            "  panseg inspect '/tmp/records/val-*.tfrecord' --show 2 --out /tmp/overlays"
        ),
    )
    parser.add_argument("--version", action="version", version=f"panseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"panseg.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # A group given without its sub-command prints that group's help.
        (getattr(args, "_group_parser", None) or parser).print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
