"""Semantic, center and offset prediction heads of Panoptic-DeepLab.

Reference behaviour: detectron2 ``projects/Panoptic-DeepLab/panoptic_deeplab/panoptic_seg.py``
``PanopticDeepLabSemSegHead`` (tower: two 3×3 conv + norm + ReLU decoder -> decoder ->
head_channels, or one 5×5 depthwise-separable conv; 1×1 predictor with bias, N(0, 0.001)) and
``PanopticDeepLabInsEmbedHead`` (center tower **always** two 3×3 convs, even with depthwise-
separable convs; offset tower like the semantic one; predictors with 1 and 2 channels).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import conv_tower, predictor


class PredictionHead(nn.Module):
    """``tower`` (see :func:`panseg.models.layers.conv_tower`) then a 1×1 ``predictor``.
    Input N×in_channels×h×w, output N×out_channels×h×w (raw logits / regression values)."""

    def __init__(
        self, in_channels: int, head_channels: int, out_channels: int, *, use_dsconv: bool,
        norm: str = "BN",
    ) -> None:
        super().__init__()
        self.tower = conv_tower(
            in_channels, in_channels, head_channels, use_dsconv=use_dsconv, norm=norm
        )
        self.predictor = predictor(head_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.tower(x))
