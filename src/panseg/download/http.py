"""Parallel ranged HTTP downloads that resume after an interruption and verify size and md5.

One file is cut into fixed chunks fetched by several threads with ``Range`` requests when the
server answers a probe ``Range: bytes=0-0`` with ``206 Partial Content``; otherwise it is read
as one stream. Bytes go to ``<name>.part`` (pre-sized, written at each chunk's offset); after
each finished chunk the byte ranges completed so far are written atomically to the sidecar
``<name>.part.json``. A later run reads the sidecar and fetches only the missing bytes. A chunk
cut short by an error or Ctrl-C records what arrived; a killed process (SIGKILL, power loss)
loses at most the chunks in flight. A dropped connection inside a chunk is retried from the
last byte received, with exponential back-off.

When all bytes are there the size is checked, then the md5: computed while writing for a single
stream; for parallel ranges, which arrive out of order, a background thread hashes the completed
prefix of the file as it grows (chunks are handed out in ascending order), so the digest is
ready moments after the last byte. Only then is ``.part`` renamed to the final name. A file
whose md5 differs is moved aside to ``<name>.corrupt`` and :class:`ChecksumError` names it; it
is never extracted.

Only the standard library (``urllib.request``) and tqdm are used: urllib honours the usual
proxy environment variables and https certificates, and needs no extra dependency.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from panseg import __version__

USER_AGENT = f"panseg/{__version__} (+download)"
_BLOCK = 1 << 18  # bytes per socket read and per progress update
_RETRYABLE = (OSError, http.client.HTTPException, urllib.error.URLError, socket.timeout)


class DownloadError(RuntimeError):
    """A download failed (network, server answer, or size); the message names the file."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected md5; the bad file was moved aside."""


@dataclass(frozen=True)
class RemoteInfo:
    """What a probe learned: total size in bytes (None if unknown) and Range support."""

    size: int | None
    ranges: bool
    content_type: str = ""
    final_url: str = ""


def _request(url: str, headers: Mapping[str, str] | None, extra: Mapping[str, str] | None = None
             ) -> urllib.request.Request:
    merged = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    merged.update(headers or {})
    merged.update(extra or {})
    return urllib.request.Request(url, headers=merged)


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code in (408, 429)
    return isinstance(exc, _RETRYABLE)


def _sleep_backoff(attempt: int, backoff: float) -> None:
    if backoff > 0:
        time.sleep(min(backoff * 2 ** (attempt - 1), 30.0))


def probe(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 60.0,
          retries: int = 5, backoff: float = 1.0) -> RemoteInfo:
    """Ask for byte 0 only: a 206 answer proves Range support and gives the total size."""
    attempt = 0
    while True:
        try:
            with urllib.request.urlopen(
                _request(url, headers, {"Range": "bytes=0-0"}), timeout=timeout
            ) as resp:
                ctype = resp.headers.get("Content-Type", "") or ""
                if resp.status == 206:
                    total = (resp.headers.get("Content-Range") or "").rpartition("/")[2]
                    return RemoteInfo(int(total) if total.isdigit() else None, True, ctype,
                                      resp.geturl())
                length = resp.headers.get("Content-Length")
                return RemoteInfo(int(length) if length and length.isdigit() else None,
                                  False, ctype, resp.geturl())
        except Exception as exc:
            attempt += 1
            if not _is_retryable(exc) or attempt > retries:
                raise DownloadError(f"{url}: {_describe(exc)}") from exc
            _sleep_backoff(attempt, backoff)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def md5_file(path: Path, *, progress: bool = True, desc: str | None = None) -> str:
    """Hex md5 of a file, read in 4 MiB blocks, with a progress bar."""
    digest = hashlib.md5()
    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(
        total=size, unit="B", unit_scale=True, desc=desc or f"md5 {path.name}",
        disable=not progress, leave=False,
    ) as bar:
        while block := f.read(1 << 22):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


# ---- sidecar of completed byte ranges -------------------------------------------------------


