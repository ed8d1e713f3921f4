"""Training and evaluation data from a :class:`~panseg.engine.config.DataConfig`.

Training reads a resumable stream: :class:`TrainStream` is a map-style view of
:class:`~panseg.data.PanopticRecordDataset` whose items are ``(epoch, example)`` codes, and
:class:`StreamSampler` lists this rank's codes epoch after epoch (each epoch: the rank's share
in the shuffled order of :mod:`panseg.data.sharding`). A sample's augmentation depends only on
``(seed, epoch, example)``, so sample ``k`` of the stream is the same whatever the number of
DataLoader workers, and resuming after ``k`` samples is ``StreamSampler(start=k)``: exact and
free (no sample is read to be skipped). Every rank draws the same number of samples per step
and the stream never ends, so ranks whose shards differ in size stay in step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from panseg import fsio
from panseg.data.collate import PanopticCollate
from panseg.data.records_dataset import PanopticRecordDataset
from panseg.data.targets import PanopticTargetGenerator
from panseg.data.transforms import (
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    ResizeShortestEdge,
)
from panseg.datasets.info import DatasetInfo
from panseg.engine.config import DataConfig


def train_transforms(data: DataConfig, info: DatasetInfo) -> Compose:
    """Scale augmentation, crop (padded with the mean pixel / void), flip."""
    steps: list[Any] = []
    if data.augment == "resize_shortest_edge":
        steps.append(ResizeShortestEdge(data.short_edges, max_size=data.max_size))
    elif data.augment == "random_scale":
        steps.append(RandomScale(data.min_scale, data.max_scale))
    steps.append(RandomCrop(*data.crop_size, label_fill=info.void_label))
    if data.flip:
        steps.append(RandomHorizontalFlip(0.5))
    return Compose(steps)


def target_generator(data: DataConfig, info: DatasetInfo) -> PanopticTargetGenerator:
    return PanopticTargetGenerator.for_dataset(
        info,
        sigma=data.sigma,
        variant=data.target_variant,
        ignore_stuff_in_offset=data.ignore_stuff_in_offset,
        small_instance_area=data.small_instance_area,
        small_instance_weight=data.small_instance_weight,
        ignore_crowd_in_semantic=data.ignore_crowd_in_semantic,
    )


class TrainStream(Dataset):
    """Item ``epoch * N + index`` is example ``index`` augmented as in ``epoch``."""

    def __init__(self, dataset: PanopticRecordDataset) -> None:
        self.dataset = dataset
        self.size = dataset.num_examples

    def __len__(self) -> int:  # the stream is unbounded; DataLoader only needs the sampler
        return self.size

    def __getitem__(self, code: int) -> dict[str, Any]:
        epoch, index = divmod(int(code), self.size)
        self.dataset.set_epoch(epoch)
        return self.dataset.get(index)


class StreamSampler(Sampler[int]):
    """This rank's stream of :class:`TrainStream` codes, from sample ``start`` on, for ever."""

    def __init__(self, dataset: PanopticRecordDataset, start: int = 0) -> None:
        self.dataset = dataset
        self.start = int(start)

    def epoch_examples(self, epoch: int) -> list[int]:
        self.dataset.set_epoch(epoch)
        return self.dataset.examples_for(0, 1)

    def __iter__(self) -> Iterator[int]:
        size = self.dataset.num_examples
        skip, epoch = self.start, 0
        while True:
            examples = self.epoch_examples(epoch)
            if not examples:
                raise ValueError("this rank has no training examples (more ranks than examples?)")
            if skip >= len(examples):
                skip -= len(examples)
            else:
                for index in examples[skip:]:
                    yield epoch * size + index
                skip = 0
            epoch += 1


def build_train_loader(
    data: DataConfig,
    *,
    batch_size: int,
    seed: int,
    rank: int,
    world_size: int,
    start_sample: int = 0,
    size_divisibility: int = 0,
) -> tuple[DataLoader, DatasetInfo]:
    """The training DataLoader of this rank (``batch_size`` samples per step) and the
    dataset facts read from the records' manifest."""
    dataset = PanopticRecordDataset(
        data.root, split=data.train_split, shuffle=True, seed=seed, rank=rank,
        world_size=world_size, storage_options=_storage_options(data.root),
    )
    info = dataset.info
    dataset.transforms = train_transforms(data, info)
    dataset.target_generator = target_generator(data, info)
    collate = PanopticCollate(
        ignore_label=info.ignore_label, void_label=info.void_label,
        size_divisibility=size_divisibility,
    )
    loader = DataLoader(
        TrainStream(dataset), batch_size=batch_size,
        sampler=StreamSampler(dataset, start=start_sample), num_workers=data.num_workers,
        collate_fn=collate, drop_last=True, persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, info


def build_eval_dataset(
    root: str, split: str, *, rank: int = 0, world_size: int = 1
) -> PanopticRecordDataset:
    """The evaluation records of this rank, canonical order, no augmentation or targets."""
    return PanopticRecordDataset(
        root, split=split, shuffle=False, rank=rank, world_size=world_size,
        storage_options=_storage_options(root),
    )


def _storage_options(root: str) -> dict[str, Any] | None:
    """The object-store options set with :func:`panseg.fsio.configure` for ``root``'s
    protocol (the CLI's ``--storage-option``), handed to the dataset so that DataLoader
    workers get them whatever their start method; None for local paths or no options."""
    return (fsio.storage_options(fsio.protocol_of(root)) or None) if fsio.is_url(root) else None
