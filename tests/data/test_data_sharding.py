"""Every example exactly once per epoch across rank × worker grids."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from panseg.data.sharding import rank_examples, reader_examples

SHARD_LAYOUTS = [[5], [3, 4], [2, 2, 2, 2], [1, 0, 3, 6, 2, 2, 1], [4] * 9]


@pytest.mark.parametrize("counts", SHARD_LAYOUTS)
@pytest.mark.parametrize("shuffle", [False, True])
def test_exactly_once_for_rank_worker_grids(counts, shuffle):
    every = Counter((s, i) for s, n in enumerate(counts) for i in range(n))
    for world, workers, epoch in itertools.product([1, 2, 3, 4], [1, 2, 3], [0, 1]):
        seen = Counter()
        for rank in range(world):
            per_rank = Counter()
            for worker in range(workers):
                got = reader_examples(
                    counts,
                    rank=rank,
                    world_size=world,
                    worker=worker,
                    num_workers=workers,
                    shuffle=shuffle,
                    seed=11,
                    epoch=epoch,
                )
                per_rank.update(got)
            # A rank's share does not depend on how many workers it runs.
            _, share = rank_examples(
                counts, rank=rank, world_size=world, shuffle=shuffle, seed=11, epoch=epoch
            )
            assert per_rank == Counter(share)
            seen.update(per_rank)
        assert seen == every, (world, workers, epoch)


def test_split_by_shard_when_enough_shards():
    counts = [3, 3, 3, 3]
    for worker in range(2):
        got = reader_examples(counts, rank=1, world_size=2, worker=worker, num_workers=2)
        assert len({s for s, _ in got}) == 1  # one whole shard per reader
    # Fewer shards than readers: split by example, first across ranks, then workers.
    got = reader_examples([6], rank=0, world_size=2, worker=1, num_workers=2)
    assert got == [(0, 2)]  # rank 0 holds examples 0, 2, 4; its worker 1 reads the second


def test_evaluation_order_is_canonical_and_shuffle_depends_on_seed_and_epoch():
    counts = [4, 5, 3]
    assert reader_examples(counts) == [(s, i) for s, n in enumerate(counts) for i in range(n)]
    a = reader_examples(counts, shuffle=True, seed=1, epoch=0)
    assert a == reader_examples(counts, shuffle=True, seed=1, epoch=0)
    assert a != reader_examples(counts, shuffle=True, seed=1, epoch=1)
    assert a != reader_examples(counts, shuffle=True, seed=2, epoch=0)
    with pytest.raises(ValueError, match="rank"):
        reader_examples(counts, rank=2, world_size=2)
    with pytest.raises(ValueError, match="worker"):
        reader_examples(counts, worker=1, num_workers=1)


@pytest.mark.parametrize("shuffle", [False, True])
def test_drop_uneven_gives_equal_rank_counts_without_repeats(shuffle):
    counts = [5, 1, 3, 2, 7]
    for world, workers in itertools.product([2, 3, 4, 6], [1, 2]):
        per_rank = []
        seen = Counter()
        for rank in range(world):
            got = []
            for worker in range(workers):
                got += reader_examples(
                    counts,
                    rank=rank,
                    world_size=world,
                    worker=worker,
                    num_workers=workers,
                    shuffle=shuffle,
                    seed=4,
                    epoch=2,
                    drop_uneven=True,
                )
            per_rank.append(len(got))
            seen.update(got)
        assert len(set(per_rank)) == 1 and per_rank[0] > 0
        assert max(seen.values()) == 1  # at most once