def _merge(ranges: list[tuple[int, int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


def _load_sidecar(sidecar: Path, part: Path, size: int) -> list[list[int]]:
    """Completed ``[start, end)`` ranges from a previous run, or [] when they cannot be trusted."""
    if not (sidecar.exists() and part.exists()) or part.stat().st_size != size:
        return []
    try:
        state = json.loads(sidecar.read_text())
        done = [[int(s), int(e)] for s, e in state["done"]]
    except (ValueError, KeyError, TypeError):
        return []
    if state.get("size") != size or any(not 0 <= s < e <= size for s, e in done):
        return []
    return _merge([(s, e) for s, e in done])


def _save_sidecar(sidecar: Path, url: str, size: int, done: list[list[int]]) -> None:
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps({"url": url, "size": size, "done": done}))
    os.replace(tmp, sidecar)


def _missing(done: list[list[int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` not covered by the sorted, merged ``done`` ranges."""
    out, pos = [], start
    for s, e in done:
        if e <= pos:
            continue
        if s >= end:
            break
        if s > pos:
            out.append((pos, s))
        pos = e
        if pos >= end:
            break
    if pos < end:
        out.append((pos, end))
    return out


# ---- the download ---------------------------------------------------------------------------


@dataclass
class _Shared:
    url: str
    part: Path
    sidecar: Path
    size: int
    headers: Mapping[str, str] | None
    timeout: float
    retries: int
    backoff: float
    bar: tqdm
    pending: list[tuple[int, int]]
    done: list[list[int]]
    lock: threading.Condition  # guards pending/done; notified when a chunk completes
    stop: threading.Event
    error: BaseException | None = None


def _fetch_range(sh: _Shared, f, start: int, end: int, reached: list[int]) -> None:
    """Write bytes ``[start, end)`` at their offset, retrying from the last byte received.

    ``reached[0]`` follows the end of the bytes written, also when this raises or returns early
    because another worker asked everyone to stop.
    """
    pos, attempt = start, 0
    while pos < end:
        if sh.stop.is_set():
            return
        got_bytes = False
        try:
            req = _request(sh.url, sh.headers, {"Range": f"bytes={pos}-{end - 1}"})
            with urllib.request.urlopen(req, timeout=sh.timeout) as resp:
                first = (resp.headers.get("Content-Range") or "").removeprefix("bytes ")
                if resp.status != 206 or not first.startswith(f"{pos}-"):
                    raise DownloadError(
                        f"{sh.url}: asked for bytes {pos}-{end - 1}, got HTTP {resp.status} "
                        f"Content-Range {first or 'none'!r}"
                    )
                f.seek(pos)
                while pos < end:
                    block = resp.read(min(_BLOCK, end - pos))
                    if not block:
                        raise http.client.IncompleteRead(b"", end - pos)
                    f.write(block)
                    pos += len(block)
                    reached[0] = pos
                    got_bytes = True
                    sh.bar.update(len(block))
                    if sh.stop.is_set():
                        return
        except DownloadError:
            raise
        except Exception as exc:
            attempt = 1 if got_bytes else attempt + 1
            if not _is_retryable(exc) or attempt > sh.retries:
                raise DownloadError(
                    f"{sh.part.name.removesuffix('.part')}: bytes {pos}-{end - 1} of {sh.url}: "
                    f"{_describe(exc)} (after {attempt} attempt(s))"
                ) from exc
            _sleep_backoff(attempt, sh.backoff)


def _record(sh: _Shared, start: int, end: int) -> None:
    """Add ``[start, end)`` (already flushed to the file) to the sidecar; wake the hasher."""
    with sh.lock:
        sh.done[:] = _merge([(s, e) for s, e in sh.done] + [(start, end)])
        _save_sidecar(sh.sidecar, sh.url, sh.size, sh.done)
        sh.lock.notify_all()


def _worker(sh: _Shared) -> None:
    try:
        with open(sh.part, "r+b") as f:
            while not sh.stop.is_set():
                with sh.lock:
                    if not sh.pending:
                        return
                    start, end = sh.pending.pop(0)
                reached = [start]
                try:
                    _fetch_range(sh, f, start, end, reached)
                finally:
                    # whatever arrived is kept, also from a chunk cut short by an error or a stop
                    f.flush()
                    if reached[0] > start:
                        _record(sh, start, reached[0])
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        with sh.lock:
            if sh.error is None:
                sh.error = exc
            sh.stop.set()
            sh.lock.notify_all()


def _hasher(sh: _Shared, result: list[str]) -> None:
    """md5 of the file, following the completed prefix ``[0, done[0][1])`` as it grows.

    Chunks are handed out in ascending order, so the prefix grows steadily and the bytes are
    read back while still in the page cache; the digest is ready moments after the last chunk.
    """
    digest, pos = hashlib.md5(), 0
    # unbuffered: a buffered reader could keep read-ahead bytes from before a chunk was written
    with open(sh.part, "rb", buffering=0) as f:
        while pos < sh.size:
            with sh.lock:
                while not sh.stop.is_set():
                    limit = sh.done[0][1] if sh.done and sh.done[0][0] == 0 else 0
                    if limit > pos:
                        break
                    sh.lock.wait(0.5)
                else:
                    return
            f.seek(pos)
            while pos < limit:
                block = f.read(min(1 << 22, limit - pos))
                if not block:
                    return
                digest.update(block)
                pos += len(block)
    result.append(digest.hexdigest())


def _download_ranges(url: str, part: Path, sidecar: Path, size: int, *, bar: tqdm,
                     headers: Mapping[str, str] | None, connections: int, chunk_size: int,
                     retries: int, backoff: float, timeout: float, want_md5: bool
                     ) -> str | None:
    """Fetch the missing chunks; returns the md5 (computed alongside) when ``want_md5``."""
    done = _load_sidecar(sidecar, part, size)
    if not done:
        with open(part, "wb") as f:
            f.truncate(size)
    # small files are still spread over all connections (chunks of at least 1 MiB)
    chunk_size = max(1, min(chunk_size, max(-(-size // connections), 1 << 20)))
    pending = [piece for s in range(0, size, chunk_size)
               for piece in _missing(done, s, min(s + chunk_size, size))]
    bar.update(size - sum(e - s for s, e in pending))
    _save_sidecar(sidecar, url, size, done)
    sh = _Shared(url, part, sidecar, size, headers, timeout, retries, backoff, bar, pending,
                 done, threading.Condition(), threading.Event())
    threads = [threading.Thread(target=_worker, args=(sh,), daemon=True)
               for _ in range(max(1, min(connections, len(pending))))]
    md5: list[str] = []
    if want_md5:
        threads.append(threading.Thread(target=_hasher, args=(sh, md5), daemon=True))
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except BaseException:
        with sh.lock:
            sh.stop.set()
            sh.lock.notify_all()
        for t in threads:
            t.join()
        raise
    if sh.error is not None:
        if isinstance(sh.error, DownloadError):
            raise sh.error
        raise DownloadError(f"{part.name}: {_describe(sh.error)}") from sh.error
    return md5[0] if md5 else None


def _download_stream(url: str, part: Path, size: int | None, *, bar: tqdm,
                     headers: Mapping[str, str] | None, retries: int, backoff: float,
                     timeout: float) -> str:
    """One sequential GET (the server ignores Range); restarts from 0 on failure. Returns md5."""
    attempt = 0
    while True:
        digest, pos = hashlib.md5(), 0
        try:
            with urllib.request.urlopen(_request(url, headers), timeout=timeout) as resp, \
                    open(part, "wb") as f:
                while block := resp.read(_BLOCK):
                    f.write(block)
                    digest.update(block)
                    pos += len(block)
                    bar.update(len(block))
            if size is not None and pos != size:
                raise http.client.IncompleteRead(b"", size - pos)
            return digest.hexdigest()
        except Exception as exc:
            bar.update(-pos)
            attempt += 1
            if not _is_retryable(exc) or attempt > retries:
                raise DownloadError(f"{part.name.removesuffix('.part')}: {url}: "
                                    f"{_describe(exc)} (after {attempt} attempt(s))") from exc
            _sleep_backoff(attempt, backoff)


def download_file(url: str, dest: Path | str, *, size: int | None = None, md5: str | None = None,
                  headers: Mapping[str, str] | None = None, connections: int = 8,
                  chunk_size: int = 8 << 20, retries: int = 5, backoff: float = 1.0,
                  timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (resuming a previous ``.part``) and verify size and md5.

    Args:
        url: http(s) URL.
        dest: final local path; ``dest.part`` and ``dest.part.json`` are used meanwhile.
        size: expected size in bytes (the archive table's fact); None to trust the server.
        md5: expected lowercase hex md5, or None to skip the checksum.
        headers: extra request headers (e.g. a session ``Cookie``).
        connections: parallel ranged requests for this file.
        chunk_size: bytes per ranged request; also the unit of resume.
        retries: consecutive failed attempts allowed per chunk before giving up.
        backoff: first retry delay in seconds (doubles per attempt, capped at 30 s).
        timeout: socket timeout in seconds.
        progress: show tqdm bars (bytes, MB/s, ETA).

    Returns ``dest``. Raises :class:`DownloadError` (network, server answer, size) or
    :class:`ChecksumError` (md5; the file is left at ``dest.corrupt``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    sidecar = dest.with_name(dest.name + ".part.json")
    info = probe(url, headers=headers, timeout=timeout, retries=retries, backoff=backoff)
    if size is not None and info.size is not None and info.size != size:
        notes = []
        if "html" in info.content_type:
            notes.append("an HTML page")
        if info.final_url not in ("", url):
            notes.append(f"redirected to {info.final_url}")
        hint = f" ({', '.join(notes)}: login expired or no access?)" if notes else ""
        raise DownloadError(
            f"{dest.name}: {url} serves {info.size} bytes{hint}, the archive table says {size}"
        )
    total = size if size is not None else info.size
    with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress,
              smoothing=0.05, dynamic_ncols=True) as bar:
        if info.ranges and total:
            got_md5 = _download_ranges(url, part, sidecar, total, bar=bar, headers=headers,
                                       connections=connections, chunk_size=chunk_size,
                                       retries=retries, backoff=backoff, timeout=timeout,
                                       want_md5=md5 is not None)
        else:
            sidecar.unlink(missing_ok=True)
            got_md5 = _download_stream(url, part, total, bar=bar, headers=headers,
                                       retries=retries, backoff=backoff, timeout=timeout)
    verify_file(part, size=total, md5=md5, name=dest.name, progress=progress, known_md5=got_md5)
    os.replace(part, dest)
    sidecar.unlink(missing_ok=True)
    return dest


def verify_file(path: Path, *, size: int | None, md5: str | None, name: str | None = None,
                progress: bool = True, known_md5: str | None = None) -> None:
    """Check size, then md5; a mismatching file is moved to ``<name>.corrupt`` and raises.

    ``known_md5`` is a digest already computed while writing (skips reading the file again).
    """
    name = name or path.name
    actual = path.stat().st_size
    corrupt = path.with_name(name + ".corrupt")
    if size is not None and actual != size:
        os.replace(path, corrupt)
        path.with_name(name + ".part.json").unlink(missing_ok=True)
        raise DownloadError(f"{name}: {actual} bytes, expected {size}; kept aside as {corrupt}")
    if md5 is None:
        return
    got = known_md5 or md5_file(path, progress=progress, desc=f"md5 {name}")
    if got != md5.lower():
        os.replace(path, corrupt)
        path.with_name(name + ".part.json").unlink(missing_ok=True)
        raise ChecksumError(
            f"{name}: md5 {got} does not match the expected {md5}; the download is corrupt "
            f"and was kept aside as {corrupt} (delete it and run again)"
        )
