"""The worker side of :func:`panseg.convert.convert`, and the local engine that runs it.

:func:`_validate_chunk` and :func:`_write_one_shard` are what a worker does with the items
an engine hands it; their per-image progress ticks go to this thread's *progress sink*
(:func:`progress_sink`). :class:`LocalEngine` runs them in this process (one worker) or in a
spawn process pool, with a progress bar; ``panseg.convert_dask`` runs the same functions on a
Dask cluster. :func:`keep_freed_memory` tunes glibc in the processes that encode.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import queue as queue_module
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from panseg import fsio
from panseg.datasets.base import ItemProblems, Problem, Source
from panseg.records import writer as shard_io

if TYPE_CHECKING:
    from panseg.convert import Encoder

VALIDATE_CHUNK = 32
SHARD_GROUP_ITEMS = 64  # a worker call writes shards of about this many images in all


class TaskFailed(Exception):
    """An unexpected error in a worker task, naming the shard and the image it was on.

    Problems with the input (:class:`Problem`) are collected, not raised; this is for
    everything else (a bug, memory, a lost worker), after the engine's retries.
    """


_progress = threading.local()  # .sink: where this thread's ticks go (``put(n)``), or None


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse in this process (no-op elsewhere).

    A converter allocates and frees several buffers of one to eight megabytes per image (id
    map, label, record). With glibc's defaults each is handed back to the kernel when freed
    and faulted in again, zeroed, for the next image: 250 000 page faults and a quarter of
    the CPU time for 500 COCO-size images. Raising the mmap and trim thresholds keeps them in
    the heap. Called in worker processes and by the CLI, never behind a library caller's back.
    Returns whether the setting took.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    _allocator_tuned = bool(mallopt(m_mmap_threshold, 64 << 20)) and bool(
        mallopt(m_trim_threshold, 256 << 20)
    )
    return _allocator_tuned


_allocator_tuned = False


def _init_worker(progress_queue: Any, storage_options: dict | None = None) -> None:
    keep_freed_memory()
    _progress.sink = progress_queue
    if storage_options:
        fsio.configure(storage_options)  # the parent's object-store options


@contextmanager
def progress_sink(sink: Any) -> Iterator[None]:
    """Send this thread's per-image ticks to ``sink.put(n)`` (engines that run calls)."""
    previous = getattr(_progress, "sink", None)
    _progress.sink = sink
    try:
        yield
    finally:
        _progress.sink = previous


def _tick(n: int = 1) -> None:
    sink = getattr(_progress, "sink", None)
    if sink is not None:
        sink.put(n)


def _failed(exc: Exception, image: str, shard: str = "") -> TaskFailed:
    where = f"shard {shard}, image {image}" if shard else f"image {image}"
    return TaskFailed(f"{where}: {type(exc).__name__}: {exc}")


def _validate_chunk(source: Source, encoder: Encoder, items: list) -> list[Problem]:
    problems: list[Problem] = []
    for item in items:
        try:
            raw = source.load(item)
        except OSError as exc:
            key = source.item_key(item)
            problems.append(Problem(getattr(item, "image_path", key), str(exc), item=key))
        except Exception as exc:
            raise _failed(exc, source.item_key(item)) from exc
        else:
            try:
                problems.extend(encoder.check(raw))
            except Exception as exc:
                raise _failed(exc, source.item_key(item)) from exc
        _tick()
    return problems


