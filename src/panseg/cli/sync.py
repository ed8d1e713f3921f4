"""``panseg sync``: copy a record directory between local disk and a bucket."""

from __future__ import annotations

import argparse
import os

from panseg.cli.common import CommandError, add_command
from panseg.cli.storage import add_storage_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "sync",
        help="copy records between local disk and object stores, resumable and verified",
        description=(
            "Copy the record directory SRC (shards listed in SRC/manifest.json) to DST, either\n"
            "a local directory or a URL (s3://, gs://, ...). Every shard is checked against\n"
            "the manifest's size and CRC32C while it is copied; a source shard that disagrees\n"
            "is an error naming it. Shards already at DST with the right size and checksum\n"
            "are skipped, so an interrupted sync resumes; the manifest is copied last, so a\n"
            "DST with a manifest is complete. --verify re-reads every DST shard and copies\n"
            "again those that differ (docs/object-stores.md)."
        ),
        examples=(
            "  panseg sync /data/records/coco s3://my-bucket/records/coco --jobs 8\n"
            "  panseg sync gs://my-bucket/records/coco /data/records/coco\n"
            "  panseg sync s3://bucket/records /data/records --verify\n"
            "  panseg sync /data/records s3://bucket/records --s3-endpoint http://127.0.0.1:9000"
        ),
        func=run,
    )
    parser.add_argument("src", help="record directory holding manifest.json (path or URL)")
    parser.add_argument("dst", help="destination directory (path or URL)")
    parser.add_argument(
        "--jobs", type=int, default=min(8, 2 * (os.cpu_count() or 1)),
        help="files copied at the same time (threads)",
    )
    parser.add_argument(
        "--verify", action="store_true",
        help="check the CRC32C of every DST shard, even after a completed sync",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_storage_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from panseg.sync import SyncError, sync

    if args.jobs < 1:
        raise CommandError("--jobs must be >= 1")
    try:
        report = sync(args.src, args.dst, jobs=args.jobs, verify=args.verify,
                      progress=not args.no_progress)
    except SyncError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:  # e.g. DST cannot be created, the bucket refuses access
        raise CommandError(f"{type(exc).__name__}: {exc}") from None
    rate = report.bytes_copied / max(report.seconds, 1e-9) / 1e6
    again = f" ({len(report.recopied)} copied again)" if report.recopied else ""
    print(
        f"{report.files} shards: {len(report.copied)} copied{again}, "
        f"{len(report.skipped)} already there; {report.bytes_copied / 1e6:.1f} MB in "
        f"{report.seconds:.1f} s ({rate:.1f} MB/s)"
    )
    return 0
