"""The Dask engine of :func:`panseg.convert.convert`: each shard is one Dask task.

:class:`DaskEngine` runs the same worker calls as :class:`panseg.convert.LocalEngine`
(``_write_one_shard`` per shard, ``_validate_chunk`` per chunk of 32 items) on a Dask
cluster: an existing scheduler (``scheduler="tcp://host:8786"`` or a scheduler file), a
:class:`distributed.Client` you made (``client=``), or a :func:`local_cluster` of
``local_workers`` processes. Listing, the decision of which shards are still to do, and
publishing stay in the calling process, so the output directory ends up byte-for-byte what
the local engine writes, and a rerun skips the shards that are complete in the same way.
Workers write into the output directory themselves: every worker must see it (a shared
filesystem, or an object-store URL; the client's :func:`panseg.fsio.configure` options travel
with each task) and must have panseg installed. The cluster is contacted only when there is
work: a rerun with every shard complete does not start or reach one.

Progress: each task sends its per-image count, at most four times a second, as a Dask event
(``Worker.log_event``) that the client turns into the bar; a finished task tops its shard up.

Failures: a task that raises is retried ``retries`` times by the scheduler (writing a shard is
atomic, so a retry starts clean). A task that still fails is reported with its shard and the
image it was on (:class:`panseg.convert.TaskFailed`), after every other task has finished:
their shards stay pending, and the rerun redoes only the failed ones.

``dask[distributed]`` is the optional extra ``panseg[dask]``; it is imported only here.
"""

from __future__ import annotations

import logging
import os
import queue as queue_module
import time
import uuid
from collections.abc import Callable
from typing import Any

from panseg import fsio
from panseg.convert_workers import (
    VALIDATE_CHUNK,
    TaskFailed,
    _write_one_shard,
    keep_freed_memory,
    progress_sink,
)

FLUSH_SECONDS = 0.25


