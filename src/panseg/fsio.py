"""Paths for local disk and object stores, one small interface.

Every panseg path may be a local path or an fsspec URL (``s3://bucket/x``, ``gs://...``,
``file://...``, ``memory://...``). Local paths go straight to ``os`` (fast, and atomic
renames); URLs go through ``fsspec``, whose protocol packages (``s3fs``, ``gcsfs``) are
optional extras imported only when such a URL is used.

Atomic writes: locally a file is written under ``.NAME.tmp-PID`` and renamed into place. An
object store makes an object visible only when its upload completes, so writing the final
key directly is already all-or-nothing there.

Options for object stores (endpoint, credentials, ``anon``, ``profile``) are set explicitly
with :func:`configure`, per protocol: the CLI builds them from ``--storage-option`` and
``--s3-endpoint`` (see :mod:`panseg.cli.storage`) and calls it once; a worker process gets
them from its parent (:func:`storage_options` is the picklable snapshot to hand over). Nothing
here reads environment variables; ``s3fs``/``botocore`` still read the usual AWS
configuration (``~/.aws``, ``AWS_*``) themselves for whatever the options leave unset.
"""

from __future__ import annotations

import builtins
import glob as _glob
import os
import posixpath
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

_fs_cache: dict[str, Any] = {}
_options: dict[str, dict[str, Any]] = {}  # protocol (or "*" for all) -> fsspec options

ALL_PROTOCOLS = "*"
_ALIASES = {"s3a": "s3", "gcs": "gs"}


def configure(storage_options: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Set this process's fsspec options per protocol, replacing the previous ones.

    ``storage_options`` maps a protocol (``"s3"``, ``"gs"``, ...; ``"*"`` for every URL
    protocol) to keyword arguments of its ``fsspec`` filesystem, e.g.
    ``{"s3": {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}, "anon": False}}``.
    Protocol-specific options override ``"*"`` ones key by key. Filesystems made with the
    previous options are dropped.
    """
    _options.clear()
    for protocol, options in (storage_options or {}).items():
        _options[_ALIASES.get(protocol, protocol)] = dict(options)
    _fs_cache.clear()


def storage_options(protocol: str | None = None) -> dict[str, Any]:
    """The options :func:`configure` set: all of them (a picklable snapshot to pass to a
    worker's :func:`configure`), or, given a protocol, the keyword arguments its filesystem
    is made with."""
    if protocol is None:
        return {k: dict(v) for k, v in _options.items()}
    protocol = _ALIASES.get(protocol, protocol)
    return {**_options.get(ALL_PROTOCOLS, {}), **_options.get(protocol, {})}


def protocol_of(path: str) -> str:
    """``"s3"`` for ``s3://b/k``; ``"file"`` for local paths."""
    return path.split("://", 1)[0] if "://" in path else "file"


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def filesystem(path: str):
    """The fsspec filesystem for a URL (cached per protocol), with :func:`configure`'s
    options for that protocol."""
    import fsspec

    protocol = path.split("://", 1)[0]
    if protocol not in _fs_cache:
        try:
            _fs_cache[protocol] = fsspec.filesystem(protocol, **storage_options(protocol))
        except ImportError as exc:
            extra = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}.get(protocol)
            hint = f" (pip install 'panseg[{extra}]')" if extra else ""
            raise ImportError(f"{path}: no filesystem for {protocol}://{hint}: {exc}") from None
    return _fs_cache[protocol]


def join(base: str, *parts: str) -> str:
    if is_url(base):
        return posixpath.join(base, *parts)
    return os.path.join(_local(base), *parts)


def dirname(path: str) -> str:
    return posixpath.dirname(path.rstrip("/")) if is_url(path) else os.path.dirname(path)


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
    """The whole file (for URLs one GET, without the metadata request ``open`` makes)."""
    if is_url(path):
        return filesystem(path).cat_file(path)
    with open(path, "rb") as f:
        return f.read()


@contextmanager
def atomic_writer(path: str) -> Iterator[IO[bytes]]:
    """Open ``path`` for binary writing so that it appears complete or not at all."""
    if is_url(path):
        f = filesystem(path).open(path, "wb")
        try:
            yield f
        except BaseException:
            # fsspec uploads on close even after an error: take the partial object away.
            f.close()
            if filesystem(path).exists(path):
                filesystem(path).rm(path)
            raise
        f.close()
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
