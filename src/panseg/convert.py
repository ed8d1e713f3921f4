"""Conversion orchestration: source -> encoder -> shards, parallel, validated, resumable.

:func:`convert` runs over every requested split:

1. *List*: the source lists each split's items in output order and reports what it sees in
   its annotation files; the encoder checks each segment list against the label space.
2. *Write*: each shard still to do is encoded by one worker process and written under a
   hidden pending name (see :mod:`panseg.records.writer`); every item is checked pixel by
   pixel (areas, sizes, image and PNG modes) while it is encoded. A shard with a problem is
   not kept, and the worker goes on checking the rest of its items.
3. *Publish*: only when no problem was found anywhere are the pending shards moved into
   place and the manifest written. Otherwise :class:`ConversionFailed` lists every problem
   and nothing is published (``--strict``, the default); the shards that were fine stay
   pending, so the rerun after a fix redoes only the rest.

With ``skip_invalid=True`` a validation pass first checks every item, because the shard
layout must leave the invalid ones out; they are listed in the manifest. That mode reads
every item twice; the default reads it once.

Memory is bounded by one example per worker. Progress is shown per image with rate and ETA.

Where the work runs is an :class:`Engine`: :class:`LocalEngine` (in-process, or a spawn
process pool; the default) or :class:`panseg.convert_dask.DaskEngine` (a Dask cluster). The
phases above, and so the output bytes, do not depend on it: an engine only runs
:func:`_validate_chunk` and :func:`_write_one_shard` calls and returns their results in order.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import queue as queue_module
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from panseg import fsio
from panseg.datasets.base import ItemProblems, Problem, RawExample, Source
from panseg.datasets.info import DatasetInfo
from panseg.records import writer as shard_io
from panseg.records.manifest import Manifest, SplitEntry, load_manifest, save_manifest

VALIDATE_CHUNK = 32
SHARD_GROUP_ITEMS = 64  # a worker call writes shards of about this many images in all


class Encoder(Protocol):
    """Turns raw examples into serialized records (picklable)."""

    def check_listing(self, key: str, segments: Sequence, file: str) -> list[Problem]: ...

    def check(self, raw: RawExample) -> list[Problem]: ...

    def encode(self, raw: RawExample) -> tuple[bytes, str]: ...


class TaskFailed(Exception):
    """An unexpected error in a worker task, naming the shard and the image it was on.

    Problems with the input (:class:`Problem`) are collected, not raised; this is for
    everything else (a bug, memory, a lost worker), after the engine's retries.
    """


class Engine(Protocol):
    """Runs the worker calls of :func:`convert` somewhere (a context manager).

    Both methods return their results in the order of their input, whatever order the
    calls finish in, and raise :class:`TaskFailed` when a call fails.
    """

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...

    def map_items(
        self, fn: Callable, source: Source, encoder: Encoder, items: list, desc: str,
        progress: bool,
    ) -> list:
        """``fn(source, encoder, chunk)`` over chunks of ``items``; the lists joined."""
        ...

    def write_shards(
        self, source: Source, encoder: Encoder, out_dir: str, tasks: list, fingerprint: str,
        options: dict, desc: str, progress: bool,
    ) -> list[tuple[list[Problem], list[str]]]:
        """:func:`_write_one_shard` for each ``(file, items, digest)`` of ``tasks``."""
        ...


class ConversionFailed(Exception):
    """Problems were found and ``--strict`` is on: nothing was written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) found; nothing was written")


@dataclass
class SplitReport:
    split: str
    num_items: int = 0
    written_shards: int = 0
    skipped_shards: int = 0
    skipped_items: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ConvertReport:
    out_dir: str
    splits: dict[str, SplitReport] = field(default_factory=dict)
    manifest_path: str = ""


@dataclass(frozen=True)
class _Plan:
    split: str
    items: list
    shards: list[list[int]]
    files: list[str]
    digests: list[str]


