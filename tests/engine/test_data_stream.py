"""The training stream: the same samples whatever the number of DataLoader workers, and a
resumed stream continues exactly where the first one stopped (without reading skipped data)."""

import itertools

import torch

from panseg.engine.data import StreamSampler, build_train_loader


def _batches(cfg, n, workers=0, start=0, rank=0, world_size=1):
    data = cfg.data.__class__(**{**cfg.data.__dict__, "num_workers": workers})
    loader, _ = build_train_loader(data, batch_size=2, seed=5, rank=rank, world_size=world_size,
                                   start_sample=start)
    return list(itertools.islice(iter(loader), n))


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["index"], y["index"])
        for k in x["targets"]:
            assert torch.equal(x["targets"][k], y["targets"][k]), k


def test_workers_do_not_change_the_stream(tiny_config):
    cfg = tiny_config()
    _same(_batches(cfg, 5), _batches(cfg, 5, workers=2))


def test_resumed_stream_continues_exactly(tiny_config):
    cfg = tiny_config()
    whole = _batches(cfg, 6)  # 12 samples: crosses the 8-image epoch boundary
    _same(whole[3:], _batches(cfg, 3, start=6))
    # epoch 0 and epoch 1 visit every example once, in different orders
    idx = torch.cat([b["index"] for b in whole]).tolist()
    assert sorted(idx[:8]) == list(range(8)) and idx[8:] != idx[:4]


def test_ranks_split_each_epoch(tiny_config):
    cfg = tiny_config()
    ds = build_train_loader(cfg.data, batch_size=2, seed=5, rank=0, world_size=1)[0].dataset
    r0 = build_train_loader(cfg.data, batch_size=2, seed=5, rank=0, world_size=2)[0]
    r1 = build_train_loader(cfg.data, batch_size=2, seed=5, rank=1, world_size=2)[0]
    a = StreamSampler(r0.dataset.dataset).epoch_examples(0)
    b = StreamSampler(r1.dataset.dataset).epoch_examples(0)
    assert sorted(a + b) == list(range(ds.size)) and not set(a) & set(b)
