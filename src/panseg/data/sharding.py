"""Which examples each reader (DDP rank × DataLoader worker) reads in an epoch (no torch).

The split is two-level, so a rank's share does not depend on how many workers it runs:

1. across ranks: by shard when there are at least as many shards as ranks (shard order
   shuffled per epoch when shuffling), else by example (every ``world_size``-th example of the
   global order, itself shuffled per epoch when shuffling);
2. within a rank, across its workers: by shard when the rank holds whole shards and has at
   least as many as workers, else by example.

Every example is read exactly once per epoch across all readers. Evaluation (``shuffle``
False) reads in the canonical order: shards in the given order, records in file order.
Shuffled orders are a pure function of ``(seed, epoch)`` and the reader.

Ranks may get different counts when shards differ in size; DDP training needs equal step
counts, so ``drop_uneven=True`` trims every rank to the smallest rank's count (the dropped
examples change from epoch to epoch when shuffling). Each example is then read at most once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Example = tuple[int, int]  # (shard index, record index within the shard)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def rank_examples(
    counts: Sequence[int],
    *,
    rank: int,
    world_size: int,
    shuffle: bool,
    seed: int,
    epoch: int,
    drop_uneven: bool = False,
) -> tuple[list[int] | None, list[Example]]:
    """A rank's share: ``(its shards or None when split by example, its examples)``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world size {world_size}")
    if drop_uneven:
        keep = min(
            len(_rank_share(counts, r, world_size, shuffle, seed, epoch)[1])
            for r in range(world_size)
        )
        shards, examples = _rank_share(counts, rank, world_size, shuffle, seed, epoch)
        if len(examples) > keep:
            return None, examples[:keep]  # no longer whole shards: workers split by example
        return shards, examples
    return _rank_share(counts, rank, world_size, shuffle, seed, epoch)


def _rank_share(
    counts: Sequence[int], rank: int, world_size: int, shuffle: bool, seed: int, epoch: int
) -> tuple[list[int] | None, list[Example]]:
    num_shards = len(counts)
    order = list(range(num_shards))
    if shuffle:
        order = [int(i) for i in _rng(seed, epoch, 0).permutation(num_shards)]
    if num_shards >= world_size:
        shards = order[rank::world_size]
        return shards, [(s, i) for s in shards for i in range(counts[s])]
    every = [(s, i) for s in order for i in range(counts[s])]
    if shuffle:
        every = [every[int(j)] for j in _rng(seed, epoch, 1).permutation(len(every))]
    return None, every[rank::world_size]


def reader_examples(
    counts: Sequence[int],
    *,
    rank: int = 0,
    world_size: int = 1,
    worker: int = 0,
    num_workers: int = 1,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    drop_uneven: bool = False,
) -> list[Example]:
    """The examples reader ``(rank, worker)`` reads this epoch, in reading order.

    Args:
        counts: number of records in each shard, in shard order.
        rank, world_size: the DDP process and the number of processes.
        worker, num_workers: the DataLoader worker in this process and their number (0 and 1
            when loading in the main process).
        shuffle, seed, epoch: shuffled order when ``shuffle``; canonical order otherwise.
        drop_uneven: trim every rank to the smallest rank's count (for DDP training).

    Returns:
        list of ``(shard index, record index)``.
    """
    if not 0 <= worker < num_workers:
        raise ValueError(f"worker {worker} is outside {num_workers} workers")
    shards, examples = rank_examples(
        counts,
        rank=rank,
        world_size=world_size,
        shuffle=shuffle,
        seed=seed,
        epoch=epoch,
        drop_uneven=drop_uneven,
    )
    if shards is not None and len(shards) >= num_workers:
        mine = shards[worker::num_workers]
        picked = [(s, i) for s in mine for i in range(counts[s])]
    else:
        picked = examples[worker::num_workers]
    if shuffle:
        perm = _rng(seed, epoch, 2, rank, worker).permutation(len(picked))
        picked = [picked[int(j)] for j in perm]
    return picked
