"""Numerical parity with the seed's backbones.

Fixture ``data/seed_backbone_outputs.npz``: the seed's Xception-65 (output stride 16) and
HRNet-18 (bowenc0221/panoptic-deeplab @ cf8e20b, ``segmentation/model/backbone/xception.py``
and ``hrnet.py``) were run once in eval mode on a 32×48 image with weights that are a
deterministic function of (name, shape), regenerated here; it stores the image and the first
64 channels of res2..res5. panseg loads the same weights through the seed's key map.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from panseg.models.backbones.hrnet import HRNet
from panseg.models.backbones.xception import Xception65
from panseg.models.weights import load_backbone_weights

DATA = Path(__file__).parent / "data"


def value(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith("num_batches_tracked"):
        return torch.tensor(0)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=g) + 0.5
    if key.endswith(("running_mean", "bias")):
        return torch.randn(shape, generator=g) * 0.1
    if len(shape) == 1:
        return 0.3 + torch.randn(shape, generator=g) * 0.05
    fan_in = int(np.prod(shape[1:]))
    return torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5


@pytest.mark.parametrize("tag", ["xception65", "hrnet18"])
def test_backbone_outputs_equal_the_seed(tag):
    data = np.load(DATA / "seed_backbone_outputs.npz")
    if tag == "xception65":
        with gzip.open(DATA / "seed_xception65_keys.json.gz", "rt") as f:
            names = {k: tuple(v) for k, v in json.load(f).items()}
        with torch.device("meta"):
            net = Xception65(output_stride=16)
        fmt = "segmentron_xception65"
    else:
        with torch.device("meta"):
            net = HRNet(18)
        names = {k: tuple(v.shape) for k, v in net.state_dict().items()}  # same names as the seed
        fmt = "hrnet"
    net = net.to_empty(device="cpu")
    load_backbone_weights(net, {k: value(k, s) for k, s in names.items()}, fmt)
    with torch.no_grad():
        out = net.eval()(torch.from_numpy(data[f"{tag}/image"]))
    for key in ("res2", "res3", "res4", "res5"):
        expected = torch.from_numpy(data[f"{tag}/{key}"])
        got = out[key][:, :64]
        assert got.shape == expected.shape, key
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4), (
            key, float((got - expected).abs().max())
        )
