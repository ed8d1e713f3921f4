"""Training configuration: frozen dataclasses loaded strictly from YAML, with ``--set`` overrides.

A config file has five sections (every key optional; defaults are detectron2's Cityscapes
Panoptic-DeepLab recipe, ``projects/Panoptic-DeepLab/configs/Cityscapes-PanopticSegmentation/
Base-PanopticDeepLab-OS16.yaml`` and ``panoptic_deeplab/config.py``):

* ``model``: :class:`panseg.models.ModelConfig` fields;
* ``data``: records, augmentation and target generation (:class:`DataConfig`);
* ``solver``: optimizer, schedule, batch, AMP, clipping, checkpoints (:class:`SolverConfig`);
* ``eval``: post-processing and periodic evaluation (:class:`EvalConfig`);
* ``init``: weights to start from (:class:`InitConfig`).

An unknown section or key, a value of the wrong type or a bad choice is a
:class:`ConfigError` naming the key (``solver.base_lr``) and the file. Overrides
``a.b=value`` parse the value as YAML (``solver.max_iter=100``, ``data.crop_size=[64,96]``)
and go through the same checks. Floats written like ``1e-3`` (a string for YAML 1.1) are
accepted for float fields. This module does not import torch.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from panseg import fsio

# detectron2 Base-PanopticDeepLab-OS16.yaml INPUT.MIN_SIZE_TRAIN (Cityscapes, 1024×2048)
CITYSCAPES_SHORT_EDGES = (
    512, 640, 704, 832, 896, 1024, 1152, 1216, 1344, 1408, 1536, 1664, 1728, 1856, 1920, 2048,
)


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the file."""


@dataclass(frozen=True)
class DataConfig:
    """Records and the training pipeline.

    ``augment``: ``resize_shortest_edge`` (detectron2: short side drawn from ``short_edges``,
    long side capped at ``max_size``), ``random_scale`` (uniform factor in
    ``[min_scale, max_scale]``) or ``none``; then a ``crop_size`` crop (padded when the image
    is smaller) and a horizontal flip when ``flip``. Target options are those of
    :class:`panseg.data.targets.PanopticTargetGenerator`.
    """

    root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    augment: str = "resize_shortest_edge"
    short_edges: tuple[int, ...] = CITYSCAPES_SHORT_EDGES
    max_size: int = 4096
    min_scale: float = 0.5
    max_scale: float = 2.0
    crop_size: tuple[int, int] = (512, 1024)
    flip: bool = True
    sigma: int = 10
    target_variant: str = "detectron2"
    small_instance_area: int = 4096
    small_instance_weight: float = 3.0
    ignore_stuff_in_offset: bool = True
    ignore_crowd_in_semantic: bool = False
    num_workers: int = 2


@dataclass(frozen=True)
class SolverConfig:
    """Optimisation (detectron2 ``SOLVER.*``; ``batch_size`` is the global batch
    ``IMS_PER_BATCH``, split evenly over the processes)."""

    optimizer: str = "adam"
    base_lr: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_scheduler: str = "poly"
    poly_power: float = 0.9
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    warmup_method: str = "linear"
    max_iter: int = 90000
    batch_size: int = 32
    amp: bool = False
    clip_grad_norm: float = 0.0
    sync_bn: bool = True
    seed: int = 0
    checkpoint_period: int = 5000
    keep_checkpoints: int = 0
    log_period: int = 20


@dataclass(frozen=True)
class EvalConfig:
    """Post-processing (detectron2 ``MODEL.PANOPTIC_DEEPLAB.*``) and evaluation.

    ``period``: evaluate on the val split every ``period`` iterations and at the end (0: only
    at the end, -1: never). ``max_images`` 0 evaluates the whole split. ``min_size`` /
    ``max_size`` > 0 resize the test image (short side / long-side cap, detectron2's
    ``INPUT.MIN_SIZE_TEST``/``MAX_SIZE_TEST``); outputs are resized back before
    post-processing.
    """

    period: int = 5000
    batch_size: int = 1
    max_images: int = 0
    stuff_area: int = 2048
    center_threshold: float = 0.1
    nms_kernel: int = 7
    top_k: int = 200
    min_size: int = 0
    max_size: int = 0