class DaskEngine:
    """Runs conversion calls as Dask tasks (see the module docstring).

    Args:
        scheduler: address of a running scheduler (``tcp://host:8786``), or the JSON file
            that ``dask scheduler --scheduler-file FILE`` writes.
        local_workers: start a ``LocalCluster`` of this many one-thread worker processes
            (default: the number of CPUs) when neither ``scheduler`` nor ``client`` is given.
        client: a connected :class:`distributed.Client` to use (not closed here).
        retries: how many times the scheduler reruns a failed task.
        log: where to write one-line notes (cluster address, failures).
    """

    def __init__(
        self,
        *,
        scheduler: str | None = None,
        local_workers: int | None = None,
        client: Any = None,
        retries: int = 2,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if sum(x is not None for x in (scheduler, local_workers, client)) > 1:
            raise ValueError("give at most one of scheduler, local_workers and client")
        if local_workers is not None and local_workers < 1:
            raise ValueError(f"local_workers must be >= 1, got {local_workers}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.scheduler = scheduler
        self.local_workers = local_workers
        self.retries = int(retries)
        self.log = log or (lambda msg: None)
        self.client = client
        self._own: list[Any] = []  # what __enter__ opened and __exit__ closes
        self._events: queue_module.SimpleQueue = queue_module.SimpleQueue()
        self._topic = ""

    def __enter__(self) -> DaskEngine:
        try:
            import distributed  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "the dask engine needs dask[distributed]: pip install 'panseg[dask]'"
            ) from exc
        return self  # the cluster is reached on the first call: a rerun may have nothing to do

    def _connect(self) -> Any:
        from distributed import Client

        if self._topic:
            return self.client
        if self.client is None:
            if self.scheduler:
                try:
                    if os.path.isfile(self.scheduler):  # dask scheduler --scheduler-file
                        self.client = Client(scheduler_file=self.scheduler)
                    else:
                        self.client = Client(self.scheduler)
                except OSError as exc:
                    raise ConnectionError(
                        f"dask scheduler {self.scheduler}: cannot connect ({exc})"
                    ) from None
            else:
                cluster = local_cluster(self.local_workers or os.cpu_count() or 1)
                self._own.append(cluster)
                self.client = Client(cluster)
            self._own.insert(0, self.client)
        threads = self.client.nthreads()
        self.log(
            f"dask: {len(threads)} worker(s), {sum(threads.values())} thread(s) at "
            f"{self.client.scheduler.address}"
        )
        self._topic = f"panseg-progress-{uuid.uuid4().hex}"
        self.client.subscribe_topic(self._topic, self._on_event)
        return self.client

    def __exit__(self, *exc: object) -> None:
        if self.client is not None and self._topic:
            try:
                self.client.unsubscribe_topic(self._topic)
            except Exception:  # the connection may be gone already
                pass
            self._topic = ""
        for thing in self._own:
            thing.close()
        if self._own:
            self.client = None
        self._own = []

    def _on_event(self, event: tuple) -> None:
        # Called on the client's event loop thread; the bar lives on the calling thread.
        self._events.put(event[1])

    # ------------------------------------------------------------------- Engine methods
    def map_items(self, fn, source, encoder, items: list, desc: str, progress: bool) -> list:
        if not items:
            return []
        chunks = [items[i : i + VALIDATE_CHUNK] for i in range(0, len(items), VALIDATE_CHUNK)]
        calls = [
            (
                fn,
                (source, encoder, chunk),
                f"images {source.item_key(chunk[0])} to {source.item_key(chunk[-1])}",
                len(chunk),
            )
            for chunk in chunks
        ]
        out: list = []
        for result in self._run(calls, desc, progress):
            out.extend(result)
        return out

    def write_shards(
        self, source, encoder, out_dir, tasks, fingerprint, options, desc, progress
    ) -> list:
        calls = [
            (
                _write_one_shard,
                (source, encoder, out_dir, file, items, digest, fingerprint, options),
                f"shard {file}",
                len(items),
            )
            for file, items, digest in tasks
        ]
        return self._run(calls, desc, progress)

    def _run(self, calls: list, desc: str, progress: bool) -> list:
        """Submit every call, follow them to the end, return their results in order."""
        from distributed import as_completed
        from tqdm import tqdm

        if not calls:
            return []
        client = self._connect()
        run = uuid.uuid4().hex[:8]
        storage = fsio.storage_options()  # the workers use the client's object-store options
        futures = [
            client.submit(
                _run_task, fn, args, self._topic, index, storage,
                key=f"panseg-{desc.replace(' ', '-')}-{index}-{run}",
                retries=self.retries, pure=False,
            )
            for index, (fn, args, _, _) in enumerate(calls)
        ]
        index_of = {f.key: i for i, f in enumerate(futures)}
        sizes = [size for *_, size in calls]
        ticked = [0] * len(calls)
        done = [False] * len(calls)
        results: list = [None] * len(calls)
        failures: list[tuple[int, str]] = []
        bar = tqdm(total=sum(sizes), desc=desc, unit="img", disable=not progress, smoothing=0.1)
        try:
            pending = as_completed(futures)
            while not pending.is_empty():
                for future in pending.next_batch(block=False):
                    i = index_of[future.key]
                    done[i] = True
                    bar.update(sizes[i] - ticked[i])
                    ticked[i] = sizes[i]
                    if future.status == "finished":
                        results[i] = future.result()
                    else:
                        failures.append((i, self._failure(future, calls[i][2])))
                    future.release()
                self._drain(bar, ticked, sizes, done, timeout=0.1)
        finally:
            bar.close()
        if failures:
            failures.sort()
            tries = f"{self.retries + 1} tries" if self.retries else "1 try"
            for _, message in failures:
                self.log(f"failed after {tries}: {message}")
            more = f" (and {len(failures) - 1} more failed task(s))" if len(failures) > 1 else ""
            raise TaskFailed(f"{failures[0][1]}; failed after {tries}{more}")
        return results

    @staticmethod
    def _failure(future: Any, what: str) -> str:
        if future.status == "cancelled":
            return f"{what}: the task was cancelled (scheduler or workers lost)"
        exc = future.exception()
        if isinstance(exc, TaskFailed):
            return str(exc)
        return f"{what}: {type(exc).__name__}: {exc}"  # e.g. KilledWorker

    def _drain(self, bar, ticked: list, sizes: list, done: list, timeout: float) -> None:
        try:
            msg = self._events.get(timeout=timeout)
            while True:
                index, n = int(msg[0]), int(msg[1])
                if 0 <= index < len(done) and not done[index]:
                    step = min(n, sizes[index] - ticked[index])  # a retry counts again
                    ticked[index] += step
                    bar.update(step)
                msg = self._events.get_nowait()
        except queue_module.Empty:
            pass


def local_cluster(n_workers: int, **kwargs: Any) -> Any:
    """A ``LocalCluster`` of ``n_workers`` one-thread worker processes set up for conversion.

    Dask starts worker processes with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
    ``distributed.nanny.pre-spawn-environ``), which makes glibc return freed memory at once
    and map every large array afresh: encoding then costs about 1.5 to 2 times the CPU time
    (``benchmarks/convert_dask.py``). The workers here start without it. Worker logs are
    silenced: the engine reports failures itself, once, by shard and image.
    """
    import dask
    from distributed import LocalCluster

    options = dict(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=logging.CRITICAL,
    )
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(**{**options, **kwargs})


# ---------------------------------------------------------------------------- worker side
class _EventTicker:
    """Per-image ticks of one task, sent as Dask events at most every FLUSH_SECONDS."""

    def __init__(self, topic: str, index: int) -> None:
        from distributed import get_worker

        self.worker = get_worker()
        self.topic, self.index = topic, index
        self.count, self.last = 0, time.monotonic()

    def put(self, n: int) -> None:
        self.count += n
        if time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.count:
            self.worker.log_event(self.topic, [self.index, self.count])
            self.count, self.last = 0, time.monotonic()


def _run_task(
    fn: Callable, args: tuple, topic: str, index: int, storage: dict | None = None
) -> Any:
    """One Dask task: ``fn(*args)`` with its progress ticks sent to ``topic``, under the
    client's object-store options ``storage`` (see :func:`panseg.fsio.configure`)."""
    if storage is not None and storage != fsio.storage_options():
        fsio.configure(storage)
    keep_freed_memory()  # also where the worker was started with a low trim threshold
    ticker = _EventTicker(topic, index)
    with progress_sink(ticker):
        try:
            return fn(*args)
        finally:
            ticker.flush()
