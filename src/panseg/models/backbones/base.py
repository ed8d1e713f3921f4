"""The backbone protocol and the factory that builds panseg's backbones by name.

A backbone is any ``nn.Module`` that has

* ``out_features: dict[str, tuple[int, int]]`` -- feature name -> (channels, stride), with at
  least the features the decoders read (by default ``"res2"`` stride 4, ``"res3"`` stride 8 and
  ``"res5"``, the ASPP input: stride 16 at output stride 16, as in detectron2 where res5 is
  dilated), and
* ``forward(x) -> dict[str, Tensor]``: for ``x`` of shape N×3×H×W it returns every name of
  ``out_features``, each N×C×ceil(H/stride)×ceil(W/stride) (for H, W divisible by the largest
  stride the sizes are exact).

Optionally ``size_divisibility: int`` asks the model to zero-pad inputs to a multiple of it.
See docs/models.md for a complete custom backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Backbone(Protocol):
    """Structural type of a backbone (see the module docstring)."""

    out_features: dict[str, tuple[int, int]]

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]: ...


def check_backbone(backbone: nn.Module, required: tuple[str, ...] = ()) -> None:
    """Raise ``TypeError``/``ValueError`` naming what is wrong if ``backbone`` does not follow
    the protocol or lacks one of the ``required`` feature names."""
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
    feats = getattr(backbone, "out_features", None)
    if not isinstance(feats, dict) or not feats:
        raise TypeError(
            f"{type(backbone).__name__} has no out_features dict "
            "(feature name -> (channels, stride))"
        )
    for name, spec in feats.items():
        ok = (
            isinstance(spec, tuple)
            and len(spec) == 2
            and all(isinstance(v, int) and v > 0 for v in spec)
        )
        if not ok:
            raise ValueError(
                f"{type(backbone).__name__}.out_features[{name!r}] must be a tuple "
                f"(channels, stride) of positive ints, got {spec!r}"
            )
    missing = [n for n in required if n not in feats]
    if missing:
        raise ValueError(
            f"{type(backbone).__name__} lacks features {missing}; it provides {sorted(feats)}"
        )


def _resnet(depth: int, stem: str) -> Callable[..., nn.Module]:
    def build(**kwargs: Any) -> nn.Module:
        from .resnet import ResNet

        return ResNet(depth, stem=stem, **kwargs)

    return build


def _xception65(**kwargs: Any) -> nn.Module:
    from .xception import Xception65

    kwargs.pop("multi_grid", None)  # DeepLab's Xception has no multi-grid
    return Xception65(**kwargs)


def _hrnet(width: int) -> Callable[..., nn.Module]:
    def build(**kwargs: Any) -> nn.Module:
        from .hrnet import HRNet

        kwargs.pop("multi_grid", None)
        if kwargs.pop("output_stride", 32) != 32:
            raise ValueError("HRNet has a fixed output stride of 32 (res5); use output_stride=32")
        return HRNet(width, **kwargs)

    return build


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": _resnet(18, "basic"),
    "resnet50": _resnet(50, "basic"),
    "resnet101": _resnet(101, "basic"),
    "r52": _resnet(50, "deeplab"),
    "r103": _resnet(101, "deeplab"),
    "xception65": _xception65,
    "hrnet_w18": _hrnet(18),
    "hrnet_w32": _hrnet(32),
    "hrnet_w48": _hrnet(48),
}


def build_backbone(name: str, **kwargs: Any) -> nn.Module:
    """Build a panseg backbone by name (``BACKBONES`` keys) with explicit keyword arguments
    (``output_stride``, ``norm``, ``multi_grid`` and the backbone's own options)."""
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; expected one of {', '.join(sorted(BACKBONES))}"
        ) from None
    return factory(**kwargs)
