"""Model tests run single-threaded: the tiny convolutions here gain nothing from intra-op
threads, and on a shared 2-core machine OpenMP threads that wait on each other made a 60 ms
training step take seconds. The previous setting is restored after each test."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
