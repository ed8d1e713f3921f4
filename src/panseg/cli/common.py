"""Helpers shared by the CLI modules: parsers with examples, friendly errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from panseg.cli.main import HelpFormatter


class CommandError(Exception):
    """An error the CLI prints as one clear line (no traceback) before exiting with 2."""


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
    examples: str,
    func: Callable[[argparse.Namespace], int] | None = None,
) -> argparse.ArgumentParser:
    """Add a sub-command whose ``--help`` ends with an ``examples:`` block."""
    parser = subparsers.add_parser(
        name,
        help=help,
        description=f"{description}\n\nexamples:\n{examples}",
        formatter_class=HelpFormatter,
    )
    if func is not None:
        parser.set_defaults(func=_friendly(func))
    else:
        parser.set_defaults(_group_parser=parser)
    return parser


def _friendly(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            if getattr(args, "_storage_arguments", False):
                from panseg.cli.storage import configure_storage

                configure_storage(args)  # --storage-option / --s3-endpoint -> panseg.fsio
            return func(args)
        except CommandError as exc:
            print(f"panseg: error: {exc}", file=sys.stderr)
            return 2

    return run
