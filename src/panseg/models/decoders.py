"""The DeepLabV3+ style decoder used twice by Panoptic-DeepLab (semantic and instance).

Reference behaviour: detectron2 ``projects/DeepLab/deeplab/semantic_seg.py``
``DeepLabV3PlusHead.__init__``/``layers``: features sorted by stride; the last one (largest
stride) goes through ASPP (its output has ``aspp_channels``); then for each lower feature from
coarse to fine: a 1×1 conv + norm + ReLU projection to ``project_channels[i]``, bilinear resize
(``align_corners=False``) of the running map to the projected size, concatenation
**[projected, upsampled]**, and a fuse block (two 3×3 conv + norm + ReLU, or one 5×5
depthwise-separable conv) to ``decoder_channels``. The output has the stride of the finest
feature (4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .aspp import ASPP
from .layers import ConvNormAct, conv_tower


class DeepLabV3PlusDecoder(nn.Module):
    """Decoder over named backbone features.

    Args:
        in_features: {name: (channels, stride)} of the features to read; the one with the
            largest stride feeds ASPP, the others are low-level features.
        project_channels: projection width for each low-level feature, finest first
            (detectron2's ``PROJECT_CHANNELS`` order, e.g. [32, 64] for res2, res3).
        aspp_channels, aspp_dilations, aspp_dropout, pool_kernel_size: see :class:`ASPP`.
        decoder_channels: output channels of every fuse block (``CONVS_DIM``).
        use_dsconv: depthwise-separable convs in ASPP and the fuse blocks.

    Forward: dict of features -> N×decoder_channels×h×w at the finest stride.
    State-dict layout: ``aspp.*``, ``project.<name>.*``, ``fuse.<name>.*``.
    """

    def __init__(
        self,
        in_features: dict[str, tuple[int, int]],
        *,
        project_channels: Sequence[int],
        aspp_channels: int = 256,
        aspp_dilations: Sequence[int] = (6, 12, 18),
        aspp_dropout: float = 0.1,
        decoder_channels: int = 256,
        pool_kernel_size: tuple[int, int] | None = None,
        use_dsconv: bool = False,
        norm: str = "BN",
    ) -> None:
        super().__init__()
        ordered = sorted(in_features.items(), key=lambda kv: kv[1][1])
        if len(ordered) < 2:
            raise ValueError("the decoder needs at least one low-level feature and an ASPP input")
        if len(project_channels) != len(ordered) - 1:
            raise ValueError(
                f"expected {len(ordered) - 1} project_channels for low-level features "
                f"{[n for n, _ in ordered[:-1]]}, got {list(project_channels)}"
            )
        self.aspp_feature = ordered[-1][0]
        self.low_features = [name for name, _ in ordered[:-1]]
        self.out_channels = decoder_channels
        self.aspp = ASPP(
            ordered[-1][1][0], aspp_channels, aspp_dilations, norm=norm,
            pool_kernel_size=pool_kernel_size, dropout=aspp_dropout, use_dsconv=use_dsconv,
        )
        self.project = nn.ModuleDict()
        self.fuse = nn.ModuleDict()
        prev = aspp_channels
        for (name, (ch, _)), proj in reversed(list(zip(ordered[:-1], project_channels, strict=True))):
            self.project[name] = ConvNormAct(ch, proj, 1, norm=norm, init="xavier")
            self.fuse[name] = conv_tower(
                proj + prev, decoder_channels, decoder_channels, use_dsconv=use_dsconv, norm=norm
            )
            prev = decoder_channels

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        y = self.aspp(features[self.aspp_feature])
        for name in self.low_features[::-1]:
            proj = self.project[name](features[name])
            y = F.interpolate(y, size=proj.shape[-2:], mode="bilinear", align_corners=False)
            y = self.fuse[name](torch.cat([proj, y], dim=1))
        return y
