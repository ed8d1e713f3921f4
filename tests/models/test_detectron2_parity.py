"""Numerical parity with detectron2's Panoptic-DeepLab heads.

Fixture ``data/detectron2_heads_outputs.npz``: detectron2's own ``PanopticDeepLabSemSegHead``
and ``PanopticDeepLabInsEmbedHead`` (``projects/Panoptic-DeepLab/panoptic_deeplab/
panoptic_seg.py``, ``projects/DeepLab/deeplab/semantic_seg.py``, ``detectron2/layers/aspp.py``,
``blocks.py`` at commit 02b5c4e) were run once, in eval mode, on the features of a narrow
panseg ResNet-18 (regular convs with a global ASPP pool; DSConv with a sliding 2×2 ASPP pool).
The fixture holds detectron2's state-dict names and shapes, the image and detectron2's
semantic / center / offset outputs (×4 resized, offsets ×4). Weights are a deterministic
function of (name, shape), regenerated here. Loading goes through the detectron2 key map, so
this checks the map's meaning (branch order, concatenation order, towers), not only names.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from panseg.models import build_model
from panseg.models.weights import load_detectron2_weights

FIXTURE = Path(__file__).parent / "data" / "detectron2_heads_outputs.npz"


def value(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith("num_batches_tracked"):
        return torch.tensor(0)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=g) + 0.5
    return torch.randn(shape, generator=g) * 0.3


@pytest.mark.parametrize("tag,use_dsconv,train_size", [
    ("regular", False, (32, 64)),
    ("dsconv", True, (32, 32)),
])
def test_outputs_equal_detectron2(tag, use_dsconv, train_size):
    data = np.load(FIXTURE)
    names = json.loads(str(data[f"{tag}/names"]))
    source = {k: value(k, tuple(s)) for k, s in names.items()}
    model = build_model(
        backbone="resnet18", num_classes=5, use_dsconv=use_dsconv, width_divisor=16,
        train_size=train_size, aspp_channels=16, sem_decoder_channels=16, sem_head_channels=16,
        ins_decoder_channels=8, ins_head_channels=4, sem_project_channels=(4, 8),
        ins_project_channels=(4, 8),
    )
    load_detectron2_weights(model, source)
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(data[f"{tag}/image"]))
    for key in ("semantic", "center", "offset"):
        expected = torch.from_numpy(data[f"{tag}/{key}"])
        assert torch.allclose(out[key], expected, atol=2e-5, rtol=1e-5), (
            key, float((out[key] - expected).abs().max())
        )


def test_r52_backbone_equals_detectron2():
    # Fixture data/detectron2_r52_outputs.npz: detectron2's build_resnet_deeplab_backbone
    # (DeepLab stem, STRIDE_IN_1X1 False, RES5_DILATION 2, RES5_MULTI_GRID [1, 2, 4]) narrowed
    # to width 8 / stem 16, run once at commit 02b5c4e on a 32×64 image.
    from panseg.models.backbones.resnet import ResNet
    from panseg.models.weights import load_backbone_weights

    data = np.load(FIXTURE.parent / "detectron2_r52_outputs.npz")
    names = json.loads(str(data["names"]))
    net = ResNet(50, stem="deeplab", width=8, stem_channels=16, output_stride=16,
                 multi_grid=(1, 2, 4))
    load_backbone_weights(net, {k: value(k, tuple(s)) for k, s in names.items()},
                          "detectron2_resnet")
    with torch.no_grad():
        out = net.eval()(torch.from_numpy(data["image"]))
    for key in ("res2", "res3", "res5"):
        expected = torch.from_numpy(data[key])
        assert torch.allclose(out[key], expected, atol=1e-5, rtol=1e-5), (
            key, float((out[key] - expected).abs().max())
        )
