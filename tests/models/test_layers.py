"""Norm factory, conv blocks and detectron2's initialisation rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from panseg.models.layers import ConvNormAct, DepthwiseSeparableConv2d, get_norm, predictor


def test_norm_factory():
    assert isinstance(get_norm("BN")(8), nn.BatchNorm2d)
    assert isinstance(get_norm("SyncBN")(8), nn.SyncBatchNorm)
    gn = get_norm("GN")(64)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 32
    assert isinstance(get_norm("none")(8), nn.Identity)
    with pytest.raises(ValueError, match="unknown norm"):
        get_norm("LN")


def test_conv_blocks_bias_padding_and_init():
    with_norm = ConvNormAct(4, 8, 3, dilation=6)
    assert with_norm.conv.bias is None and with_norm.conv.padding == (6, 6)
    no_norm = ConvNormAct(4, 8, 5, norm="none")
    assert no_norm.conv.bias is not None and torch.all(no_norm.conv.bias == 0)
    assert no_norm.conv.padding == (2, 2)
    ds = DepthwiseSeparableConv2d(6, 10, 5)
    assert ds.depthwise.conv.groups == 6 and ds.depthwise.conv.weight.shape == (6, 1, 5, 5)
    assert ds.pointwise.conv.weight.shape == (10, 6, 1, 1)
    x = torch.randn(2, 6, 9, 11)
    assert ds.eval()(x).shape == (2, 10, 9, 11) and (ds(x) >= 0).all()
    torch.manual_seed(0)
    p = predictor(256, 19)
    assert torch.all(p.bias == 0) and 0.0005 < p.weight.std().item() < 0.002
    with pytest.raises(ValueError, match="init"):
        ConvNormAct(3, 3, init="normal")


def test_syncbn_model_trains_without_a_process_group():
    from panseg.models import build_model

    model = build_model(
        backbone="resnet18", num_classes=3, use_dsconv=False, width_divisor=16, norm="SyncBN",
        aspp_channels=8, sem_decoder_channels=8, sem_head_channels=8, ins_decoder_channels=8,
        ins_head_channels=4, sem_project_channels=(4, 4), ins_project_channels=(4, 4),
    )
    assert isinstance(model.sem_head.tower[0].norm, nn.SyncBatchNorm)
    out = model.train()(torch.randn(2, 3, 32, 32))
    sum(v.sum() for v in out.values()).backward()
    assert model.sem_head.tower[0].norm.num_batches_tracked.item() == 1
