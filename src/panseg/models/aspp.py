"""Atrous Spatial Pyramid Pooling (DeepLabV3) with image pooling that works at any input size.

Reference behaviour: detectron2 ``detectron2/layers/aspp.py`` ``ASPP``: a 1×1 conv + norm +
ReLU branch, three 3×3 atrous conv + norm + ReLU branches (or depthwise-separable convs), an
image-pooling branch (average pool, 1×1 conv **with bias and no norm**, ReLU, bilinear resize
back with ``align_corners=False``), concatenation, 1×1 projection conv + norm + ReLU, dropout
(0.1 in Panoptic-DeepLab). detectron2 pools with a fixed kernel (training crop / 16, e.g.
(32, 64)) and stride 1, and raises ``ValueError`` unless the feature size is divisible by that
kernel; AvgPool2d itself crashes when the feature map is smaller than the kernel.

panseg: with ``pool_kernel_size=None`` the pooling is global; with a kernel it is the same
stride-1 sliding average as detectron2 wherever detectron2 runs, and at any other size the
kernel is clipped to the feature size (so a small or odd test image pools globally along that
axis instead of crashing).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvNormAct, DepthwiseSeparableConv2d, c2_xavier_fill


def image_pool(x: torch.Tensor, kernel: tuple[int, int] | None) -> torch.Tensor:
    """Average pool of an N×C×h×w map: global when ``kernel`` is None, else a stride-1
    sliding window of ``min(kernel, (h, w))`` (output (h - kh + 1)×(w - kw + 1))."""
    if kernel is None:
        return x.mean(dim=(2, 3), keepdim=True)
    # Python ints: the window is fixed when traced for export (ONNX needs a static kernel).
    kh = min(int(kernel[0]), int(x.shape[-2]))
    kw = min(int(kernel[1]), int(x.shape[-1]))
    return F.avg_pool2d(x, (kh, kw), stride=1)


class ASPP(nn.Module):
    """ASPP. Input N×in_channels×h×w, output N×out_channels×h×w.

    State-dict layout: ``conv1x1``, ``atrous.{0,1,2}`` (``ConvNormAct`` or
    ``DepthwiseSeparableConv2d``), ``pool_conv`` (plain conv with bias), ``project``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int] = (6, 12, 18),
        *,
        norm: str = "BN",
        pool_kernel_size: tuple[int, int] | None = None,
        dropout: float = 0.1,
        use_dsconv: bool = False,
    ) -> None:
        super().__init__()
        if len(dilations) != 3:
            raise ValueError(f"ASPP expects 3 dilations, got {list(dilations)}")
        if pool_kernel_size is not None and (
            len(pool_kernel_size) != 2 or min(pool_kernel_size) < 1
        ):
            raise ValueError(f"pool_kernel_size must be two positive ints, got {pool_kernel_size}")
        self.pool_kernel_size = None if pool_kernel_size is None else tuple(pool_kernel_size)
        self.dropout = float(dropout)
        self.conv1x1 = ConvNormAct(in_channels, out_channels, 1, norm=norm, init="xavier")
        self.atrous = nn.ModuleList(
            DepthwiseSeparableConv2d(in_channels, out_channels, 3, dilation=d, norm=norm)
            if use_dsconv
            else ConvNormAct(in_channels, out_channels, 3, dilation=d, norm=norm, init="xavier")
            for d in dilations
        )
        self.pool_conv = nn.Conv2d(in_channels, out_channels, 1, bias=True)
        c2_xavier_fill(self.pool_conv)
        self.project = ConvNormAct(5 * out_channels, out_channels, 1, norm=norm, init="xavier")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        branches = [self.conv1x1(x)] + [conv(x) for conv in self.atrous]
        pooled = F.relu(self.pool_conv(image_pool(x, self.pool_kernel_size)))
        branches.append(F.interpolate(pooled, size=size, mode="bilinear", align_corners=False))
        out = self.project(torch.cat(branches, dim=1))
        if self.dropout > 0:
            out = F.dropout(out, self.dropout, training=self.training)
        return out
