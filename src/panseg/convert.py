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

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from panseg import fsio

# The worker side lives in convert_workers; LocalEngine, TaskFailed and keep_freed_memory
# are re-exported as part of this module's API.
from panseg.convert_workers import (  # noqa: F401  (re-exported: the public API)
    LocalEngine,
    TaskFailed,
    _validate_chunk,
    keep_freed_memory,
)
from panseg.datasets.base import Problem, RawExample, Source
from panseg.datasets.info import DatasetInfo
from panseg.records import writer as shard_io
from panseg.records.manifest import Manifest, SplitEntry, load_manifest, save_manifest


class Encoder(Protocol):
    """Turns raw examples into serialized records (picklable)."""

    def check_listing(self, key: str, segments: Sequence, file: str) -> list[Problem]: ...

    def check(self, raw: RawExample) -> list[Problem]: ...

    def encode(self, raw: RawExample) -> tuple[bytes, str]: ...


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
