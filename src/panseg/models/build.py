"""Model configuration (a frozen dataclass loaded strictly) and the builders.

Defaults equal detectron2's published Panoptic-DeepLab configs
(``projects/Panoptic-DeepLab/configs/Cityscapes-PanopticSegmentation/
Base-PanopticDeepLab-OS16.yaml`` + ``panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024
.yaml``, ``panoptic_deeplab/config.py``), except ``norm``: "BN" rather than "SyncBN" (set
``norm="SyncBN"`` for multi-device training).
:meth:`ModelConfig.cityscapes` and :meth:`ModelConfig.coco` give the presets, including the
seed's Xception-65 and HRNet-48 configs (bowenc0221/panoptic-deeplab ``tools_d2/configs``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .backbones.base import BACKBONES, build_backbone
from .panoptic_deeplab import IMAGENET_RGB_MEAN, IMAGENET_RGB_STD, PanopticDeepLab

XCEPTION_TF_MEAN = (128.0, 128.0, 128.0)
XCEPTION_TF_STD = (128.0, 128.0, 128.0)


@dataclass(frozen=True)
class ModelConfig:
    """Every knob of :func:`build_model`; see ``docs/models.md`` for each field's source."""

    backbone: str = "r52"
    num_classes: int = 19
    output_stride: int = 16
    multi_grid: tuple[int, ...] | None = (1, 2, 4)
    use_dsconv: bool = False
    norm: str = "BN"
    width_divisor: int = 1
    in_features: tuple[str, ...] = ("res2", "res3", "res5")
    sem_project_channels: tuple[int, ...] = (32, 64)
    ins_project_channels: tuple[int, ...] = (32, 64)
    aspp_channels: int = 256
    aspp_dilations: tuple[int, ...] = (6, 12, 18)
    aspp_dropout: float = 0.1
    sem_decoder_channels: int = 256
    sem_head_channels: int = 256
    ins_decoder_channels: int = 128
    ins_head_channels: int = 32
    common_stride: int = 4
    train_size: tuple[int, int] | None = (512, 1024)
    size_divisibility: int = -1
    ignore_label: int = 255
    loss_top_k: float = 0.2
    semantic_loss_weight: float = 1.0
    center_loss_weight: float = 200.0
    offset_loss_weight: float = 0.01
    pixel_mean: tuple[float, ...] = field(default=IMAGENET_RGB_MEAN)
    pixel_std: tuple[float, ...] = field(default=IMAGENET_RGB_STD)

    @classmethod
    def cityscapes(cls, backbone: str = "r52", *, use_dsconv: bool = False, **overrides: Any) -> ModelConfig:
        """detectron2/seed Cityscapes config (19 classes, 512×1024 crops, top-k 0.2)."""
        return cls(**{**_backbone_defaults(backbone), "use_dsconv": use_dsconv, **overrides})

    @classmethod
    def coco(cls, backbone: str = "r52", *, use_dsconv: bool = True, **overrides: Any) -> ModelConfig:
        """detectron2/seed COCO config (133 classes, 640×640 crops padded to 640, top-k 1.0,
        depthwise-separable convs)."""
        base = {
            **_backbone_defaults(backbone), "num_classes": 133, "train_size": (640, 640),
            "size_divisibility": 640, "loss_top_k": 1.0, "use_dsconv": use_dsconv,
        }
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Strict loading: unknown keys and wrong types raise ``ValueError`` naming the key."""
        if not isinstance(data, dict):
            raise ValueError(f"model config must be a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        unknown = sorted(set(data) - set(hints))
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; valid keys: {sorted(hints)}")
        return cls(**{k: _coerce(k, v, hints[k]) for k, v in data.items()})


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"model config {key!r} must be a list, got {value!r}")
        args = typing.get_args(hint)
        elem = args[0]
        if len(args) != 2 or args[1] is not Ellipsis:
            if len(value) != len(args):
                raise ValueError(f"model config {key!r} needs {len(args)} values, got {value!r}")
        return tuple(_coerce(key, v, elem) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ValueError(
                f"model config {key!r} must be {hint.__name__}, got {type(value).__name__} "
                f"{value!r}"
            )
        return value
    raise ValueError(f"model config {key!r}: unsupported type {hint}")


def _backbone_defaults(backbone: str) -> dict[str, Any]:
    if backbone.startswith("hrnet"):
        # seed: tools_d2/configs/.../panoptic_deeplab_H_48_os16_mg124_poly_90k_bs32_crop_512_1024.yaml
        return {
            "backbone": backbone, "output_stride": 32, "multi_grid": None,
            "in_features": ("res2", "res3", "res4", "res5"),
            "sem_project_channels": (32, 64, 128), "ins_project_channels": (32, 64, 128),
            "aspp_dilations": (3, 6, 9),
        }
    if backbone == "xception65":
        # seed: ..._X_65_os16_mg124_poly_90k_bs32_crop_512_1024.yaml (TF weights, mean=std=128)
        return {
            "backbone": backbone, "multi_grid": None, "pixel_mean": XCEPTION_TF_MEAN,
            "pixel_std": XCEPTION_TF_STD,
        }
    if backbone in ("resnet18",):
        return {"backbone": backbone, "multi_grid": None}
    return {"backbone": backbone}


def _pool_kernel(train_size: tuple[int, int] | None, stride: int) -> tuple[int, int] | None:
    if train_size is None:
        return None
    th, tw = train_size
    if th % stride or tw % stride:
        raise ValueError(f"train_size {train_size} must be divisible by the ASPP input stride {stride}")
    return (th // stride, tw // stride)


def build_model(
    *,
    backbone: str | nn.Module,
    num_classes: int,
    use_dsconv: bool,
    output_stride: int = 16,
    multi_grid: tuple[int, ...] | None = None,
    norm: str = "BN",
    width_divisor: int = 1,
    train_size: tuple[int, int] | None = (512, 1024),
    **kwargs: Any,
) -> PanopticDeepLab:
    """Build a :class:`PanopticDeepLab`.

    ``backbone`` is a name from ``panseg.models.backbones.base.BACKBONES`` or a module that
    follows the backbone protocol. ``width_divisor`` > 1 shrinks the named backbones (tests
    only). ``multi_grid`` None uses the ResNet default ((1, 2, 4) for three res5 blocks).
    ``train_size`` (training crop, H, W) sets the ASPP pooling kernel to
    ``train_size / stride`` as detectron2 does; None pools globally. Other keyword arguments
    go to :class:`PanopticDeepLab`.
    """
    if isinstance(backbone, str):
        bkw: dict[str, Any] = {"output_stride": output_stride, "norm": norm}
        if backbone.startswith("hrnet"):
            bkw["width"] = int(backbone.split("_w")[1]) // width_divisor
            bkw.pop("output_stride")
            if output_stride != 32:
                raise ValueError("HRNet has a fixed output stride of 32; set output_stride=32")
            from .backbones.hrnet import HRNet

            net: nn.Module = HRNet(**bkw)
        elif backbone == "xception65":
            net = build_backbone(backbone, width_divisor=width_divisor, **bkw)
        elif backbone in BACKBONES:
            bkw["multi_grid"] = multi_grid
            if width_divisor != 1:
                bkw["width"] = 64 // width_divisor
            net = build_backbone(backbone, **bkw)
        else:
            raise ValueError(
                f"unknown backbone {backbone!r}; expected one of {', '.join(sorted(BACKBONES))}"
            )
    else:
        net = backbone
    in_features = tuple(kwargs.get("in_features", ("res2", "res3", "res5")))
    feats = getattr(net, "out_features", {})
    aspp_stride = max(feats[n][1] for n in in_features if n in feats) if feats else output_stride
    pool = _pool_kernel(tuple(train_size) if train_size is not None else None, aspp_stride)
    return PanopticDeepLab(net, num_classes=num_classes, use_dsconv=use_dsconv, norm=norm,
                           pool_kernel_size=pool, **kwargs)


def build_model_from_config(cfg: ModelConfig) -> PanopticDeepLab:
    """Build the model a :class:`ModelConfig` describes."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"expected ModelConfig, got {type(cfg).__name__}")
    d = cfg.to_dict()
    kw = {k: d.pop(k) for k in (
        "backbone", "num_classes", "use_dsconv", "output_stride", "multi_grid", "norm",
        "width_divisor", "train_size",
    )}
    for key in ("in_features", "sem_project_channels", "ins_project_channels", "aspp_dilations",
                "pixel_mean", "pixel_std"):
        d[key] = tuple(d[key])
    if kw["multi_grid"] is not None:
        kw["multi_grid"] = tuple(kw["multi_grid"])
    if kw["train_size"] is not None:
        kw["train_size"] = tuple(kw["train_size"])
    return build_model(**kw, **d)
