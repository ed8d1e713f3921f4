"""Panoptic-DeepLab in pure PyTorch: backbones, ASPP, decoders, heads, losses, weight import
and export. Importing this package imports torch; data-preparation code must not import it.
See docs/models.md."""

from .build import ModelConfig, build_model, build_model_from_config
from .panoptic_deeplab import IMAGENET_RGB_MEAN, IMAGENET_RGB_STD, PanopticDeepLab

__all__ = [
    "IMAGENET_RGB_MEAN",
    "IMAGENET_RGB_STD",
    "ModelConfig",
    "PanopticDeepLab",
    "build_model",
    "build_model_from_config",
]
