"""Sharded, atomic, resumable record writing.

Shard layouts:

* ``contiguous`` (DeepLab2, ``build_coco_data.py`` L263-296): with ``n`` items and ``N``
  shards, ``per = ceil(n / N)`` and shard ``k`` holds items ``[k*per, min((k+1)*per, n))``;
  trailing shards are empty, and every shard file exists, even when empty.
* ``round_robin`` (TF Model Garden, ``official/vision/data/tfrecord_lib.py``
  ``write_tf_record_dataset``): item ``i`` goes to shard ``i % N``.

A shard is written under a temporary name, renamed into ``OUT/.panseg/pending/<file>`` when
complete, together with a small *sidecar* ``<file>.json`` that records its manifest entry, the
fingerprint of the options that produced it and a hash of the item keys it holds. When the
whole run has succeeded, :func:`publish_shard` moves every pending shard to ``OUT/<file>``
(its sidecar to ``OUT/.panseg/shards/``). So a run that finds a problem publishes nothing,
and a rerun, after an interruption or a fix, skips every shard, pending or published, whose
file and sidecar agree. A shard written with other options is an error (the output directory
would mix two datasets).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence

from panseg import fsio
from panseg.records.manifest import ShardEntry
from panseg.records.tfrecord import TFRecordWriter

LAYOUTS = ("contiguous", "round_robin")
SIDECAR_DIR = ".panseg/shards"
PENDING_DIR = ".panseg/pending"


class ShardConflict(ValueError):
    """The output directory holds a shard written with other options."""


def shard_name(prefix: str, index: int, num_shards: int) -> str:
    """``{prefix}-{index:05d}-of-{num_shards:05d}.tfrecord``."""
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.tfrecord"


def shard_layout(num_items: int, num_shards: int, layout: str = "contiguous") -> list[list[int]]:
    """Item indices of each shard (see the module docstring)."""
    if num_shards < 1:
        raise ValueError(f"the number of shards must be >= 1, got {num_shards}")
    if layout == "contiguous":
        per = -(-num_items // num_shards)
        return [
            list(range(min(k * per, num_items), min((k + 1) * per, num_items)))
            for k in range(num_shards)
        ]
    if layout == "round_robin":
        return [list(range(k, num_items, num_shards)) for k in range(num_shards)]
    raise ValueError(f"unknown shard layout {layout!r}; expected one of {LAYOUTS}")


def items_digest(keys: Sequence[str]) -> str:
    """A short hash of the ordered item keys of a shard."""
    h = hashlib.sha1()
    for key in keys:
        h.update(key.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def options_fingerprint(options: dict) -> str:
    return hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()


def sidecar_path(out_dir: str, file: str, *, pending: bool = False) -> str:
    return fsio.join(out_dir, PENDING_DIR if pending else SIDECAR_DIR, f"{file}.json")


def shard_path(out_dir: str, file: str, *, pending: bool = False) -> str:
    return fsio.join(out_dir, PENDING_DIR, file) if pending else fsio.join(out_dir, file)


def completed_shard(
    out_dir: str, file: str, *, fingerprint: str, digest: str
) -> ShardEntry | None:
    """The manifest entry of a shard already written, pending or published, or ``None``.

    Raises:
        ShardConflict: the shard exists but was written with other options.
    """
    for pending in (False, True):
        path = shard_path(out_dir, file, pending=pending)
        if not fsio.exists(path):
            continue
        for side in (sidecar_path(out_dir, file, pending=pending), sidecar_path(
                out_dir, file, pending=not pending)):
            entry = _sidecar_entry(side, path, fingerprint, digest)
            if entry is not None:
                return entry
    return None


def _sidecar_entry(side: str, path: str, fingerprint: str, digest: str) -> ShardEntry | None:
    if not fsio.exists(side):
        return None
    try:
        record = json.loads(fsio.read_bytes(side).decode("utf-8"))
        entry = ShardEntry.from_dict(record["entry"])
    except (ValueError, KeyError, TypeError):
        return None  # a damaged sidecar: rewrite the shard
    if record.get("fingerprint") != fingerprint:
        raise ShardConflict(
            f"{path} was written with other options ({record.get('options')}); "
            "use another --out directory or delete it"
        )
    if record.get("items") != digest or fsio.size(path) != entry.size:
        return None
    return entry


def write_shard(
    out_dir: str,
    file: str,
    examples: Iterable[bytes],
    *,
    fingerprint: str,
    digest: str,
    options: dict,
) -> ShardEntry:
    """Write ``examples`` atomically as the pending shard ``file``, then its sidecar."""
    fsio.makedirs(fsio.join(out_dir, PENDING_DIR))
    with fsio.atomic_writer(shard_path(out_dir, file, pending=True)) as f:
        writer = TFRecordWriter(f)
        for example in examples:
            writer.write(example)
    entry = ShardEntry(
        file=file,
        num_examples=len(writer.offsets),
        size=writer.size,
        crc32c=writer.crc32c,
        offsets=tuple(writer.offsets),
    )
    record = {
        "fingerprint": fingerprint,
        "options": options,
        "items": digest,
        "entry": entry.to_dict(),
    }
    fsio.write_bytes_atomic(
        sidecar_path(out_dir, file, pending=True), json.dumps(record).encode("utf-8")
    )
    return entry


def remove_stale_temporaries(out_dir: str) -> list[str]:
    """Delete temporaries left by killed runs (``.NAME.tmp-PID`` whose PID is gone).

    Only local directories have them: object stores never show a partial upload.
    """
    if fsio.is_url(out_dir):
        return []
    removed = []
    for directory in (out_dir, fsio.join(out_dir, PENDING_DIR), fsio.join(out_dir, SIDECAR_DIR)):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            head, sep, pid = name.rpartition(".tmp-")
            if not (name.startswith(".") and sep and pid.isdigit()) or _alive(int(pid)):
                continue
            os.remove(os.path.join(directory, name))
            removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish_shard(out_dir: str, file: str) -> None:
    """Move a pending shard and its sidecar into place (idempotent)."""
    pending = shard_path(out_dir, file, pending=True)
    if fsio.exists(pending):
        fsio.rename(pending, shard_path(out_dir, file))
    side = sidecar_path(out_dir, file, pending=True)
    if fsio.exists(side):
        fsio.makedirs(fsio.join(out_dir, SIDECAR_DIR))
        fsio.rename(side, sidecar_path(out_dir, file))
