"""Download, verify and extract a list of archives into a dataset root, with time estimates.

For each archive, in order: skip it when the root's state file says it was already extracted
(and its expected paths exist); otherwise reuse a finished archive file (verified again) or
download it (resuming a ``.part``), extract it atomically, check that the paths the table
expects exist, record it in ``ROOT/.panseg-download.json`` and delete the archive unless asked
to keep it. Before starting it prints the plan (sizes, bytes left); after each step it prints
the measured download and extraction rates and what they mean for the archives still to come.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from panseg.download.archives import Archive
from panseg.download.extract import ExtractError, extract_zip
from panseg.download.http import DownloadError, download_file, verify_file

STATE_FILE = ".panseg-download.json"


def _gb(n: float) -> str:
    if n >= 1e8:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{int(n)} bytes"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _read_state(root: Path) -> dict:
    path = root / STATE_FILE
    if not path.exists():
        return {"extracted": {}}
    try:
        state = json.loads(path.read_text())
    except ValueError as exc:
        raise DownloadError(f"{path}: not valid JSON ({exc}); delete it to start over") from exc
    state.setdefault("extracted", {})
    return state


def _write_state(root: Path, state: dict) -> None:
    path = root / STATE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, path)


def is_extracted(archive: Archive, root: Path, state: Mapping) -> bool:
    """True when ``state`` records this exact archive and all its expected paths exist."""
    rec = state.get("extracted", {}).get(archive.name)
    return (rec is not None and rec.get("size") == archive.size and rec.get("md5") == archive.md5
            and all((root / p).exists() for p in archive.expects))


def bytes_left(archive: Archive, archive_dir: Path) -> int:
    """Bytes still to download for ``archive`` (0 when the file is complete)."""
    if (archive_dir / archive.name).exists():
        return 0
    sidecar = archive_dir / f"{archive.name}.part.json"
    try:
        done = json.loads(sidecar.read_text())["done"] if sidecar.exists() else []
        return max(0, archive.size - sum(int(e) - int(s) for s, e in done))
    except (ValueError, KeyError, TypeError):
        return archive.size


def fetch_archives(
    archives: Sequence[Archive],
    root: Path | str,
    *,
    base_url: str,
    archive_dir: Path | str | None = None,
    headers: Mapping[str, str] | None = None,
    connections: int = 8,
    chunk_size: int = 8 << 20,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    extract: bool = True,
    keep_archives: bool = False,
    workers: int = 4,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Bring ``archives`` from ``base_url`` into ``root``; returns the archive paths handled.

    ``archive_dir`` (default ``ROOT/archives``) holds the downloads. With ``extract=False`` the
    archives are only downloaded and verified (and always kept). Other arguments are those of
    :func:`panseg.download.http.download_file` and :func:`panseg.download.extract.extract_zip`.
    Raises :class:`DownloadError`, :class:`ChecksumError` or :class:`ExtractError`.
    """
    root = Path(root)
    archive_dir = Path(archive_dir) if archive_dir is not None else root / "archives"
    root.mkdir(parents=True, exist_ok=True)
    archive_dir.mkdir(parents=True, exist_ok=True)
    state = _read_state(root)
    todo = [a for a in archives if not (extract and is_extracted(a, root, state))]
    for a in archives:
        if a not in todo:
            log(f"{a.name}: already extracted in {root}, skipped")
    left = {a.name: bytes_left(a, archive_dir) for a in todo}
    total_left = sum(left.values())
    if todo:
        log(f"plan: {len(todo)} archive(s), {_gb(sum(a.size for a in todo))} in all, "
            f"{_gb(total_left)} left to download from {base_url}")
        for a in todo:
            log(f"  {a.name:40s} {_gb(a.size):>10s}  left {_gb(left[a.name])}")
    free = shutil.disk_usage(archive_dir).free
    if total_left > free:
        raise DownloadError(f"{archive_dir}: {_gb(free)} free, {_gb(total_left)} to download")
    if extract and total_left + sum(a.size for a in todo) > free:
        log(f"warning: {_gb(free)} free; downloading and extracting need about "
            f"{_gb(total_left + sum(a.size for a in todo))}")

    rate_dl: float | None = None
    done_paths: list[Path] = []
    for index, a in enumerate(todo):
        path = archive_dir / a.name
        if path.exists():
            log(f"{a.name}: present, verifying size and md5")
            verify_file(path, size=a.size, md5=a.md5, progress=progress)
        else:
            t0 = time.monotonic()
            download_file(a.url(base_url), path, size=a.size, md5=a.md5, headers=headers,
                          connections=connections, chunk_size=chunk_size, retries=retries,
                          backoff=backoff, timeout=timeout, progress=progress)
            dt = max(time.monotonic() - t0, 1e-6)
            if left[a.name] > 0:
                rate_dl = left[a.name] / dt
                log(f"{a.name}: downloaded and verified {_gb(left[a.name])} in {_duration(dt)} "
                    f"({rate_dl / 1e6:.1f} MB/s with verification)")
        rest = sum(left[b.name] for b in todo[index + 1:])
        if rate_dl and rest:
            log(f"  at this rate the remaining {_gb(rest)} take about {_duration(rest / rate_dl)}")
        if extract:
            t0 = time.monotonic()
            names = extract_zip(path, root, nested=a.nested, workers=workers, progress=progress)
            dt = max(time.monotonic() - t0, 1e-6)
            missing = [p for p in a.expects if not (root / p).exists()]
            if missing:
                raise ExtractError(f"{a.name}: extracted {names} but {missing} are missing; "
                                   "is this the archive the table describes?")
            log(f"{a.name}: extracted {', '.join(names)} in {_duration(dt)} "
                f"({a.size / dt / 1e6:.1f} MB/s of archive)")
            state["extracted"][a.name] = {"size": a.size, "md5": a.md5, "top": names}
            _write_state(root, state)
            if not keep_archives:
                path.unlink()
        done_paths.append(path)
    return done_paths
