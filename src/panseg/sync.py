"""Copy a record directory between local disk and object stores, resumable and verified.

``sync(src, dst)`` copies what ``SRC/manifest.json`` lists (every shard of every split) and
then the manifest itself. The manifest's ``size`` and ``crc32c`` (CRC32C of the whole file,
8 hex digits, as GCS reports it) are the truth for every file:

* **Copy**: into an object store, each shard is streamed from SRC to DST in
  8 MiB blocks with its CRC32C computed on the way (SRC is read once; DST is not read back,
  ``verify=True`` does that). Onto disk, the file is copied by the kernel
  (``shutil.copyfile``) or downloaded by the filesystem (``get_file``) and then read back
  for its CRC32C (from the page cache), which checks the bytes that landed. A SRC
  file whose size or checksum disagrees with the manifest is an error naming the file
  (:class:`SyncError`), and its partial copy is removed. Locally a copy is written under
  ``.NAME.sync-tmp`` and renamed into place; an object store makes an object visible only
  once its upload completes, so the final key is written directly (and removed again if the
  check fails). After the copy the DST size is checked.
* **Resume**: a shard already at DST is skipped when its size and CRC32C match the manifest.
  The CRC32C of a DST file is computed by reading it (local disk, S3), or taken from the
  object's metadata where the store keeps one (GCS ``crc32c``: no read). When DST already
  holds this very manifest, an earlier sync completed and checked every file, so only sizes
  are compared, unless ``verify=True``.
* **Completeness**: DST's manifest is removed before the first copy and written last, so a
  DST with a manifest is complete. A DST file that fails the check (corrupt, truncated) is
  copied again.

Converter bookkeeping (``.panseg/``: sidecars and pending shards) is not copied: DST is a
record directory for readers. Copies run in ``jobs`` threads (I/O bound) with one progress
bar in bytes (MB/s, ETA).
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import google_crc32c
from fsspec.callbacks import Callback

from panseg import fsio
from panseg.records.manifest import MANIFEST_NAME, Manifest

BLOCK = 8 << 20


class SyncError(Exception):
    """A file disagrees with the manifest, or SRC is not a record directory."""


@dataclass(frozen=True)
class FileEntry:
    """One file to copy: its name in the record directory, size and CRC32C (8 hex digits)."""

    name: str
    size: int
    crc32c: str


@dataclass
class SyncReport:
    files: int = 0
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recopied: list[str] = field(default_factory=list)  # at DST but failed the check
    bytes_copied: int = 0
    seconds: float = 0.0


def manifest_files(manifest: Manifest) -> list[FileEntry]:
    """Every shard the manifest lists, once, in split then shard order."""
    seen: dict[str, FileEntry] = {}
    for _, split in sorted(manifest.splits.items()):
        for shard in split.shards:
            if not shard.file or "/" in shard.file or "\\" in shard.file or shard.file in (".", ".."):
                raise SyncError(f"manifest: shard file {shard.file!r} is not a plain file name")
            entry = FileEntry(shard.file, shard.size, shard.crc32c.lower())
            if seen.setdefault(shard.file, entry) != entry:
                raise SyncError(f"manifest lists {shard.file} twice with different checksums")
    return list(seen.values())


def crc32c_hex(path: str, progress: Callable[[int], None] | None = None) -> str:
    """CRC32C of a file's bytes (read in blocks), as 8 lowercase hex digits."""
    crc = google_crc32c.Checksum()
    with fsio.open(path, "rb") as f:
        while block := f.read(BLOCK):
            crc.update(block)
            if progress is not None:
                progress(len(block))
    return crc.hexdigest().decode("ascii")


