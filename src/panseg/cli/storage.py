"""Object-store options shared by the commands that take paths (``--storage-option``).

``--storage-option [PROTOCOL:]KEY=VALUE`` (repeatable) sets one keyword argument of the fsspec
filesystem behind URLs: a dotted KEY nests (``client_kwargs.endpoint_url=...`` becomes
``{"client_kwargs": {"endpoint_url": ...}}``), VALUE is read as JSON when it is valid JSON
(``anon=true``, ``default_block_size=8388608``) and as a string otherwise, and the optional
``PROTOCOL:`` prefix (``s3:``, ``gs:``) limits it to that protocol (default: every URL
protocol). ``--s3-endpoint URL`` is short for ``s3:client_kwargs.endpoint_url=URL``.

The options go to :func:`panseg.fsio.configure` just before the command runs; panseg itself
reads no environment variable (s3fs/botocore read ``~/.aws`` and ``AWS_*`` for the rest).
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

_PROTOCOL = re.compile(r"^([a-z][a-z0-9+.-]*):(?!//)(.+)$")


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--storage-option`` and ``--s3-endpoint`` to a command's parser."""
    group = parser.add_argument_group("object stores (docs/object-stores.md)")
    group.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="[PROTOCOL:]KEY=VALUE",
        help="fsspec filesystem option for URLs, repeatable; dotted keys nest, JSON values "
        "are parsed (e.g. client_kwargs.endpoint_url=http://127.0.0.1:9000, anon=true, "
        "s3:profile=dev)",
    )
    group.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="S3-compatible endpoint for s3:// URLs (MinIO, Ceph, a local server)",
    )
    parser.set_defaults(_storage_arguments=True)


def parse_storage_options(
    items: list[str], s3_endpoint: str | None = None
) -> dict[str, dict[str, Any]]:
    """``--storage-option`` strings -> ``{protocol or "*": options}`` for ``fsio.configure``.

    Raises:
        ValueError: an item is not ``[PROTOCOL:]KEY=VALUE`` (the message names it).
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--storage-option {item!r}: expected [PROTOCOL:]KEY=VALUE")
        protocol = "*"
        match = _PROTOCOL.match(key.strip())
        if match:
            protocol, key = match.group(1), match.group(2)
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        _set_dotted(out.setdefault(protocol, {}), key.strip(), value, item)
    if s3_endpoint:
        _set_dotted(out.setdefault("s3", {}), "client_kwargs.endpoint_url", s3_endpoint,
                    f"--s3-endpoint {s3_endpoint}")
    return out


def _set_dotted(target: dict[str, Any], key: str, value: Any, item: str) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"{item!r}: {part} is already set to a value, not a mapping")
        target = child
    if not leaf or any(not p for p in parents):
        raise ValueError(f"--storage-option {item!r}: empty key part")
    target[leaf] = value


def configure_storage(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Give the parsed options to :func:`panseg.fsio.configure` (when there are any: a
    command without them leaves the process's configuration alone); returns them."""
    from panseg import fsio
    from panseg.cli.common import CommandError

    try:
        options = parse_storage_options(
            list(getattr(args, "storage_option", None) or []), getattr(args, "s3_endpoint", None)
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if options:
        fsio.configure(options)
    return options