def convert(
    *,
    source: Source,
    encoder: Encoder,
    out_dir: str,
    splits: Sequence[str],
    num_shards: int,
    dataset: DatasetInfo,
    schema: str,
    options: dict[str, Any],
    layout: str = "contiguous",
    shard_prefix: Callable[[str], str] = lambda split: split,
    workers: int = 1,
    engine: Engine | None = None,
    skip_invalid: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> ConvertReport:
    """Convert ``splits`` of ``source`` into sharded records under ``out_dir``.

    Args:
        options: everything that changes the output bytes (crowd mode, class map, ...); it
            is written into the manifest and fingerprinted, so a rerun with other options
            cannot mix its shards with these.
        shard_prefix: the file prefix of a split's shards (``split`` for DeepLab2).
        workers: processes of the default engine, ``LocalEngine(workers)``.
        engine: where the work runs (entered and exited here); the output does not
            depend on it.

    Raises:
        ConversionFailed: problems were found and ``skip_invalid`` is False.
        ShardConflict: ``out_dir`` holds shards written with other options.
        TaskFailed: a worker call failed unexpectedly (after the engine's retries).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    fingerprint_options = {"schema": schema, "dataset": dataset.to_dict(), **options}
    fingerprint = shard_io.options_fingerprint(fingerprint_options)
    fsio.makedirs(out_dir)
    shard_io.remove_stale_temporaries(out_dir)
    report = ConvertReport(out_dir)
    manifest = _existing_manifest(out_dir, schema, dataset, options) or Manifest(
        schema=schema,
        dataset=dataset,
        source={"dataset": source.name, "root": getattr(source, "root", "")},
        options=options,
    )

    with engine if engine is not None else LocalEngine(workers) as pool:
        plans: dict[str, _Plan] = {}
        todo: dict[str, list[int]] = {}
        fatal: list[Problem] = []
        for split in splits:
            items, problems = source.list_split(split)
            problems.extend(_listing_problems(source, encoder, items))
            report.splits[split] = SplitReport(split, num_items=len(items))
            bad = {p.item for p in problems if p.item}
            valid = [it for it in items if source.item_key(it) not in bad]
            plan = _plan(source, split, valid, num_shards, layout, shard_prefix(split))
            pending = _pending_shards(out_dir, plan, fingerprint)
            if skip_invalid:
                pending_items = [plan.items[i] for k in pending for i in plan.shards[k]]
                found = pool.map_items(
                    _validate_chunk, source, encoder, pending_items, f"validate {split}", progress
                )
                if found:
                    problems.extend(found)
                    bad |= {p.item for p in found if p.item}
                    valid = [it for it in valid if source.item_key(it) not in bad]
                    plan = _plan(source, split, valid, num_shards, layout, shard_prefix(split))
                    pending = _pending_shards(out_dir, plan, fingerprint)
                report.splits[split].skipped_items = [p for p in problems if p.item]
                fatal.extend(p for p in problems if not p.item)
            else:
                fatal.extend(problems)
            plans[split] = plan
            todo[split] = pending

        if fatal:
            # Listing problems: check the pixels of every other item too, so that the user
            # sees all problems at once, and write nothing.
            for split in splits:
                plan = plans[split]
                items = [plan.items[i] for k in todo[split] for i in plan.shards[k]]
                fatal.extend(
                    pool.map_items(
                        _validate_chunk, source, encoder, items, f"check {split}", progress
                    )
                )
            raise ConversionFailed(fatal)

        for split in splits:
            plan = plans[split]
            tasks = [
                (plan.files[k], [plan.items[i] for i in plan.shards[k]], plan.digests[k])
                for k in todo[split]
            ]
            for problems, warnings in pool.write_shards(
                source, encoder, out_dir, tasks, fingerprint, {"schema": schema, **options},
                f"write {split}", progress,
            ):
                fatal.extend(problems)
                report.splits[split].warnings.extend(warnings)
        if fatal:
            raise ConversionFailed(fatal)

        for split in splits:
            plan, split_report = plans[split], report.splits[split]
            split_report.written_shards = len(todo[split])
            split_report.skipped_shards = len(plan.shards) - len(todo[split])
            entries = []
            for k, file in enumerate(plan.files):
                shard_io.publish_shard(out_dir, file)
                entry = shard_io.completed_shard(
                    out_dir, file, fingerprint=fingerprint, digest=plan.digests[k]
                )
                if entry is None:
                    raise RuntimeError(f"{out_dir}: shard {file} is missing after writing")
                entries.append(entry)
            skipped = tuple(
                {"item": p.item, "file": p.file, "problem": p.message}
                for p in split_report.skipped_items
            )
            manifest = manifest.with_split(split, SplitEntry(tuple(entries), skipped))
            report.manifest_path = save_manifest(manifest, out_dir)
            for warning in split_report.warnings[:5]:
                log(f"warning: {warning}")
            if len(split_report.warnings) > 5:
                log(f"warning: ... and {len(split_report.warnings) - 5} more such warnings")
    return report


# --------------------------------------------------------------------------------- planning
def _listing_problems(source: Source, encoder: Encoder, items: list) -> list[Problem]:
    problems: list[Problem] = []
    for item in items:
        segments = getattr(item, "segments", None)
        if segments is not None:
            label_file = getattr(item, "label_path", "") or ""
            problems.extend(encoder.check_listing(source.item_key(item), segments, label_file))
    return problems


def _plan(
    source: Source, split: str, items: list, num_shards: int, layout: str, prefix: str
) -> _Plan:
    shards = shard_io.shard_layout(len(items), num_shards, layout)
    files = [shard_io.shard_name(prefix, k, num_shards) for k in range(num_shards)]
    digests = [shard_io.items_digest([source.item_key(items[i]) for i in s]) for s in shards]
    return _Plan(split, items, shards, files, digests)


def _pending_shards(out_dir: str, plan: _Plan, fingerprint: str) -> list[int]:
    return [
        k
        for k in range(len(plan.shards))
        if shard_io.completed_shard(
            out_dir, plan.files[k], fingerprint=fingerprint, digest=plan.digests[k]
        )
        is None
    ]


def _existing_manifest(
    out_dir: str, schema: str, dataset: DatasetInfo, options: dict
) -> Manifest | None:
    if not fsio.exists(fsio.join(out_dir, "manifest.json")):
        return None
    manifest = load_manifest(out_dir)
    if manifest.schema != schema or manifest.dataset != dataset or manifest.options != options:
        raise shard_io.ShardConflict(
            f"{out_dir}/manifest.json describes records written with other options "
            f"(schema {manifest.schema}, options {dict(manifest.options)}); "
            "use another --out directory"
        )
    return manifest


# ---------------------------------------------------------------------------- worker side
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
