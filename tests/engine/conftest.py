"""A tiny synthetic record set and a tiny training config shared by the engine tests."""

import os

import pytest

TINY = [
    "model.train_size=[48,64]", "data.crop_size=[48,64]", "model.width_divisor=8",
    "model.aspp_channels=16", "model.sem_decoder_channels=16", "model.sem_head_channels=16",
    "model.ins_decoder_channels=16", "model.ins_head_channels=8", "data.min_scale=0.9",
    "data.max_scale=1.1", "data.num_workers=0", "solver.batch_size=2", "solver.warmup_iters=2",
    "solver.log_period=2", "solver.checkpoint_period=0", "eval.period=0", "eval.stuff_area=16",
    "model.aspp_dropout=0.1",  # dropout draws from the torch RNG: resume must restore it
]


@pytest.fixture(scope="session")
def tiny_records(tmp_path_factory):
    from panseg.engine.demo import prepare_records

    out = str(tmp_path_factory.mktemp("engine-data"))
    return prepare_records(out, images=8, seed=3, height=48, width=64)


@pytest.fixture()
def tiny_config(tiny_records):
    from panseg.engine.config import load_config
    from panseg.engine.demo import shipped_config

    def make(*overrides):
        return load_config(shipped_config("demo_synthetic"),
                           [f"data.root={tiny_records}", *TINY, *overrides])

    return make


@pytest.fixture()
def configs_dir():
    return os.path.join(os.path.dirname(__file__), "..", "..", "src", "panseg", "configs")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: one thread is faster than two, and immune to a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
