"""HRNet (W18/W32/W48) returning its four parallel branches as ``res2``..``res5``
(strides 4, 8, 16, 32).

Reference behaviour: the seed's backbone (bowenc0221/panoptic-deeplab
``segmentation/model/backbone/hrnet.py`` and ``segmentation/config/hrnet_config.py``, wrapped by
``tools_d2/d2/backbone.py`` ``d2_hrnet``), itself from HRNet-Image-Classification, whose
parameter names timm's ``hrnet_w48`` (``timm/models/hrnet.py``) keeps:

* stem: two 3×3 s2 convs (64) with BN + ReLU; ``layer1``: 4 bottlenecks (64 -> 256);
* stages 2/3/4 with 1/4/3 modules, 2/3/4 branches of 4 basic blocks, channels
  (W, 2W, 4W, 8W); transitions: 3×3 conv + BN + ReLU to change channels, a chain of 3×3 s2
  convs to open a new branch from the last one;
* fusion in each module: for a lower-resolution input a 1×1 conv + BN then **bilinear
  upsampling with align_corners=True** (the seed; the classification code and timm use nearest
  upsampling -- set ``upsample_mode="nearest"`` to match ImageNet training), for a
  higher-resolution input a chain of 3×3 s2 conv + BN (+ReLU except the last); sum, ReLU.

The classification heads of the ImageNet checkpoints (``incre_modules``,
``downsamp_modules``, ``final_layer``, ``classifier``) are not part of this backbone.
State-dict names equal the seed's and timm's for every kept parameter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import get_norm


class _Block(nn.Module):
    """Basic (two 3×3) or bottleneck (1×1, 3×3, 1×1) residual block with plain conv/bn names."""

    def __init__(self, in_ch: int, planes: int, bottleneck: bool, norm) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        out_ch = planes * (4 if bottleneck else 1)
        if bottleneck:
            self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
            self.bn1 = norm(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
            self.bn2 = norm(planes)
            self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
            self.bn3 = norm(out_ch)
        else:
            self.conv1 = nn.Conv2d(in_ch, planes, 3, padding=1, bias=False)
            self.bn1 = norm(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
            self.bn2 = norm(planes)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), norm(out_ch))
            if in_ch != out_ch
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.bottleneck:
            out = self.bn3(self.conv3(F.relu(out)))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip)


def _conv_bn(in_ch: int, out_ch: int, k: int, stride: int, norm, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, k, stride, k // 2, bias=False), norm(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HRModule(nn.Module):
    """One multi-resolution module: per-branch basic blocks, then all-to-all fusion."""

    def __init__(self, channels: list[int], num_blocks: int, norm, upsample_mode: str) -> None:
        super().__init__()
        self.upsample_mode = upsample_mode
        n = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*[_Block(c, c, False, norm) for _ in range(num_blocks)])
            for c in channels
        )
        self.fuse_layers = nn.ModuleList()
        if n == 1:
            return
        for i in range(n):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:
                    row.append(_conv_bn(channels[j], channels[i], 1, 1, norm, relu=False))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    chain = [
                        _conv_bn(channels[j], channels[j], 3, 2, norm, relu=True)
                        for _ in range(i - j - 1)
                    ]
                    chain.append(_conv_bn(channels[j], channels[i], 3, 2, norm, relu=False))
                    row.append(nn.Sequential(*chain))
            self.fuse_layers.append(row)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        if len(xs) == 1:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                z = layer(xs[j])
                if j > i:
                    if self.upsample_mode == "nearest":
                        z = F.interpolate(z, size=xs[i].shape[-2:], mode="nearest")
                    else:
                        z = F.interpolate(
                            z, size=xs[i].shape[-2:], mode="bilinear", align_corners=True
                        )
                y = y + z
            out.append(F.relu(y))
        return out


STAGE_MODULES = (1, 4, 3)


class HRNet(nn.Module):
    """HRNet-W``width`` backbone (output stride fixed at 32)."""

    size_divisibility = 32

    def __init__(self, width: int = 48, *, norm: str = "BN", upsample_mode: str = "bilinear") -> None:
        super().__init__()
        if upsample_mode not in ("bilinear", "nearest"):
            raise ValueError(f"upsample_mode must be 'bilinear' or 'nearest', got {upsample_mode!r}")
        nf = get_norm(norm)
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nf(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nf(64)
        self.layer1 = nn.Sequential(
            _Block(64, 64, True, nf), *[_Block(256, 64, True, nf) for _ in range(3)]
        )
        prev = [256]
        for s, n_modules in enumerate(STAGE_MODULES):
            cur = [width * 2**b for b in range(s + 2)]
            trans = nn.ModuleList()
            for b, ch in enumerate(cur):
                if b < len(prev):
                    trans.append(
                        _conv_bn(prev[b], ch, 3, 1, nf, relu=True) if prev[b] != ch
                        else nn.Identity()
                    )
                else:
                    chain = [
                        _conv_bn(prev[-1], ch if k == b - len(prev) else prev[-1], 3, 2, nf, True)
                        for k in range(b + 1 - len(prev))
                    ]
                    trans.append(nn.Sequential(*chain))
            self.add_module(f"transition{s + 1}", trans)
            self.add_module(
                f"stage{s + 2}",
                nn.Sequential(*[HRModule(cur, 4, nf, upsample_mode) for _ in range(n_modules)]),
            )
            prev = cur
        self.out_features = {f"res{b + 2}": (width * 2**b, 4 * 2**b) for b in range(4)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for trans, stage in (
            (self.transition1, self.stage2),
            (self.transition2, self.stage3),
            (self.transition3, self.stage4),
        ):
            xs = [t(xs[min(b, len(xs) - 1)]) for b, t in enumerate(trans)]
            for module in stage:
                xs = module(xs)
        return {f"res{b + 2}": xs[b] for b in range(4)}
