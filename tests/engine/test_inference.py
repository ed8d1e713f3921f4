"""Predictor: test-time resizing (outputs resized back, offsets rescaled), batching by size,
and the panoptic maps in the dataset's convention."""

import numpy as np
import torch

from panseg.datasets.info import ClassInfo, DatasetInfo
from panseg.engine.config import EvalConfig
from panseg.engine.inference import Predictor, _same_size_batches

INFO = DatasetInfo("t", (ClassInfo(1, "road", False, (9, 9, 9)),
                         ClassInfo(2, "car", True, (200, 0, 0))), 0, 256, 3)


class StubModel(torch.nn.Module):
    """Semantic: 'car' on the left half, 'road' on the right; one center at the left half's
    middle; offsets 1 pixel in y and 2 in x everywhere (in the size it sees)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def normalize(self, x):
        return x.float()

    def predict(self, x):
        n, _, h, w = x.shape
        self.seen.append((h, w))
        sem = torch.zeros(n, 3, h, w)
        sem[:, 2, :, : w // 2] = 1
        sem[:, 1, :, w // 2:] = 1
        center = torch.zeros(n, 1, h, w)
        center[:, 0, h // 2, w // 4] = 1
        offset = torch.stack([torch.full((h, w), 1.0), torch.full((h, w), 2.0)])
        return {"semantic": sem, "center": center, "offset": offset.expand(n, 2, h, w)}


def test_outputs_at_input_size_without_resizing():
    model = StubModel()
    p = Predictor(model, INFO, EvalConfig(stuff_area=1))
    out = p.outputs(torch.zeros(2, 3, 8, 12, dtype=torch.uint8))
    assert model.seen == [(8, 12)] and out["offset"].shape == (2, 2, 8, 12)
    pan = p(torch.zeros(1, 3, 8, 12, dtype=torch.uint8))[0]
    assert pan.dtype == np.int64
    assert (pan[:, :6] == 2 * 256 + 1).all() and (pan[:, 6:] == 1 * 256).all()


def test_test_time_resize_scales_offsets_back():
    model = StubModel()
    p = Predictor(model, INFO, EvalConfig(min_size=16, max_size=100, stuff_area=1))
    out = p.outputs(torch.zeros(1, 3, 8, 12, dtype=torch.uint8))
    assert model.seen == [(16, 24)]  # short side 8 -> 16
    assert out["semantic"].shape == (1, 3, 8, 12)
    # offsets were in 16×24 pixels; back in 8×12 pixels they are halved
    assert torch.allclose(out["offset"][0, 0], torch.full((8, 12), 0.5))
    assert torch.allclose(out["offset"][0, 1], torch.full((8, 12), 1.0))


def test_batches_group_images_of_one_size():
    sizes = {0: (4, 4), 1: (4, 4), 2: (4, 4), 3: (5, 4), 4: (4, 4)}

    def get(i):
        return {"image": torch.zeros(3, *sizes[i]), "index": i}

    batches = [[s["index"] for s in b] for b in _same_size_batches(range(5), get, 2)]
    assert batches == [[0, 1], [2], [3], [4]]
