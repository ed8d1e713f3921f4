"""Xception-65 as in DeepLab (aligned Xception, DeepLabV3+ paper), with dilation for output
stride 8/16/32.

Reference behaviour: the seed's backbone (bowenc0221/panoptic-deeplab
``segmentation/model/backbone/xception.py``, from SegmenTron, wrapped by
``tools_d2/d2/backbone.py`` ``d2_xception_65``) and timm ``xception65``
(``timm/models/xception_aligned.py``), which share one architecture:

* stem: 3×3 s2 conv 32 + BN + ReLU, 3×3 conv 64 + BN + ReLU;
* 21 blocks of three separable convs (3×3 depthwise + BN, 1×1 pointwise + BN). Blocks 1-20
  apply ReLU *before* each separable conv ("relu first"); block 21 applies ReLU after each BN.
  Entry flow: blocks 1-3 with 128, 256, 728 channels and stride 2 in the third separable conv,
  1×1 conv + BN shortcut. Middle flow: 16 blocks of 728 with identity shortcut. Exit flow:
  block 20 (728, 1024, 1024; shortcut conv), block 21 (1536, 1536, 2048; no shortcut).
* output stride 16: block 20 gets stride 1, block 21 dilation 2; output stride 8: block 3
  stride 1, middle flow dilation 2, blocks 20/21 dilations 2/4.
* features: ``res2`` = block 2's second separable conv (256 ch, stride 4, before its stride-2
  conv, BN output without ReLU), ``res3`` = the same of block 3 (728, stride 8), ``res4`` =
  block 19 (728), ``res5`` = block 21 (2048).

State-dict layout: ``stem.conv{1,2}``, ``blocks.{0..20}.shortcut`` and
``blocks.{i}.sep{1..3}.{depthwise,pointwise}``, each a ``ConvNormAct``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNormAct


class SeparableConv(nn.Module):
    """3×3 depthwise + norm (+ReLU when ``relu_after``), 1×1 pointwise + norm (+ReLU)."""

    def __init__(
        self, in_ch: int, out_ch: int, *, stride: int, dilation: int, relu_after: bool, norm: str
    ) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(
            in_ch, in_ch, 3, stride=stride, dilation=dilation, groups=in_ch, norm=norm,
            activation=relu_after,
        )
        self.pointwise = ConvNormAct(in_ch, out_ch, 1, norm=norm, activation=relu_after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """Three separable convs with a conv, identity or no shortcut; returns (output, the second
    separable conv's output)."""

    def __init__(
        self, channels: tuple[int, int, int, int], *, stride: int = 1, dilation: int = 1,
        skip: str = "conv", relu_first: bool = True, norm: str = "BN",
    ) -> None:
        super().__init__()
        if skip not in ("conv", "sum", "none"):
            raise ValueError(f"skip must be 'conv', 'sum' or 'none', got {skip!r}")
        self.skip = skip
        self.relu_first = relu_first
        c0, c1, c2, c3 = channels
        if skip == "conv":
            self.shortcut = ConvNormAct(c0, c3, 1, stride=stride, norm=norm, activation=False)
        kw = dict(dilation=dilation, relu_after=not relu_first, norm=norm)
        self.sep1 = SeparableConv(c0, c1, stride=1, **kw)
        self.sep2 = SeparableConv(c1, c2, stride=1, **kw)
        self.sep3 = SeparableConv(c2, c3, stride=stride, **kw)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.relu_first else x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s1 = self.sep1(self._act(x))
        s2 = self.sep2(self._act(s1))
        out = self.sep3(self._act(s2))
        if self.skip == "conv":
            out = out + self.shortcut(x)
        elif self.skip == "sum":
            out = out + x
        return out, s2


class Xception65(nn.Module):
    """DeepLab Xception-65 returning ``res2`` (256, 4), ``res3`` (728, 8), ``res4`` (728, 16
    or 8) and ``res5`` (2048, output stride). ``width_divisor`` divides every channel count
    (1 for the published net; larger only to make tests fast)."""

    size_divisibility = 32

    def __init__(
        self, *, output_stride: int = 16, norm: str = "BN", width_divisor: int = 1
    ) -> None:
        super().__init__()
        plan = {32: (2, 1, (1, 1), 2), 16: (2, 1, (1, 2), 1), 8: (1, 2, (2, 4), 1)}
        if output_stride not in plan:
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        entry3_stride, mid_dil, (exit_dil1, exit_dil2), exit_stride = plan[output_stride]

        def c(n: int) -> int:
            return max(1, n // width_divisor)

        self.stem = nn.Sequential()
        self.stem.add_module("conv1", ConvNormAct(3, c(32), 3, stride=2, norm=norm))
        self.stem.add_module("conv2", ConvNormAct(c(32), c(64), 3, norm=norm))
        blocks = [
            XceptionBlock((c(64), c(128), c(128), c(128)), stride=2, norm=norm),
            XceptionBlock((c(128), c(256), c(256), c(256)), stride=2, norm=norm),
            XceptionBlock((c(256), c(728), c(728), c(728)), stride=entry3_stride, norm=norm),
        ]
        blocks += [
            XceptionBlock((c(728),) * 4, dilation=mid_dil, skip="sum", norm=norm)
            for _ in range(16)
        ]
        blocks.append(
            XceptionBlock(
                (c(728), c(728), c(1024), c(1024)), stride=exit_stride, dilation=exit_dil1,
                norm=norm,
            )
        )
        blocks.append(
            XceptionBlock(
                (c(1024), c(1536), c(1536), c(2048)), dilation=exit_dil2, skip="none",
                relu_first=False, norm=norm,
            )
        )
        self.blocks = nn.ModuleList(blocks)
        s4 = 16 if entry3_stride == 2 else 8
        self.out_features = {
            "res2": (c(256), 4),
            "res3": (c(728), 8),
            "res4": (c(728), s4),
            "res5": (c(2048), output_stride),
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x, low = block(x)
            if i == 1:
                out["res2"] = low
            elif i == 2:
                out["res3"] = low
            elif i == 18:
                out["res4"] = x
        out["res5"] = x
        return out