def stored_crc32c(path: str) -> str | None:
    """The CRC32C an object store keeps for ``path`` (GCS), as 8 hex digits; else None."""
    if not fsio.is_url(path):
        return None
    try:
        value = fsio.filesystem(path).info(path).get("crc32c")
    except (OSError, ValueError):
        return None
    if not isinstance(value, str):
        return None
    try:  # GCS: base64 of the big-endian 4 bytes
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raw = b""
    if len(raw) == 4:
        return raw.hex()
    return value.lower() if len(value) == 8 else None


def _size_or_none(path: str) -> int | None:
    try:
        return fsio.size(path)
    except (FileNotFoundError, OSError):
        return None


def dst_state(path: str, entry: FileEntry, *, check_crc: bool) -> str:
    """``"ok"``, ``"missing"`` or ``"bad"`` (wrong size, or wrong CRC32C when checked)."""
    size = _size_or_none(path)
    if size is None:
        return "missing"
    if size != entry.size:
        return "bad"
    if not check_crc:
        return "ok"
    crc = stored_crc32c(path) or crc32c_hex(path)
    return "ok" if crc == entry.crc32c else "bad"


def copy_file(
    src: str, dst: str, entry: FileEntry, progress: Callable[[int], None] | None = None
) -> None:
    """Stream ``src`` to ``dst``, checking size and CRC32C against ``entry``.

    Raises:
        SyncError: ``src`` disagrees with the manifest (nothing is left at ``dst``).
    """
    local = not fsio.is_url(dst)
    target = fsio.join(fsio.dirname(dst), f".{fsio.basename(dst)}.sync-tmp") if local else dst
    try:
        if local and not fsio.is_url(src):
            # Disk to disk: the kernel copies (several times faster than through Python),
            # then the copy itself is read back for its checksum (from the page cache).
            shutil.copyfile(src, target)
            copied, got = fsio.size(target), crc32c_hex(target, progress)
            if (copied, got) != (entry.size, entry.crc32c) and (
                fsio.size(src), crc32c_hex(src)
            ) == (entry.size, entry.crc32c):
                raise SyncError(f"{dst}: the copy differs from {src} (disk error?)")
        elif local:
            # Object store to disk: the filesystem's own download (concurrent ranged reads,
            # twice as fast as a stream of reads), then the CRC32C of what landed.
            fsio.filesystem(src).get_file(src, target, callback=_Ticks(progress))
            copied, got = fsio.size(target), crc32c_hex(target)
        else:
            copied, got = _stream(src, target, progress)
        if copied != entry.size or got != entry.crc32c:
            raise SyncError(
                f"{src}: the source disagrees with its manifest (size {copied}, crc32c {got}; "
                f"manifest: size {entry.size}, crc32c {entry.crc32c}); nothing was copied"
            )
        if local:
            fsio.rename(target, dst)
        written = _size_or_none(dst)
        if written != entry.size:
            raise SyncError(f"{dst}: {written} bytes after the copy, expected {entry.size}")
    except BaseException:
        if _size_or_none(target) is not None:
            fsio.remove(target)
        raise