def _write_one_shard(
    source: Source,
    encoder: Encoder,
    out_dir: str,
    file: str,
    items: list,
    digest: str,
    fingerprint: str,
    options: dict,
) -> tuple[list[Problem], list[str]]:
    """Encode and write one shard; returns its problems (then nothing is kept) and warnings."""
    warnings: list[str] = []
    problems: list[Problem] = []

    def examples():
        for item in items:
            try:
                example, warning = encoder.encode(source.load(item))
            except ItemProblems as exc:
                problems.extend(exc.problems)
            except OSError as exc:
                key = source.item_key(item)
                problems.append(Problem(getattr(item, "image_path", key), str(exc), item=key))
            except Exception as exc:
                raise _failed(exc, source.item_key(item), file) from exc
            else:
                if warning:
                    warnings.append(warning)
                if not problems:
                    yield example
            _tick()
        if problems:
            raise _ShardRejected()

    try:
        shard_io.write_shard(
            out_dir, file, examples(), fingerprint=fingerprint, digest=digest, options=options
        )
    except _ShardRejected:
        pass  # the temporary file is gone; the problems go back to the caller
    except TaskFailed:
        raise
    except Exception as exc:  # writing itself failed (disk full, lost connection)
        raise TaskFailed(f"shard {file}: {type(exc).__name__}: {exc}") from exc
    return problems, warnings


def _write_shard_group(
    source: Source, encoder: Encoder, out_dir: str, group: list, fingerprint: str, options: dict
) -> list[tuple[list[Problem], list[str]]]:
    """:func:`_write_one_shard` for several small shards in one worker call."""
    return [
        _write_one_shard(source, encoder, out_dir, file, items, digest, fingerprint, options)
        for file, items, digest in group
    ]


class _ShardRejected(Exception):
    """Aborts the atomic write of a shard in which an item had a problem."""


class LocalEngine:
    """Runs calls in-process (``workers <= 1``) or in a spawn process pool, with a bar."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))
        self._executor: ProcessPoolExecutor | None = None
        self._queue: Any = None

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _ensure(self) -> ProcessPoolExecutor:
        if self._executor is None:
            ctx = mp.get_context("spawn")
            self._queue = ctx.Queue()
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker,
                initargs=(self._queue, fsio.storage_options()),
            )
        return self._executor

    def map_items(self, fn, source, encoder, items: list, desc: str, progress: bool) -> list:
        if not items:
            return []
        chunks = [items[i : i + VALIDATE_CHUNK] for i in range(0, len(items), VALIDATE_CHUNK)]
        calls = [(fn, (source, encoder, chunk)) for chunk in chunks]
        out: list = []
        for result in self._run(calls, len(items), desc, progress):
            out.extend(result)
        return out

    def write_shards(
        self, source, encoder, out_dir, tasks, fingerprint, options, desc, progress
    ) -> list[tuple[list[Problem], list[str]]]:
        # Many small shards (DeepLab2's 1000 for a few thousand images) go to the workers in
        # groups of consecutive shards: one call, one pickled source and encoder per group.
        total = sum(len(items) for _, items, _ in tasks)
        size = 1
        if self.workers > 1 and tasks:
            per_shard = max(1, total // len(tasks))
            size = max(1, min(len(tasks) // (4 * self.workers), SHARD_GROUP_ITEMS // per_shard))
        groups = [tasks[i : i + size] for i in range(0, len(tasks), size)]
        calls = [
            (_write_shard_group, (source, encoder, out_dir, group, fingerprint, options))
            for group in groups
        ]
        return [result for group in self._run(calls, total, desc, progress) for result in group]

    def _run(self, calls, total: int, desc: str, progress: bool):
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, smoothing=0.1)
        try:
            if self.workers == 1:
                with progress_sink(_BarQueue(bar)):
                    return [fn(*args) for fn, args in calls]
            executor = self._ensure()
            futures: list[Future] = [executor.submit(fn, *args) for fn, args in calls]
            while not all(f.done() for f in futures):
                self._drain(bar, timeout=0.1)
            self._drain(bar, timeout=0)
            return [f.result() for f in futures]
        finally:
            bar.close()

    def _drain(self, bar, timeout: float) -> None:
        try:
            n = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
            bar.update(n)
            while True:
                bar.update(self._queue.get_nowait())
        except queue_module.Empty:
            pass


class _BarQueue:
    """In-process stand-in for the progress queue."""

    def __init__(self, bar) -> None:
        self.bar = bar

    def put(self, n: int) -> None:
        self.bar.update(n)
