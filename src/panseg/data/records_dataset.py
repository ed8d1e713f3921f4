"""``PanopticRecordDataset``: a PyTorch iterable dataset over panseg's DeepLab2-schema shards.

Sources: a record directory (or its ``manifest.json``) plus a split name, whose manifest gives
the dataset facts and every record's byte offset; or shard files (a glob pattern or a list)
with the facts passed as a :class:`~panseg.datasets.info.DatasetInfo`, in which case the offsets
are indexed on first use. Paths may be local or fsspec URLs (``s3://`` needs the ``s3`` extra);
``storage_options`` go to ``fsspec.filesystem`` unchanged (e.g.
``{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}``).

Each epoch every example is read exactly once across DDP ranks × DataLoader workers (see
:mod:`panseg.data.sharding`). The per-sample random generator is keyed by
``(seed, epoch, example index)``, so a sample's augmentation does not depend on which reader
reads it. Call :meth:`set_epoch` before each epoch (workers must be re-created for it to take
effect, i.e. ``persistent_workers=False``, the DataLoader default).

Pipeline per example: read the record (one ranged read) → :func:`panseg.data.decode.decode_record`
→ ``transforms(sample, rng)`` → ``target_generator(panoptic)`` → tensors.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from panseg import fsio
from panseg.data.decode import decode_record
from panseg.data.sharding import rank_examples, reader_examples
from panseg.datasets.info import DatasetInfo
from panseg.records.manifest import MANIFEST_NAME, Manifest
from panseg.records.tfrecord import iter_record_offsets, read_record_at


class _Storage:
    """Opens and lists paths: local ones through ``panseg.fsio``, URLs through an fsspec
    filesystem built from the explicit ``storage_options``. Filesystems are created per
    process (a forked DataLoader worker must not reuse its parent's event loop and sessions),
    and are not pickled."""

    def __init__(self, storage_options: Mapping[str, Any] | None) -> None:
        self.options = dict(storage_options or {})
        self._fs: dict[str, Any] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options, "_fs": {}, "_pid": -1}

    def fs(self, path: str):
        if self._pid != os.getpid():
            self._fs, self._pid = {}, os.getpid()
        protocol = path.split("://", 1)[0]
        if protocol not in self._fs:
            import fsspec

            try:
                self._fs[protocol] = fsspec.filesystem(protocol, **self.options)
            except ImportError as exc:
                raise ImportError(
                    f"{path}: no filesystem for {protocol}:// (pip install 'panseg[s3]' or "
                    f"'panseg[gcs]'): {exc}"
                ) from None
        return self._fs[protocol]

    def open(self, path: str):
        return self.fs(path).open(path, "rb") if fsio.is_url(path) else fsio.open(path, "rb")

    def read_range(self, path: str, start: int, end: int) -> bytes:
        if fsio.is_url(path):
            return self.fs(path).cat_file(path, start=start, end=end)
        with fsio.open(path, "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def isdir(self, path: str) -> bool:
        return self.fs(path).isdir(path) if fsio.is_url(path) else fsio.isdir(path)

    def glob(self, pattern: str) -> list[str]:
        if not fsio.is_url(pattern):
            return fsio.glob(pattern)
        protocol = pattern.split("://", 1)[0]
        found = self.fs(pattern).glob(pattern)
        return sorted(m if "://" in m else f"{protocol}://{m}" for m in found)


class _Span(io.BytesIO):
    """The bytes of one record read at ``base``; seeks are in file offsets."""

    def __init__(self, data: bytes, base: int) -> None:
        super().__init__(data)
        self.base = base

    def seek(self, offset: int, whence: int = 0) -> int:
        return super().seek(offset - self.base if whence == 0 else offset, whence) + self.base


class PanopticRecordDataset(IterableDataset):
    """Training/evaluation samples from DeepLab2-schema TFRecord shards.

    Args:
        source: a record directory or manifest file (local or URL), a glob pattern of shard
            files, or a list of shard paths.
        split: the manifest split to read (required with a manifest, unused otherwise).
        info: dataset facts; required without a manifest, else must be omitted or equal.
        transforms: ``t(sample, rng) -> sample`` on ``{"image": uint8 H×W×3, "panoptic":
            int32 H×W}`` (see :mod:`panseg.data.transforms`); None for none.
        target_generator: ``g(panoptic) -> dict of arrays`` (see
            :class:`panseg.data.targets.PanopticTargetGenerator`); None for no targets.
        shuffle: shuffle the reading order each epoch (training); False reads in a fixed
            order (evaluation).
        seed: seeds the order and each sample's augmentation.
        rank, world_size: this process in DDP; default from ``torch.distributed`` when it is
            initialized, else 0 and 1.
        storage_options: passed to ``fsspec.filesystem`` for URLs.
        drop_uneven: give every rank the smallest rank's example count (DDP training with
            shards of unequal sizes); examples are then read at most once per epoch.

    Yields dicts: ``"image"`` uint8 3×H×W RGB (normalise on the device, e.g.
    ``PanopticDeepLab.normalize``), ``"panoptic"`` int32 H×W (when labelled), ``"targets"``
    (when labelled and a generator is given: semantic int64 H×W, semantic_weights H×W,
    center 1×H×W, center_weights H×W, offset 2×H×W, offset_weights H×W, all float32 but
    semantic), ``"filename"`` str, ``"index"`` int (position in the canonical order).
    """

    def __init__(
        self,
        source: str | Sequence[str],
        *,
        split: str | None = None,
        info: DatasetInfo | None = None,
        transforms: Callable | None = None,
        target_generator: Callable[[np.ndarray], Mapping[str, np.ndarray]] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        drop_uneven: bool = False,
    ) -> None:
        super().__init__()
        self.storage = _Storage(storage_options)
        self.transforms = transforms
        self.target_generator = target_generator
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_uneven = bool(drop_uneven)
        self.epoch = 0
        if rank is None or world_size is None:
            dist = torch.distributed
            initialized = dist.is_available() and dist.is_initialized()
            rank = dist.get_rank() if initialized and rank is None else (rank or 0)
            world_size = (
                dist.get_world_size() if initialized and world_size is None else (world_size or 1)
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.rank, self.world_size = int(rank), int(world_size)

        self.manifest: Manifest | None = None
        self._offsets: list[tuple[int, ...] | None]
        self._ends: list[int | None]
        if isinstance(source, str) and self._is_manifest(source):
            self._init_from_manifest(source, split, info)
        else:
            paths = self.storage.glob(source) if isinstance(source, str) else list(source)
            if not paths:
                raise FileNotFoundError(f"{source}: no shard files match")
            if info is None:
                raise ValueError(f"{source}: shards without a manifest need info=DatasetInfo")
            self.info = info
            self.paths = paths
            self._offsets = [None] * len(paths)
            self._ends = [None] * len(paths)
        self._cum: np.ndarray | None = None

    # ------------------------------------------------------------------ sources
    def _is_manifest(self, source: str) -> bool:
        if source.endswith(".json"):
            return True
        return not any(c in source for c in "*?[") and self.storage.isdir(source)

    def _init_from_manifest(self, source: str, split: str | None, info: DatasetInfo | None):
        path = source if source.endswith(".json") else fsio.join(source, MANIFEST_NAME)
        try:
            with self.storage.open(path) as f:
                data = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no panseg manifest here") from None
        manifest = Manifest.from_dict(data, where=path)
        if manifest.schema != "deeplab2":
            raise ValueError(f"{path}: schema {manifest.schema!r}; this reader needs deeplab2")
        if split is None or split not in manifest.splits:
            raise ValueError(f"{path}: choose split= from {sorted(manifest.splits)}, got {split!r}")
        if info is not None and info != manifest.dataset:
            raise ValueError(f"{path}: info= differs from the manifest's dataset facts")
        base = path.rsplit("/", 1)[0] if "/" in path else "."
        shards = manifest.splits[split].shards
        self.manifest, self.info = manifest, manifest.dataset
        self.paths = [fsio.join(base, s.file) for s in shards]
        self._offsets = [tuple(s.offsets) if s.offsets else None for s in shards]
        self._ends = [int(s.size) for s in shards]
        for shard, offsets in zip(shards, self._offsets, strict=True):
            if offsets is not None and len(offsets) != shard.num_examples:
                raise ValueError(
                    f"{path}: shard {shard.file} lists {len(offsets)} offsets for "
                    f"{shard.num_examples} examples"
                )

    def _index(self, shard: int) -> tuple[int, ...]:
        """Record offsets of a shard (from the manifest, or by scanning it once)."""
        offsets = self._offsets[shard]
        if offsets is None:
            path = self.paths[shard]
            found, end = [], 0
            with self.storage.open(path) as f:
                for off, length in iter_record_offsets(f, path):
                    found.append(off)
                    end = off + length + 16
            offsets = tuple(found)
            self._offsets[shard], self._ends[shard] = offsets, end
        return offsets

    def counts(self) -> list[int]:
        """Number of records in each shard (indexes shards without offsets)."""
        return [len(self._index(s)) for s in range(len(self.paths))]

    def _cumulative(self) -> np.ndarray:
        if self._cum is None:
            self._cum = np.concatenate([[0], np.cumsum(self.counts())]).astype(np.int64)
        return self._cum

    @property
    def num_examples(self) -> int:
        """Examples in all shards."""
        return int(self._cumulative()[-1])

    def __len__(self) -> int:
        """Examples this rank reads per epoch (over all its workers)."""
        _, mine = rank_examples(
            self.counts(),
            rank=self.rank,
            world_size=self.world_size,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch,
            drop_uneven=self.drop_uneven,
        )
        return len(mine)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order and augmentation (call before creating the iterator)."""
        self.epoch = int(epoch)

    # ------------------------------------------------------------------ reading
    def read_record(self, shard: int, record: int) -> bytes:
        """The raw bytes of one record, read with one ranged read and CRC-checked."""
        offsets = self._index(shard)
        if not 0 <= record < len(offsets):
            raise IndexError(f"{self.paths[shard]}: no record {record} ({len(offsets)} records)")
        start = offsets[record]
        end = offsets[record + 1] if record + 1 < len(offsets) else self._ends[shard]
        path = self.paths[shard]
        data = self.storage.read_range(path, start, end)
        return read_record_at(_Span(data, start), start, path)

    def locate(self, index: int) -> tuple[int, int]:
        """``(shard, record)`` of the example at ``index`` in the canonical order."""
        cum = self._cumulative()
        if not 0 <= index < cum[-1]:
            raise IndexError(f"example {index} out of range ({int(cum[-1])} examples)")
        shard = int(np.searchsorted(cum, index, side="right") - 1)
        return shard, int(index - cum[shard])

    def decoded(self, index: int) -> dict[str, Any]:
        """Example ``index`` decoded, untransformed: image uint8 H×W×3, panoptic int32 H×W."""
        shard, record = self.locate(index)
        where = f"{self.paths[shard]} record {record}"
        return decode_record(self.read_record(shard, record), where)

    def sample_rng(self, index: int) -> np.random.Generator:
        """The augmentation generator of example ``index`` in the current epoch."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))

    def get(self, index: int) -> dict[str, Any]:
        """The processed sample at ``index`` (same as the iterator yields for it this epoch)."""
        sample = self.decoded(index)
        if self.transforms is not None:
            sample = self.transforms(sample, self.sample_rng(index))
        return self._finish(sample, index)

    def _finish(self, sample: dict[str, Any], index: int) -> dict[str, Any]:
        image = np.ascontiguousarray(np.asarray(sample["image"]).transpose(2, 0, 1))
        out: dict[str, Any] = {
            "image": torch.from_numpy(image),
            "filename": sample.get("filename", ""),
            "index": index,
        }
        if "panoptic" in sample:
            panoptic = np.ascontiguousarray(sample["panoptic"], dtype=np.int32)
            out["panoptic"] = torch.from_numpy(panoptic)
            if self.target_generator is not None:
                targets = self.target_generator(panoptic)
                out["targets"] = {k: torch.from_numpy(v) for k, v in targets.items()}
        return out

    def examples_for(self, worker: int = 0, num_workers: int = 1) -> list[int]:
        """Canonical indices read by ``(this rank, worker)`` this epoch, in order."""
        cum = self._cumulative()
        pairs = reader_examples(
            self.counts(),
            rank=self.rank,
            world_size=self.world_size,
            worker=worker,
            num_workers=num_workers,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch,
            drop_uneven=self.drop_uneven,
        )
        return [int(cum[s]) + i for s, i in pairs]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for index in self.examples_for(worker, num_workers):
            yield self.get(index)
