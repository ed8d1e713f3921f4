"""Building blocks shared by backbones and heads: conv + norm + activation, depthwise-separable
convolution and a normalisation factory.

Reference behaviour (detectron2): ``detectron2/layers/wrappers.py`` ``Conv2d`` holds an optional
``norm`` and ``activation`` after the convolution; ``detectron2/layers/blocks.py``
``DepthwiseSeparableConv2d`` is a k×k depthwise conv + norm + ReLU followed by a 1×1 conv +
norm + ReLU; ``detectron2/layers/batch_norm.py`` ``get_norm`` maps "BN"/"SyncBN"/"GN" to layers.
Initialisation follows detectron2: Xavier-uniform ("c2_xavier_fill") for decoder convs and
MSRA-normal fan-out ("c2_msra_fill") for backbone and depthwise-separable convs, bias zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NormFactory = Callable[[int], nn.Module]

NORM_CHOICES = ("BN", "SyncBN", "GN", "none")


def get_norm(norm: str | NormFactory, eps: float = 1e-5, momentum: float = 0.1) -> NormFactory:
    """Return a factory ``channels -> nn.Module`` for a normalisation name.

    ``"BN"``: ``nn.BatchNorm2d``; ``"SyncBN"``: ``nn.SyncBatchNorm`` (synchronises batch
    statistics across the process group under DDP; without an initialised process group it
    behaves as BN in torch 2.x, so a SyncBN config also runs on one device, where detectron2's
    shipped configs crash single-GPU users); ``"GN"``: ``nn.GroupNorm(32, C)``;
    ``"none"``: identity (the conv then gets a bias). A callable is returned unchanged.
    """
    if callable(norm):
        return norm
    if norm == "BN":
        return lambda c: nn.BatchNorm2d(c, eps=eps, momentum=momentum)
    if norm == "SyncBN":
        return lambda c: nn.SyncBatchNorm(c, eps=eps, momentum=momentum)
    if norm == "GN":
        return lambda c: nn.GroupNorm(min(32, c), c, eps=eps)
    if norm == "none":
        return lambda c: nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORM_CHOICES)}")


def c2_xavier_fill(conv: nn.Conv2d) -> None:
    """Xavier-uniform weights with a=1 (kaiming_uniform_ a=1), zero bias, as detectron2."""
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def c2_msra_fill(conv: nn.Conv2d) -> None:
    """Kaiming-normal fan-out ReLU weights, zero bias, as detectron2."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ConvNormAct(nn.Module):
    """``conv -> norm -> ReLU`` (norm and ReLU optional). State-dict keys: ``conv.weight``,
    ``conv.bias`` (only without a norm), ``norm.*``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm: str | NormFactory = "BN",
        activation: bool = True,
        init: str = "msra",
    ) -> None:
        super().__init__()
        norm_factory = get_norm(norm)
        norm_layer = norm_factory(out_channels)
        has_norm = not isinstance(norm_layer, nn.Identity)
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            groups=groups,
            bias=not has_norm,
        )
        self.norm = norm_layer
        self.act = nn.ReLU(inplace=True) if activation else nn.Identity()
        if init == "msra":
            c2_msra_fill(self.conv)
        elif init == "xavier":
            c2_xavier_fill(self.conv)
        else:
            raise ValueError(f"unknown init {init!r}; expected 'msra' or 'xavier'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class DepthwiseSeparableConv2d(nn.Module):
    """k×k depthwise conv + norm + ReLU, then 1×1 pointwise conv + norm + ReLU
    (detectron2 ``DepthwiseSeparableConv2d`` with norm1=norm2=norm and ReLU activations).
    State-dict keys: ``depthwise.*`` and ``pointwise.*`` (each a :class:`ConvNormAct`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        dilation: int = 1,
        norm: str | NormFactory = "BN",
    ) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(
            in_channels, in_channels, kernel_size, dilation=dilation, groups=in_channels, norm=norm
        )
        self.pointwise = ConvNormAct(in_channels, out_channels, 1, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def conv_tower(
    in_channels: int, mid_channels: int, out_channels: int, *, use_dsconv: bool, norm: str
) -> nn.Module:
    """The fuse/head block of Panoptic-DeepLab (detectron2 ``P/panoptic_seg.py``,
    ``DL/semantic_seg.py``): two 3×3 ConvNormAct (in -> mid -> out, Xavier init), or with
    ``use_dsconv`` one 5×5 :class:`DepthwiseSeparableConv2d` (in -> out)."""
    if use_dsconv:
        return DepthwiseSeparableConv2d(in_channels, out_channels, 5, norm=norm)
    return nn.Sequential(
        ConvNormAct(in_channels, mid_channels, 3, norm=norm, init="xavier"),
        ConvNormAct(mid_channels, out_channels, 3, norm=norm, init="xavier"),
    )


def predictor(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1×1 conv with bias, weights ~ N(0, 0.001), bias 0 (detectron2's predictors)."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.normal_(conv.weight, 0.0, 0.001)
    nn.init.zeros_(conv.bias)
    return conv
