"""``panseg download coco|cityscapes``: fetch the official archives into the converters' tree."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from panseg.cli.common import CommandError, add_command

_COCO_PARTS = ("train", "val", "test", "panoptic", "instances")
_CITYSCAPES_PACKAGES = {"gtFine": "gtFine_trainvaltest.zip",
                        "leftImg8bit": "leftImg8bit_trainvaltest.zip"}


def _add_transfer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="ROOT",
                        help="dataset root to fill (created if needed)")
    parser.add_argument("--mirror", metavar="URL", default=None,
                        help="base URL replacing the official host (same paths below it)")
    parser.add_argument("--archive-dir", metavar="DIR", default=None,
                        help="where archives and partial downloads live; "
                             "None means ROOT/archives")
    parser.add_argument("--connections", type=int, default=8,
                        help="parallel ranged requests per file")
    parser.add_argument("--chunk-mb", type=float, default=8.0,
                        help="MB per ranged request (also the unit of resume)")
    parser.add_argument("--retries", type=int, default=5,
                        help="consecutive failures allowed per chunk before giving up")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout, seconds")
    parser.add_argument("--workers", type=int, default=4, help="extraction threads")
    parser.add_argument("--keep-archives", action="store_true",
                        help="keep the zips after a successful extraction")
    parser.add_argument("--no-extract", action="store_true",
                        help="only download and verify the archives")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_command(
        subparsers, "download",
        help="download and extract official dataset archives (resumable, verified)",
        description=("Download official dataset archives with parallel ranged HTTP requests,\n"
                     "resume after an interruption (run the same command again), verify size\n"
                     "and md5, and extract them into the tree the converters expect."),
        examples=("  panseg download coco --out /data/coco\n"
                  "  panseg download coco --out /data/coco --parts val,panoptic\n"
                  "  CITYSCAPES_USERNAME=me CITYSCAPES_PASSWORD=... \\\n"
                  "    panseg download cityscapes --out /data/cityscapes"),
    )
    sub = group.add_subparsers(dest="dataset", metavar="DATASET")
    coco = add_command(
        sub, "coco", help="COCO 2017 images and panoptic/instance annotations",
        description=("Download COCO 2017 archives from images.cocodataset.org into ROOT:\n"
                     "ROOT/{train,val,test}2017/*.jpg, ROOT/annotations/panoptic_*2017.json,\n"
                     "ROOT/annotations/panoptic_*2017/*.png (nested zips extracted) and\n"
                     "ROOT/annotations/instances_*2017.json. Full train+val+panoptic+instances\n"
                     "is about 21 GB of archives; add 'test' for 6.6 GB more."),
        examples=("  panseg download coco --out /data/coco\n"
                  "  panseg download coco --out /data/coco --parts val,panoptic --keep-archives\n"
                  "  panseg download coco --out /data/coco --mirror http://mirror.local/coco"),
        func=run_coco,
    )
    _add_transfer_options(coco)
    coco.add_argument("--parts", default="train,val,panoptic,instances",
                      help=f"comma-separated parts among {','.join(_COCO_PARTS)}")
    cs = add_command(
        sub, "cityscapes", help="Cityscapes gtFine and leftImg8bit (needs an account)",
        description=("Log in to cityscapes-dataset.com and download gtFine_trainvaltest.zip\n"
                     "(packageID 1) and leftImg8bit_trainvaltest.zip (packageID 3) into ROOT:\n"
                     "ROOT/gtFine/{train,val,test}/CITY/* and ROOT/leftImg8bit/... Credentials:\n"
                     "--username/--password, else CITYSCAPES_USERNAME/CITYSCAPES_PASSWORD, else\n"
                     "a prompt when run in a terminal."),
        examples=("  CITYSCAPES_USERNAME=me CITYSCAPES_PASSWORD=secret \\\n"
                  "    panseg download cityscapes --out /data/cityscapes\n"
                  "  panseg download cityscapes --out /data/cityscapes --packages gtFine"),
        func=run_cityscapes,
    )
    _add_transfer_options(cs)
    cs.add_argument("--packages", default="gtFine,leftImg8bit",
                    help=f"comma-separated among {','.join(_CITYSCAPES_PACKAGES)}")
    cs.add_argument("--username", default=None, help="None means $CITYSCAPES_USERNAME")
    cs.add_argument("--password", default=None,
                    help="None means $CITYSCAPES_PASSWORD (an option is visible in `ps`)")


def _split(value: str, allowed, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise CommandError(f"unknown {what} {bad or value!r}; choose from {', '.join(allowed)}")
    return items


def _check_numbers(args: argparse.Namespace) -> None:
    for name in ("connections", "workers"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name} must be at least 1")
    if args.chunk_mb <= 0 or args.retries < 0 or args.timeout <= 0:
        raise CommandError("--chunk-mb and --timeout must be positive, --retries not negative")


def _fetch(archives, args: argparse.Namespace, base_url: str, headers=None, *,
           dataset: str) -> int:
    from panseg.download import ChecksumError, DownloadError, ExtractError, fetch_archives

    try:
        fetch_archives(
            archives, args.out, base_url=base_url, archive_dir=args.archive_dir,
            headers=headers, connections=args.connections,
            chunk_size=max(1, int(args.chunk_mb * 1e6)), retries=args.retries,
            timeout=args.timeout, extract=not args.no_extract,
            keep_archives=args.keep_archives or args.no_extract, workers=args.workers,
            progress=not args.quiet, log=lambda m: print(m, file=sys.stderr),
        )
    except (ChecksumError, DownloadError, ExtractError) as exc:
        raise CommandError(str(exc)) from exc
    except KeyboardInterrupt:
        print("panseg: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"done: {args.out}", file=sys.stderr)
    if not args.no_extract:
        print(f"next: panseg convert {dataset} --root {args.out} --out RECORDS_DIR",
              file=sys.stderr)
    return 0


def run_coco(args: argparse.Namespace) -> int:
    from panseg.download import archives as tables

    _check_numbers(args)
    parts = _split(args.parts, _COCO_PARTS, "COCO part")
    return _fetch(tables.coco_archives(parts), args, args.mirror or tables.COCO_BASE_URL,
                  dataset="coco")


def run_cityscapes(args: argparse.Namespace) -> int:
    from panseg.download import archives as tables
    from panseg.download import cityscapes_login
    from panseg.download.http import DownloadError

    _check_numbers(args)
    packages = _split(args.packages, _CITYSCAPES_PACKAGES, "Cityscapes package")
    username = args.username or os.environ.get("CITYSCAPES_USERNAME")
    password = args.password or os.environ.get("CITYSCAPES_PASSWORD")
    if (not username or not password) and sys.stdin.isatty():
        username = username or input("Cityscapes username or email: ")
        password = password or getpass.getpass("Cityscapes password: ")
    if not username or not password:
        raise CommandError("Cityscapes needs credentials: --username/--password or "
                           "CITYSCAPES_USERNAME/CITYSCAPES_PASSWORD")
    base_url = args.mirror or tables.CITYSCAPES_BASE_URL
    try:
        headers = cityscapes_login(username, password, base_url=base_url, timeout=args.timeout)
    except DownloadError as exc:
        raise CommandError(str(exc)) from exc
    archives = [tables.CITYSCAPES_ARCHIVES[_CITYSCAPES_PACKAGES[p]] for p in packages]
    return _fetch(archives, args, base_url, headers, dataset="cityscapes")
