"""Optimizer and learning-rate schedule built from a :class:`~panseg.engine.config.SolverConfig`.

Schedule: detectron2's ``WarmupPolyLR`` (``projects/Panoptic-DeepLab/panoptic_deeplab/
lr_scheduler.py`` with ``detectron2/solver/lr_scheduler.py`` ``_get_warmup_factor_at_iter``):
at iteration ``i`` (0-based, the number of optimizer steps already taken)

    lr(i) = base_lr · warmup(i) · (1 − i / max_iter) ^ power

with ``warmup(i) = 1`` for ``i >= warmup_iters``, else ``warmup_factor`` ("constant") or
``warmup_factor · (1 − i / warmup_iters) + i / warmup_iters`` ("linear"). ``"constant"``
schedule: ``base_lr · warmup(i)``. detectron2 steps the scheduler once per iteration after
the optimizer, so iteration 0 uses ``lr(0)``; so does :func:`build_scheduler`.

Weight decay (SGD/Adam ``weight_decay``) is applied to conv/linear weights only, not to
normalisation parameters or biases (detectron2's Panoptic-DeepLab configs set all three to 0,
so the published recipes are unaffected).
"""

from __future__ import annotations

import torch
from torch import nn

from panseg.engine.config import SolverConfig


def warmup_factor_at(i: int, *, method: str, warmup_iters: int, warmup_factor: float) -> float:
    """detectron2's ``_get_warmup_factor_at_iter``."""
    if i >= warmup_iters:
        return 1.0
    if method == "constant":
        return warmup_factor
    if method == "linear":
        alpha = i / warmup_iters
        return warmup_factor * (1 - alpha) + alpha
    raise ValueError(f"unknown warmup method {method!r}")


def lr_factor(i: int, solver: SolverConfig) -> float:
    """Multiplier of ``base_lr`` at iteration ``i`` (see the module docstring)."""
    w = warmup_factor_at(
        i, method=solver.warmup_method, warmup_iters=solver.warmup_iters,
        warmup_factor=solver.warmup_factor,
    )
    if solver.lr_scheduler == "constant":
        return w
    if solver.lr_scheduler == "poly":
        return w * max(0.0, 1.0 - i / solver.max_iter) ** solver.poly_power
    raise ValueError(f"unknown lr_scheduler {solver.lr_scheduler!r}")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights of convs/linears (decayed) and everything else (not decayed)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_norm = isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm,
                                          nn.LayerNorm))
            (no_decay if is_norm or name == "bias" else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, solver: SolverConfig) -> torch.optim.Optimizer:
    """Adam (betas) or SGD (momentum) at ``base_lr``."""
    groups = param_groups(model, solver.weight_decay)
    if solver.optimizer == "adam":
        return torch.optim.Adam(groups, lr=solver.base_lr, betas=tuple(solver.betas))
    if solver.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=solver.base_lr, momentum=solver.momentum)
    raise ValueError(f"unknown optimizer {solver.optimizer!r}; expected adam or sgd")


def build_scheduler(
    optimizer: torch.optim.Optimizer, solver: SolverConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`lr_factor`; call ``step()`` after each optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: lr_factor(i, solver))
