"""Paths for local disk and object stores, one small interface.

Every panseg path may be a local path or an fsspec URL (``s3://bucket/x``, ``gs://...``,
``file://...``, ``memory://...``). Local paths go straight to ``os`` (fast, and atomic
renames); URLs go through ``fsspec``, whose protocol packages (``s3fs``, ``gcsfs``) are
optional extras imported only when such a URL is used.

Atomic writes: locally a file is written under ``.NAME.tmp-PID`` and renamed into place. An
object store makes an object visible only when its upload completes, so writing the final
key directly is already all-or-nothing there.
"""

from __future__ import annotations

import builtins
import glob as _glob
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

_fs_cache: dict[str, Any] = {}


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def filesystem(path: str):
    """The fsspec filesystem for a URL (cached per protocol)."""
    import fsspec

    protocol = path.split("://", 1)[0]
    if protocol not in _fs_cache:
        try:
            _fs_cache[protocol] = fsspec.filesystem(protocol)
        except ImportError as exc:
            extra = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}.get(protocol)
            hint = f" (pip install 'panseg[{extra}]')" if extra else ""
            raise ImportError(f"{path}: no filesystem for {protocol}://{hint}: {exc}") from None
    return _fs_cache[protocol]


def join(base: str, *parts: str) -> str:
    if is_url(base):
        return posixpath.join(base, *parts)
    return os.path.join(_local(base), *parts)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) if is_url(path) else os.path.basename(path)


def exists(path: str) -> bool:
    return filesystem(path).exists(path) if is_url(path) else os.path.exists(_local(path))


def isdir(path: str) -> bool:
    return filesystem(path).isdir(path) if is_url(path) else os.path.isdir(_local(path))


def size(path: str) -> int:
    return int(filesystem(path).size(path)) if is_url(path) else os.path.getsize(_local(path))


def makedirs(path: str) -> None:
    if is_url(path):
        filesystem(path).makedirs(path, exist_ok=True)
    else:
        os.makedirs(_local(path), exist_ok=True)


def remove(path: str) -> None:
    if is_url(path):
        filesystem(path).rm(path)
    else:
        os.remove(_local(path))


def rename(src: str, dst: str) -> None:
    """Move ``src`` to ``dst``, replacing it (atomic on a local filesystem)."""
    if is_url(src):
        filesystem(src).mv(src, dst)
    else:
        os.replace(_local(src), _local(dst))


def glob(pattern: str) -> list[str]:
    """Sorted matches of a glob pattern (URLs keep their protocol prefix)."""
    if is_url(pattern):
        protocol = pattern.split("://", 1)[0]
        matches = filesystem(pattern).glob(pattern)
        return sorted(m if "://" in m else f"{protocol}://{m}" for m in matches)
    return sorted(_glob.glob(_local(pattern)))


def listdir(path: str) -> list[str]:
    """Sorted names (not paths) of the entries of a directory."""
    if is_url(path):
        entries = filesystem(path).ls(path, detail=False)
        return sorted(posixpath.basename(e.rstrip("/")) for e in entries)
    return sorted(os.listdir(_local(path)))


def open(path: str, mode: str = "rb") -> IO:  # noqa: A001 - mirrors builtins.open
    if is_url(path):
        return filesystem(path).open(path, mode)
    return builtins.open(_local(path), mode)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@contextmanager
def atomic_writer(path: str) -> Iterator[IO[bytes]]:
    """Open ``path`` for binary writing so that it appears complete or not at all."""
    if is_url(path):
        with filesystem(path).open(path, "wb") as f:
            yield f
        return
    local = _local(path)
    directory, name = os.path.split(local)
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    try:
        with builtins.open(tmp, "wb") as f:
            yield f
        os.replace(tmp, local)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_bytes_atomic(path: str, data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)