class _Ticks(Callback):
    """An fsspec transfer callback that forwards byte counts to ``progress``."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        super().__init__()
        self.progress = progress

    def relative_update(self, inc: int = 1) -> None:
        if self.progress is not None:
            self.progress(inc)


def _stream(
    src: str, dst: str, progress: Callable[[int], None] | None
) -> tuple[int, str]:
    """Copy in blocks, computing the CRC32C on the way; returns (bytes, crc32c hex)."""
    crc = google_crc32c.Checksum()
    copied = 0
    with fsio.open(src, "rb") as fin, fsio.open(dst, "wb") as fout:
        while block := fin.read(BLOCK):
            crc.update(block)
            fout.write(block)
            copied += len(block)
            if progress is not None:
                progress(len(block))
    return copied, crc.hexdigest().decode("ascii")


def sync(
    src: str,
    dst: str,
    *,
    jobs: int = 4,
    verify: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> SyncReport:
    """Copy the record directory ``src`` (with ``manifest.json``) to ``dst`` (see the module
    docstring). Both are local directories or fsspec URLs.

    Raises:
        SyncError: ``src`` has no readable manifest, or a SRC file disagrees with it.
    """
    from tqdm import tqdm

    log = log or (lambda msg: print(msg, file=sys.stderr))
    start = time.monotonic()
    src_manifest = fsio.join(src, MANIFEST_NAME)
    try:
        manifest_bytes = fsio.read_bytes(src_manifest)
    except FileNotFoundError:
        raise SyncError(f"{src_manifest}: no manifest; SRC must be a panseg record directory") \
            from None
    try:
        manifest = Manifest.from_dict(json.loads(manifest_bytes), where=src_manifest)
    except (ValueError, KeyError, TypeError) as exc:
        raise SyncError(f"{src_manifest}: unreadable manifest ({exc})") from None
    files = manifest_files(manifest)
    report = SyncReport(files=len(files))

    dst_manifest = fsio.join(dst, MANIFEST_NAME)
    try:
        complete = fsio.read_bytes(dst_manifest) == manifest_bytes
    except FileNotFoundError:
        complete = False
    fsio.makedirs(dst)

    if not fsio.is_url(dst):  # temporaries of an interrupted local sync
        for entry in files:
            stale = fsio.join(dst, f".{entry.name}.sync-tmp")
            if fsio.exists(stale):
                fsio.remove(stale)

    # Which files are to copy: checked in parallel, since a check may read the file.
    check_crc = verify or not complete

    def check(entry: FileEntry) -> str:
        return dst_state(fsio.join(dst, entry.name), entry, check_crc=check_crc)

    with ThreadPoolExecutor(max(1, int(jobs))) as pool, tqdm(
        total=len(files), desc="check DST", unit="file",
        disable=not (progress and check_crc and files),
    ) as bar:
        states = []
        for state in pool.map(check, files):
            states.append(state)
            bar.update(1)
    todo = [e for e, s in zip(files, states, strict=True) if s != "ok"]
    report.skipped = [e.name for e, s in zip(files, states, strict=True) if s == "ok"]
    report.recopied = [e.name for e, s in zip(files, states, strict=True) if s == "bad"]
    for name in report.recopied:
        log(f"{fsio.join(dst, name)}: size or checksum differs from the manifest; copying again")
    if complete and not todo:
        report.seconds = time.monotonic() - start
        return report

    if fsio.exists(dst_manifest):  # DST is incomplete from now until the manifest is back
        fsio.remove(dst_manifest)
    total = sum(e.size for e in todo)
    bar = tqdm(total=total, desc="sync", unit="B", unit_scale=True, disable=not progress,
               smoothing=0.1)
    lock = threading.Lock()

    def tick(n: int) -> None:
        with lock:
            bar.update(n)

    def copy(entry: FileEntry) -> None:
        source = fsio.join(src, entry.name)
        try:
            copy_file(source, fsio.join(dst, entry.name), entry, tick)
        except SyncError:
            raise
        except OSError as exc:  # a lost connection, a full disk, a missing SRC shard
            raise SyncError(f"{source}: {type(exc).__name__}: {exc}") from exc

    errors: list[SyncError] = []
    try:
        with ThreadPoolExecutor(max(1, int(jobs))) as pool:
            for entry, future in [(e, pool.submit(copy, e)) for e in todo]:
                try:
                    future.result()
                except SyncError as exc:
                    errors.append(exc)
                else:
                    report.copied.append(entry.name)
                    report.bytes_copied += entry.size
    finally:
        bar.close()
    if errors:
        for exc in errors[1:]:
            log(f"error: {exc}")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SyncError(
            f"{errors[0]}{more}; the other shards were copied, DST has no manifest until a "
            "sync completes (rerun to resume)"
        )
    fsio.write_bytes_atomic(dst_manifest, manifest_bytes)
    report.seconds = time.monotonic() - start
    return report
