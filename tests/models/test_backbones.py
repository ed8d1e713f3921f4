"""Backbones: shapes, strides, dilation, parameter counts against published figures."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from panseg.models.backbones import BACKBONES, build_backbone, check_backbone
from panseg.models.backbones.hrnet import HRNet
from panseg.models.backbones.resnet import ResNet
from panseg.models.backbones.xception import Xception65

DATA = Path(__file__).parent / "data"


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def on_meta(build, *args, **kwargs):
    """Full-size nets without weight initialisation: counting needs shapes only."""
    with torch.device("meta"):
        return build(*args, **kwargs)


def seed_listing(name: str) -> dict[str, list[int]]:
    # Names and shapes of the seed's backbones (bowenc0221/panoptic-deeplab @ cf8e20b,
    # segmentation/model/backbone/{xception,hrnet}.py) -- listed by instantiating them once.
    with gzip.open(DATA / name, "rt") as f:
        return json.load(f)


@pytest.mark.parametrize(
    "name,expected",
    [
        # torchvision: resnet18 11,689,512 / resnet50 25,557,032 / resnet101 44,549,160 params,
        # minus the 1000-way fc (512·1000+1000, 2048·1000+1000).
        ("resnet18", 11_689_512 - 513_000),
        ("resnet50", 25_557_032 - 2_049_000),
        ("resnet101", 44_549_160 - 2_049_000),
    ],
)
def test_resnet_parameter_counts_match_torchvision(name, expected):
    assert n_params(on_meta(build_backbone, name)) == expected


def test_r52_stem_adds_three_convs():
    r50, r52 = on_meta(build_backbone, "resnet50"), on_meta(build_backbone, "r52")
    stem50 = 64 * 3 * 49 + 2 * 64
    stem52 = (64 * 27 + 128) + (64 * 64 * 9 + 128) + (128 * 64 * 9 + 256)
    # res2's first block reads 128 channels instead of 64: conv1 and the shortcut grow
    extra_res2 = 64 * 64 + 256 * 64
    assert n_params(r52) - n_params(r50) == stem52 - stem50 + extra_res2


def test_xception65_and_hrnet48_match_seed_listing():
    for backbone, listing in (
        (on_meta(Xception65), "seed_xception65_keys.json.gz"),
        (on_meta(HRNet, 48), "seed_hrnet48_keys.json.gz"),
    ):
        shapes = seed_listing(listing)
        seed_params = sum(
            int(torch.tensor(s).prod()) if s else 1
            for k, s in shapes.items()
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
        )
        assert n_params(backbone) == seed_params
    # timm's xception65 reports 39.92M parameters including its 2048->1000 classifier
    assert n_params(on_meta(Xception65)) == 39_916_312 - 2_049_000


@pytest.mark.parametrize("os_,res4,res5", [(8, 8, 8), (16, 16, 16), (32, 16, 32)])
def test_resnet_output_stride(os_, res4, res5):
    net = ResNet(18, width=8, output_stride=os_).eval()
    out = net(torch.randn(1, 3, 64, 96))
    assert net.out_features["res4"][1] == res4 and net.out_features["res5"][1] == res5
    for name, (ch, stride) in net.out_features.items():
        assert tuple(out[name].shape) == (1, ch, 64 // stride, 96 // stride)


def test_resnet_multigrid_dilations():
    net = ResNet(50, width=8, output_stride=16, multi_grid=(1, 2, 4))
    assert [b.conv2.conv.dilation for b in net.res5] == [(2, 2), (4, 4), (8, 8)]
    assert [b.conv2.conv.stride for b in net.res5] == [(1, 1)] * 3
    assert net.res4[0].conv2.conv.stride == (2, 2)  # stride in the 3×3 (v1.5) by default
    net = ResNet(50, width=8, output_stride=8, stride_in_1x1=True)
    assert [b.conv2.conv.dilation for b in net.res5] == [(4, 4), (8, 8), (16, 16)]
    assert net.res4[0].conv2.conv.dilation == (2, 2) and net.res3[0].conv1.conv.stride == (2, 2)
    with pytest.raises(ValueError, match="multi_grid"):
        ResNet(50, multi_grid=(1, 2))
    with pytest.raises(ValueError, match="output_stride"):
        ResNet(18, output_stride=4)


def test_odd_input_sizes_give_ceil_sizes():
    for net in (ResNet(18, width=8), Xception65(width_divisor=16), HRNet(8)):
        net.eval()
        out = net(torch.randn(1, 3, 65, 97))
        check_backbone(net, ("res2", "res3", "res5"))
        for name, (ch, stride) in net.out_features.items():
            assert out[name].shape[1] == ch
            assert tuple(out[name].shape[-2:]) == (-(-65 // stride), -(-97 // stride)), name


def test_xception_output_strides():
    for os_ in (8, 16, 32):
        net = Xception65(output_stride=os_, width_divisor=16).eval()
        out = net(torch.randn(1, 3, 64, 64))
        assert net.out_features["res5"][1] == os_
        assert out["res5"].shape[-1] == 64 // os_
        assert out["res2"].shape[-1] == 16 and out["res3"].shape[-1] == 8


def test_factory_and_protocol_errors():
    assert {"resnet18", "resnet50", "resnet101", "r52", "xception65", "hrnet_w48"} <= set(BACKBONES)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg16")
    with pytest.raises(ValueError, match="output stride of 32"):
        build_backbone("hrnet_w48", output_stride=16)

    class NoFeatures(torch.nn.Module):
        pass

    with pytest.raises(TypeError, match="out_features"):
        check_backbone(NoFeatures())
    bad = NoFeatures()
    bad.out_features = {"res2": (8, "4")}
    with pytest.raises(ValueError, match="res2"):
        check_backbone(bad)
    with pytest.raises(ValueError, match="lacks features"):
        check_backbone(ResNet(18, width=8), ("res2", "p6"))


def test_full_size_xception65_and_hrnet48_shapes_on_a_small_input():
    x = torch.randn(1, 3, 64, 64)
    for build in (Xception65, lambda: HRNet(48)):
        net = on_meta(build).to_empty(device="cpu")  # skip the random init: shapes only
        with torch.no_grad():
            for t in net.state_dict().values():
                t.fill_(1 if t.dtype == torch.long else 0.01)
            out = net.eval()(x)
        for name, (ch, stride) in net.out_features.items():
            assert tuple(out[name].shape) == (1, ch, 64 // stride, 64 // stride), name
