"""Zip extraction with a progress bar, several threads, and an all-or-nothing result.

An archive is extracted into a hidden temporary directory beside its destination
(``ROOT/.panseg-extract-<archive>``); nested zips named by the archive table (COCO's
``annotations/panoptic_{train,val}2017.zip``) are extracted in turn into their own directory
and deleted; only then are the top-level entries renamed into ``ROOT`` (merging with existing
directories, e.g. ``annotations/`` filled by two archives). A killed extraction leaves only the
temporary directory, which the next run deletes and redoes. Every member's CRC-32 is checked by
:mod:`zipfile` while it is read; a bad member or an unsafe name (absolute, ``..``) raises
:class:`ExtractError` naming the archive and the member, and nothing reaches ``ROOT``.

Members are split across threads, each with its own :class:`zipfile.ZipFile` handle; zlib
inflation, CRC and file writes release the GIL, so threads help on many-core machines.
"""

from __future__ import annotations

import os
import shutil
import threading
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from tqdm import tqdm


class ExtractError(RuntimeError):
    """A zip cannot be extracted safely; the message names the archive and the member."""


def _safe_name(archive: Path, name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ExtractError(f"{archive.name}: unsafe member name {name!r}")
    return path


def _split(infos: list[zipfile.ZipInfo], parts: int) -> list[list[zipfile.ZipInfo]]:
    """Contiguous slices of about equal compressed size (keeps each thread reading forward)."""
    total = sum(i.compress_size for i in infos) or 1
    out: list[list[zipfile.ZipInfo]] = [[]]
    acc = 0
    for info in infos:
        if acc >= total * len(out) / parts and len(out) < parts:
            out.append([])
        out[-1].append(info)
        acc += info.compress_size
    return [s for s in out if s]


def _extract_members(archive: Path, dest: Path, *, workers: int, progress: bool,
                     desc: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ExtractError(f"{archive.name}: not a readable zip ({exc})") from exc
    files: list[zipfile.ZipInfo] = []
    targets: dict[str, Path] = {}
    made: set[Path] = set()
    for info in infos:
        target = dest / _safe_name(archive, info.filename)
        folder = target if info.is_dir() else target.parent
        if folder not in made:  # one mkdir per directory, not per member
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        if not info.is_dir():
            files.append(info)
            targets[info.filename] = target
    errors: list[BaseException] = []
    stop = threading.Event()
    bar = tqdm(total=sum(i.file_size for i in files), unit="B", unit_scale=True, desc=desc,
               disable=not progress, leave=False, dynamic_ncols=True)

    def run(chunk: list[zipfile.ZipInfo]) -> None:
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in chunk:
                    if stop.is_set():
                        return
                    try:
                        with zf.open(info) as src, open(targets[info.filename], "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                        raise ExtractError(
                            f"{archive.name}: member {info.filename!r} is damaged ({exc})"
                        ) from exc
                    bar.update(info.file_size)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, args=(c,), daemon=True)
               for c in _split(files, max(1, workers))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except BaseException:
        stop.set()
        for t in threads:
            t.join()
        raise
    finally:
        bar.close()
    if errors:
        err = errors[0]
        if isinstance(err, ExtractError):
            raise err
        raise ExtractError(f"{archive.name}: {type(err).__name__}: {err}") from err


def _merge_into(src: Path, dst: Path) -> None:
    """Rename every entry of ``src`` into ``dst``; directories present in both are merged."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        target = dst / item.name
        if item.is_dir() and target.is_dir():
            _merge_into(item, target)
            item.rmdir()
        elif item.is_dir() != target.is_dir() and target.exists():
            raise ExtractError(f"cannot place {item.name}: {target} exists and is a "
                               f"{'directory' if target.is_dir() else 'file'}")
        else:
            os.replace(item, target)


def temp_dir_for(archive: Path, root: Path) -> Path:
    """The hidden directory where ``archive`` is extracted before it is renamed into ``root``."""
    return root / f".panseg-extract-{archive.name}"


def extract_zip(archive: Path | str, root: Path | str, *, nested: Sequence[str] = (),
                workers: int = 4, progress: bool = True) -> list[str]:
    """Extract ``archive`` into ``root`` atomically, then its ``nested`` zips in place.

    Args:
        archive: the zip file.
        root: destination directory (created if needed).
        nested: member paths of zips to extract into their own directory and delete afterwards,
            e.g. ``annotations/panoptic_val2017.zip`` -> ``annotations/panoptic_val2017/*.png``.
        workers: extraction threads.
        progress: show a tqdm bar (uncompressed bytes, MB/s, ETA).

    Returns the sorted top-level names placed in ``root``. Raises :class:`ExtractError`.
    """
    archive, root = Path(archive), Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_for(archive, root)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _extract_members(archive, tmp, workers=workers, progress=progress,
                         desc=f"extract {archive.name}")
        for inner in nested:
            inner_path = tmp / _safe_name(archive, inner)
            if not inner_path.is_file():
                raise ExtractError(f"{archive.name}: the nested archive {inner} is missing")
            _extract_members(inner_path, inner_path.parent, workers=workers, progress=progress,
                             desc=f"extract {inner}")
            inner_path.unlink()
        names = sorted(p.name for p in tmp.iterdir())
        _merge_into(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    return names
