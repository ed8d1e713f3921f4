"""The manifest of a record directory: what was written, how, and the dataset facts.

``OUT/manifest.json`` (written atomically) looks like::

    {
      "format": "panseg-manifest", "format_version": 1,
      "panseg_version": "0.1.0",
      "schema": "deeplab2",                      # or "model-garden"
      "dataset": {... DatasetInfo.to_dict() ...},
      "source": {"dataset": "coco", "root": "/data/coco"},
      "options": {"crowd": "ignore", ...},       # everything that changes the bytes
      "splits": {
        "val": {
          "num_examples": 5000,
          "shards": [
            {"file": "val-00000-of-00004.tfrecord", "num_examples": 1250,
             "size": 123456, "crc32c": "1a2b3c4d", "offsets": [0, 9876, ...]},
            ...
          ],
          "skipped": [{"item": "000000000139", "problem": "..."}]
        }
      }
    }

``offsets`` lets readers seek to any record without scanning the shard; ``crc32c`` is the
CRC32C of the whole shard file (the checksum object stores such as GCS report too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from panseg import __version__
from panseg.datasets.info import DatasetInfo

MANIFEST_NAME = "manifest.json"
FORMAT = "panseg-manifest"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShardEntry:
    file: str
    num_examples: int
    size: int
    crc32c: str
    offsets: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "num_examples": self.num_examples,
            "size": self.size,
            "crc32c": self.crc32c,
            "offsets": list(self.offsets),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardEntry:
        return cls(
            file=str(data["file"]),
            num_examples=int(data["num_examples"]),
            size=int(data["size"]),
            crc32c=str(data["crc32c"]),
            offsets=tuple(int(o) for o in data["offsets"]),
        )


@dataclass(frozen=True)
class SplitEntry:
    shards: tuple[ShardEntry, ...]
    skipped: tuple[dict[str, str], ...] = ()

    @property
    def num_examples(self) -> int:
        return sum(s.num_examples for s in self.shards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_examples": self.num_examples,
            "shards": [s.to_dict() for s in self.shards],
            "skipped": [dict(s) for s in self.skipped],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SplitEntry:
        return cls(
            shards=tuple(ShardEntry.from_dict(s) for s in data["shards"]),
            skipped=tuple(dict(s) for s in data.get("skipped", ())),
        )


@dataclass(frozen=True)
class Manifest:
    schema: str
    dataset: DatasetInfo
    source: Mapping[str, Any]
    options: Mapping[str, Any]
    splits: Mapping[str, SplitEntry] = field(default_factory=dict)
    panseg_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "panseg_version": self.panseg_version,
            "schema": self.schema,
            "dataset": self.dataset.to_dict(),
            "source": dict(self.source),
            "options": dict(self.options),
            "splits": {name: split.to_dict() for name, split in sorted(self.splits.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "manifest") -> Manifest:
        if data.get("format") != FORMAT:
            raise ValueError(f"{where}: not a panseg manifest (format={data.get('format')!r})")
        if int(data.get("format_version", -1)) > FORMAT_VERSION:
            raise ValueError(
                f"{where}: manifest format {data['format_version']} is newer than this panseg"
            )
        return cls(
            schema=str(data["schema"]),
            dataset=DatasetInfo.from_dict(data["dataset"]),
            source=dict(data.get("source", {})),
            options=dict(data.get("options", {})),
            splits={k: SplitEntry.from_dict(v) for k, v in data.get("splits", {}).items()},
            panseg_version=str(data.get("panseg_version", "?")),
        )

    def with_split(self, name: str, split: SplitEntry) -> Manifest:
        splits = dict(self.splits)
        splits[name] = split
        return Manifest(
            schema=self.schema,
            dataset=self.dataset,
            source=self.source,
            options=self.options,
            splits=splits,
            panseg_version=self.panseg_version,
        )


def manifest_path(out_dir: str) -> str:
    return os.path.join(out_dir, MANIFEST_NAME)


def load_manifest(path: str) -> Manifest:
    """Load ``path`` (a manifest file, or a directory holding ``manifest.json``)."""
    from panseg import fsio

    if fsio.isdir(path):
        path = fsio.join(path, MANIFEST_NAME)
    try:
        with fsio.open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no panseg manifest here") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: manifest is not valid JSON ({exc})") from None
    return Manifest.from_dict(data, where=path)


def save_manifest(manifest: Manifest, out_dir: str) -> str:
    """Write ``OUT/manifest.json`` atomically; returns its path."""
    from panseg import fsio

    path = fsio.join(out_dir, MANIFEST_NAME)
    fsio.write_bytes_atomic(path, (json.dumps(manifest.to_dict(), indent=1) + "\n").encode())
    return path
