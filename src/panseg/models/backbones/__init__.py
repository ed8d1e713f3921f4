"""Backbones for Panoptic-DeepLab; see :mod:`panseg.models.backbones.base` for the protocol."""

from .base import BACKBONES, Backbone, build_backbone, check_backbone

__all__ = ["BACKBONES", "Backbone", "build_backbone", "check_backbone"]