@dataclass(frozen=True)
class InitConfig:
    """Weights loaded before training (paths or URLs; empty: none).

    ``backbone_weights`` in ``backbone_format`` (a key of
    ``panseg.models.weights.BACKBONE_MAPS``: ImageNet checkpoints), or ``weights``: a whole
    detectron2 / seed Panoptic-DeepLab checkpoint (``.pkl``/``.pth``).
    """

    backbone_weights: str = ""
    backbone_format: str = ""
    weights: str = ""


@dataclass(frozen=True)
class TrainConfig:
    """The whole training configuration; ``model`` is a ``ModelConfig`` field dict, checked by
    :meth:`panseg.models.ModelConfig.from_dict` when the model is built (keeps this module free
    of torch) and here for unknown keys."""

    model: Mapping[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    init: InitConfig = field(default_factory=InitConfig)

    def to_dict(self) -> dict[str, Any]:
        out = {"model": _plain(dict(self.model))}
        for name in ("data", "solver", "eval", "init"):
            out[name] = _plain(dataclasses.asdict(getattr(self, name)))
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


CHOICES: dict[str, tuple[str, ...]] = {
    "data.augment": ("resize_shortest_edge", "random_scale", "none"),
    "data.target_variant": ("detectron2", "deeplab2"),
    "solver.optimizer": ("adam", "sgd"),
    "solver.lr_scheduler": ("poly", "constant"),
    "solver.warmup_method": ("linear", "constant"),
}
_SECTIONS = {"data": DataConfig, "solver": SolverConfig, "eval": EvalConfig, "init": InitConfig}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(key: str, value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        return _coerce(key, value, next(a for a in args if a is not type(None)), where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        args = typing.get_args(hint)
        if not (len(args) == 2 and args[1] is Ellipsis) and len(value) != len(args):
            raise ConfigError(f"{where}: {key} needs {len(args)} values, got {list(value)!r}")
        return tuple(_coerce(key, v, args[0], where) for v in value)
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint in (int, str, bool):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
    else:
        raise ConfigError(f"{where}: {key} has an unsupported type {hint}")
    raise ConfigError(
        f"{where}: {key} must be {hint.__name__}, got {type(value).__name__} {value!r}"
    )


def _section(name: str, cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: section {name!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(f'{name}.{k}' for k in unknown)}; "
            f"valid keys of {name!r}: {', '.join(sorted(hints))}"
        )
    values = {k: _coerce(f"{name}.{k}", v, hints[k], where) for k, v in data.items()}
    obj = cls(**values)
    for key, choices in CHOICES.items():
        section, attr = key.split(".")
        if section == name and getattr(obj, attr) not in choices:
            raise ConfigError(
                f"{where}: {key} must be one of {', '.join(choices)}, got {getattr(obj, attr)!r}"
            )
    return obj


def _check_model(data: Any, where: str) -> dict[str, Any]:
    """Check the model section with ``ModelConfig.from_dict`` (imports torch, lazily)."""
    from panseg.models.build import ModelConfig

    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: section 'model' must be a mapping, got {data!r}")
    try:
        ModelConfig.from_dict(dict(data))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: model: {exc}") from None
    return _plain(dict(data))


def model_config(cfg: TrainConfig):
    """The :class:`panseg.models.ModelConfig` of ``cfg`` (imports torch)."""
    from panseg.models.build import ModelConfig

    return ModelConfig.from_dict(dict(cfg.model))


def config_from_dict(data: Any, where: str = "config") -> TrainConfig:
    """Strictly build a :class:`TrainConfig` from a nested dict (see the module docstring)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a config is a mapping of sections, got {type(data).__name__}")
    unknown = sorted(set(data) - {"model", *_SECTIONS})
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {unknown}; valid: model, {', '.join(_SECTIONS)}"
        )
    sections = {name: _section(name, cls, data.get(name), where) for name, cls in _SECTIONS.items()}
    cfg = TrainConfig(model=_check_model(data.get("model"), where), **sections)
    validate(cfg, where)
    return cfg


def validate(cfg: TrainConfig, where: str = "config") -> None:
    """Value checks that need more than one field."""
    s, d, e = cfg.solver, cfg.data, cfg.eval
    checks = [
        (s.max_iter >= 1, "solver.max_iter must be >= 1"),
        (s.batch_size >= 1, "solver.batch_size must be >= 1"),
        (s.base_lr > 0, "solver.base_lr must be > 0"),
        (s.warmup_iters >= 0, "solver.warmup_iters must be >= 0"),
        (0 <= s.warmup_factor <= 1, "solver.warmup_factor must be in [0, 1]"),
        (s.clip_grad_norm >= 0, "solver.clip_grad_norm must be >= 0 (0 disables)"),
        (s.checkpoint_period >= 0, "solver.checkpoint_period must be >= 0 (0: only at the end)"),
        (s.log_period >= 1, "solver.log_period must be >= 1"),
        (s.keep_checkpoints >= 0, "solver.keep_checkpoints must be >= 0 (0 keeps all)"),
        (min(d.crop_size) >= 1, "data.crop_size must be positive"),
        (d.sigma >= 1, "data.sigma must be >= 1"),
        (d.num_workers >= 0, "data.num_workers must be >= 0"),
        (0 < d.min_scale <= d.max_scale, "data needs 0 < min_scale <= max_scale"),
        (len(d.short_edges) >= 1, "data.short_edges needs at least one length"),
        (e.period >= -1, "eval.period must be >= -1"),
        (e.batch_size >= 1, "eval.batch_size must be >= 1"),
        (e.nms_kernel >= 1 and e.nms_kernel % 2 == 1, "eval.nms_kernel must be a positive odd"),
        (e.max_images >= 0, "eval.max_images must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{where}: {message}")
    train_size = cfg.model.get("train_size", (512, 1024))
    if train_size is not None and tuple(train_size) != tuple(d.crop_size):
        raise ConfigError(
            f"{where}: model.train_size {list(train_size)} differs from data.crop_size "
            f"{list(d.crop_size)} (the ASPP pooling kernel is crop / stride, as in detectron2)"
        )
    if bool(cfg.init.backbone_weights) != bool(cfg.init.backbone_format):
        raise ConfigError(f"{where}: init.backbone_weights and init.backbone_format go together")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"solver.base_lr=0.01"`` -> (["solver", "base_lr"], 0.01); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".")]
    if len(path) != 2 or not all(path):
        raise ConfigError(f"override {text!r}: the key must be section.key, e.g. solver.base_lr")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None
    return path, value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with ``section.key=value`` overrides applied (checked later)."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (data or {}).items()}
    for text in overrides:
        (section, key), value = parse_override(text)
        current = out.get(section)
        if current is None:
            current = out[section] = {}
        if not isinstance(current, dict):
            raise ConfigError(f"override {text!r}: section {section!r} is not a mapping")
        current[key] = value
    return out


def read_yaml(path: str) -> Any:
    try:
        text = fsio.read_bytes(path).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None


def load_config(path: str | None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read ``path`` (a YAML file, local or URL; None for the defaults), apply overrides and
    check everything strictly."""
    data = read_yaml(path) if path else {}
    overrides = list(overrides)
    where = path or "defaults"
    if overrides:
        where += " (with --set " + " ".join(overrides) + ")"
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a config is a mapping of sections")
    return config_from_dict(apply_overrides(data or {}, overrides), where)
