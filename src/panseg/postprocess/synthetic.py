"""Seeded synthetic Panoptic-DeepLab outputs for tests and benchmarks.

The maps look like a trained network's: stuff bands, elliptic thing instances, a center heatmap
made of Gaussians (sigma 10, as detectron2's Cityscapes targets) with peak scores in [0.3, 1],
offsets pointing at the instance centers with noise, and a few percent of flipped labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["SyntheticOutputs", "synthetic_outputs"]


@dataclass(frozen=True)
class SyntheticOutputs:
    """One image's outputs.

    Attributes:
        semantic: int64 [1, H, W] labels in [0, num_classes).
        logits: float32 [C, H, W] semantic logits whose argmax is ``semantic``.
        center: float32 [1, H, W] center heatmap in [0, 1].
        offsets: float32 [2, H, W] (dy, dx).
        thing_ids: the thing classes (the last ``num_things`` labels).
    """

    semantic: torch.Tensor
    logits: torch.Tensor
    center: torch.Tensor
    offsets: torch.Tensor
    thing_ids: tuple[int, ...]


def synthetic_outputs(
    height: int,
    width: int,
    num_classes: int = 19,
    num_things: int = 8,
    num_instances: int = 30,
    sigma: float = 10.0,
    noise: float = 0.02,
    seed: int = 0,
) -> SyntheticOutputs:
    """Seeded outputs of an H x W image with about ``num_instances`` thing instances.

    Args:
        height, width: image size (>= 1).
        num_classes: C >= 2; labels ``C - num_things .. C - 1`` are things.
        num_things: number of thing classes, 1 <= num_things < C.
        num_instances: instances drawn (each gets one Gaussian peak).
        sigma: Gaussian sigma of the center peaks, in pixels.
        noise: fraction of pixels whose label is flipped at random.
        seed: random seed.
    """
    if height < 1 or width < 1 or not 1 <= num_things < num_classes:
        raise ValueError(
            f"need H, W >= 1 and 1 <= num_things < num_classes, got {height}x{width}, "
            f"{num_things} things of {num_classes} classes"
        )
    gen = torch.Generator().manual_seed(seed)
    num_stuff = num_classes - num_things
    ys = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    xs = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    band = (ys * num_stuff / height).long().clamp_(max=num_stuff - 1)
    semantic = band.clone()
    center = torch.zeros(height, width)
    dy = torch.randn(height, width, generator=gen) * 2.0
    dx = torch.randn(height, width, generator=gen) * 2.0
    scale = max(4.0, min(height, width) / 20.0)  # about 15 % thing pixels, as Cityscapes
    for _ in range(num_instances):
        cy = float(torch.rand((), generator=gen)) * (height - 1)
        cx = float(torch.rand((), generator=gen)) * (width - 1)
        ry = scale * (0.5 + float(torch.rand((), generator=gen)))
        rx = scale * (0.5 + float(torch.rand((), generator=gen)) * 1.5)
        cls = num_stuff + int(torch.randint(num_things, (), generator=gen))
        inside = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1.0
        semantic[inside] = cls
        dy[inside] = cy - ys[inside] + torch.randn(int(inside.sum()), generator=gen)
        dx[inside] = cx - xs[inside] + torch.randn(int(inside.sum()), generator=gen)
        peak = 0.3 + 0.7 * float(torch.rand((), generator=gen))
        gauss = peak * torch.exp(-((ys - round(cy)) ** 2 + (xs - round(cx)) ** 2) / (2 * sigma**2))
        center = torch.maximum(center, gauss)
    flip = torch.rand(height, width, generator=gen) < noise
    semantic[flip] = torch.randint(num_classes, (int(flip.sum()),), generator=gen)
    center += 0.01 * torch.rand(height, width, generator=gen)
    logits = torch.randn(num_classes, height, width, generator=gen)
    logits.scatter_(0, semantic[None], logits.amax(dim=0, keepdim=True) + 1.0)
    return SyntheticOutputs(
        semantic=semantic[None],
        logits=logits,
        center=center[None].clamp_(0.0, 1.0),
        offsets=torch.stack((dy, dx)),
        thing_ids=tuple(range(num_stuff, num_classes)),
    )
