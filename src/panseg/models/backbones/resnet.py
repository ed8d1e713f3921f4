"""ResNet-18/50/101 and the DeepLab "R52"/"R103" variants (three 3×3 stem convs), with dilation
for output stride 8/16/32 and multi-grid in res5.

Reference behaviour: detectron2 ``projects/DeepLab/deeplab/resnet.py`` (``DeepLabStem``: 3×3
convs 64 s2, 64, 128, each BN + ReLU, then 3×3 s2 max-pool; ``build_resnet_deeplab_backbone``:
a dilated stage has first stride 1; res5 block ``b`` uses dilation ``res5_dilation *
multi_grid[b]``) and ``detectron2/modeling/backbone/resnet.py`` (bottleneck stride in the 3×3
conv when ``STRIDE_IN_1X1`` is False, as torchvision's ResNet v1.5; shortcut conv when the
channels or the stride change). Unlike torchvision's ``replace_stride_with_dilation`` (first
block of a dilated stage keeps the previous dilation), every block of a dilated stage is dilated,
as in detectron2.

State-dict layout: ``stem.conv1..3`` (or ``stem.conv1`` for the 7×7 stem),
``res{2..5}.{block}.conv{1..3}`` and ``.shortcut``, each a ``ConvNormAct``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNormAct

BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class BasicBlock(nn.Module):
    """Two 3×3 convs with identity or 1×1 projection shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self, in_ch: int, out_ch: int, bottleneck_ch: int, *, stride: int, dilation: int,
        norm: str, stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        del bottleneck_ch, stride_in_1x1
        self.conv1 = ConvNormAct(in_ch, out_ch, 3, stride=stride, dilation=dilation, norm=norm)
        self.conv2 = ConvNormAct(out_ch, out_ch, 3, dilation=dilation, norm=norm, activation=False)
        self.shortcut = (
            ConvNormAct(in_ch, out_ch, 1, stride=stride, norm=norm, activation=False)
            if in_ch != out_ch or stride != 1
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + skip)


class Bottleneck(nn.Module):
    """1×1 -> 3×3 (dilated) -> 1×1 bottleneck with projection shortcut when shapes change."""

    expansion = 4

    def __init__(
        self, in_ch: int, out_ch: int, bottleneck_ch: int, *, stride: int, dilation: int,
        norm: str, stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNormAct(in_ch, bottleneck_ch, 1, stride=s1, norm=norm)
        self.conv2 = ConvNormAct(
            bottleneck_ch, bottleneck_ch, 3, stride=s3, dilation=dilation, norm=norm
        )
        self.conv3 = ConvNormAct(bottleneck_ch, out_ch, 1, norm=norm, activation=False)
        self.shortcut = (
            ConvNormAct(in_ch, out_ch, 1, stride=stride, norm=norm, activation=False)
            if in_ch != out_ch or stride != 1
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + skip)


class Stem(nn.Module):
    """``"basic"``: 7×7 s2 conv; ``"deeplab"``: 3×3 s2 (C/2), 3×3 (C/2), 3×3 (C); then a
    3×3 s2 max-pool. Output stride 4."""

    def __init__(self, kind: str, out_channels: int, norm: str) -> None:
        super().__init__()
        if kind == "basic":
            self.conv1 = ConvNormAct(3, out_channels, 7, stride=2, norm=norm)
        elif kind == "deeplab":
            half = out_channels // 2
            self.conv1 = ConvNormAct(3, half, 3, stride=2, norm=norm)
            self.conv2 = ConvNormAct(half, half, 3, norm=norm)
            self.conv3 = ConvNormAct(half, out_channels, 3, norm=norm)
        else:
            raise ValueError(f"unknown stem {kind!r}; expected 'basic' or 'deeplab'")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.kind == "deeplab":
            x = self.conv3(self.conv2(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def stage_dilations(output_stride: int) -> tuple[int, int]:
    """(res4 dilation, res5 dilation) for an output stride of 8, 16 or 32."""
    table = {8: (2, 4), 16: (1, 2), 32: (1, 1)}
    if output_stride not in table:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    return table[output_stride]


class ResNet(nn.Module):
    """ResNet backbone returning ``res2``..``res5`` (strides 4, 8, 16|8, 32|16|8).

    Args:
        depth: 18, 34, 50 or 101.
        stem: ``"basic"`` (7×7, torchvision/MSRA) or ``"deeplab"`` (three 3×3, "R52").
        stem_channels: stem output channels (64 basic, 128 deeplab when None).
        width: channels of the first stage's 3×3 convs (64 for the published nets); scaled
            down only for tests.
        output_stride: 8, 16 or 32.
        multi_grid: res5 dilation multipliers, one per res5 block; None gives (1, 2, 4) for
            three res5 blocks (DeepLab's "mg124") and all ones otherwise.
        stride_in_1x1: put the stride in the first 1×1 conv (MSRA) instead of the 3×3.
        norm: see :func:`panseg.models.layers.get_norm`.
    """

    size_divisibility = 0

    def __init__(
        self,
        depth: int = 50,
        *,
        stem: str = "basic",
        stem_channels: int | None = None,
        width: int = 64,
        output_stride: int = 16,
        multi_grid: tuple[int, ...] | None = None,
        stride_in_1x1: bool = False,
        norm: str = "BN",
    ) -> None:
        super().__init__()
        if depth not in BLOCKS_PER_STAGE:
            raise ValueError(f"ResNet depth must be one of {sorted(BLOCKS_PER_STAGE)}, got {depth}")
        block_cls: type[nn.Module] = BasicBlock if depth < 50 else Bottleneck
        expansion = block_cls.expansion  # type: ignore[attr-defined]
        blocks = BLOCKS_PER_STAGE[depth]
        if multi_grid is None:
            multi_grid = (1, 2, 4) if blocks[3] == 3 else (1,) * blocks[3]
        if len(multi_grid) != blocks[3]:
            raise ValueError(f"multi_grid needs {blocks[3]} values for res5, got {multi_grid}")
        if stem_channels is None:
            stem_channels = 2 * width if stem == "deeplab" else width
        self.stem = Stem(stem, stem_channels, norm)
        res4_dil, res5_dil = stage_dilations(output_stride)
        in_ch, bottleneck, stride = stem_channels, width, 4
        self.out_features: dict[str, tuple[int, int]] = {}
        for i, n in enumerate(blocks):
            name = f"res{i + 2}"
            dilation = {2: res4_dil, 3: res5_dil}.get(i, 1)
            first_stride = 1 if i == 0 or dilation > 1 else 2
            stride *= first_stride
            out_ch = bottleneck * expansion
            layers = []
            for b in range(n):
                dil = dilation * multi_grid[b] if i == 3 else dilation
                layers.append(
                    block_cls(
                        in_ch, out_ch, bottleneck, stride=first_stride if b == 0 else 1,
                        dilation=dil, norm=norm, stride_in_1x1=stride_in_1x1,
                    )
                )
                in_ch = out_ch
            self.add_module(name, nn.Sequential(*layers))
            self.out_features[name] = (out_ch, stride)
            bottleneck *= 2

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        x = self.stem(x)
        x = self.res2(x)
        out["res2"] = x
        x = self.res3(x)
        out["res3"] = x
        x = self.res4(x)
        out["res4"] = x
        x = self.res5(x)
        out["res5"] = x
        return out
