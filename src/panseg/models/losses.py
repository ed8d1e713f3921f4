"""Panoptic-DeepLab training losses, normalised as detectron2 does.

Reference behaviour (detectron2):

* semantic, ``projects/DeepLab/deeplab/loss.py`` ``DeepLabCE``: per-pixel cross entropy with
  ``ignore_index`` (ignored pixels contribute 0 but stay in the count), multiplied by the
  per-pixel weights, flattened over the **whole batch**; with ``top_k == 1.0`` the mean of all
  N·H·W values, else the mean of the ``int(top_k · N·H·W)`` largest values (0.2 for Cityscapes,
  1.0 in detectron2's COCO config);
* center, ``panoptic_seg.py`` ``center_losses``: Σ (p − t)² · w / Σ w, and 0 when Σ w = 0;
* offset, ``offset_losses``: Σ |p − t| · w / Σ w with w of shape N×1×H×W broadcast over both
  channels (so the numerator sums |dy| + |dx| while the denominator counts each pixel once);
* total = 1.0 · semantic + 200 · center + 0.01 · offset (``P/config.py``).

Each fast function has a slow float64 NumPy reference beside it (``reference_*``), the test
oracle. One deliberate difference: when ``int(top_k · N·H·W)`` is 0 (fewer than 5 pixels at
top_k 0.2) detectron2 averages an empty tensor and returns NaN; here at least one pixel is kept.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _as_n1hw(w: torch.Tensor, name: str, n: int, h: int, wd: int) -> torch.Tensor:
    if w.dim() == 3:
        w = w.unsqueeze(1)
    if tuple(w.shape) != (n, 1, h, wd):
        raise ValueError(f"{name} must be N×H×W or N×1×H×W = {(n, h, wd)}, got {tuple(w.shape)}")
    return w


def deeplab_ce_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    ignore_label: int = 255,
    top_k: float = 0.2,
) -> torch.Tensor:
    """Hard-pixel-mining cross entropy.

    Args:
        logits: N×C×H×W float.
        labels: N×H×W int64 in [0, C) or ``ignore_label``.
        weights: N×H×W float per-pixel weights (detectron2's ``sem_seg_weights``) or None.
        top_k: fraction in (0, 1] of the hardest pixels to average.

    Returns: scalar tensor.
    """
    if not 0.0 < top_k <= 1.0:
        raise ValueError(f"top_k must be in (0, 1], got {top_k}")
    if labels.dim() != 3 or logits.dim() != 4 or labels.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"labels must be N×H×W matching logits N×C×H×W, got {tuple(labels.shape)} "
            f"and {tuple(logits.shape)}"
        )
    losses = F.cross_entropy(logits, labels.long(), ignore_index=ignore_label, reduction="none")
    if weights is not None:
        losses = losses * weights
    losses = losses.reshape(-1)
    if top_k == 1.0:
        return losses.mean()
    k = max(1, int(top_k * losses.numel()))
    return torch.topk(losses, k).values.mean()


def center_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted MSE of N×1×H×W center heatmaps; ``weights`` N×H×W or N×1×H×W (≥ 0)."""
    n, _, h, w = pred.shape
    wt = _as_n1hw(weights, "center_weights", n, h, w)
    if tuple(target.shape) != tuple(pred.shape):
        target = _as_n1hw(target, "center", n, h, w)
    loss = (pred - target) ** 2 * wt
    total = wt.sum()
    return loss.sum() / total if total > 0 else loss.sum() * 0


def offset_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted L1 of N×2×H×W offsets (dy, dx) in pixels; ``weights`` N×H×W or N×1×H×W."""
    n, _, h, w = pred.shape
    wt = _as_n1hw(weights, "offset_weights", n, h, w)
    if tuple(target.shape) != tuple(pred.shape):
        raise ValueError(f"offset target must be {tuple(pred.shape)}, got {tuple(target.shape)}")
    loss = (pred - target).abs() * wt
    total = wt.sum()
    return loss.sum() / total if total > 0 else loss.sum() * 0


def panoptic_deeplab_losses(
    outputs: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    *,
    ignore_label: int = 255,
    top_k: float = 0.2,
    semantic_weight: float = 1.0,
    center_weight: float = 200.0,
    offset_weight: float = 0.01,
) -> dict[str, torch.Tensor]:
    """detectron2's three weighted losses, keys ``loss_sem_seg``, ``loss_center``,
    ``loss_offset``. ``outputs``: semantic N×C×H×W, center N×1×H×W, offset N×2×H×W at input
    resolution; ``targets``: semantic, semantic_weights, center, center_weights, offset,
    offset_weights (see :class:`panseg.models.panoptic_deeplab.PanopticDeepLab`)."""
    missing = [
        k for k in ("semantic", "center", "center_weights", "offset", "offset_weights")
        if k not in targets
    ]
    if missing:
        raise KeyError(f"targets lack {missing}")
    return {
        "loss_sem_seg": semantic_weight * deeplab_ce_loss(
            outputs["semantic"], targets["semantic"], targets.get("semantic_weights"),
            ignore_label=ignore_label, top_k=top_k,
        ),
        "loss_center": center_weight * center_loss(
            outputs["center"], targets["center"], targets["center_weights"]
        ),
        "loss_offset": offset_weight * offset_loss(
            outputs["offset"], targets["offset"], targets["offset_weights"]
        ),
    }


# --- slow references (test oracles) -------------------------------------------------------


def reference_deeplab_ce_loss(
    logits: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, ignore_label: int,
    top_k: float,
) -> float:
    """Pixel-by-pixel loop: −log softmax at the label, 0 for ignored pixels, × weight; sort
    all values descending and average the first max(1, int(top_k · count))."""
    n, c, h, w = logits.shape
    values = []
    for b in range(n):
        for y in range(h):
            for x in range(w):
                lab = int(labels[b, y, x])
                if lab == ignore_label:
                    values.append(0.0)
                    continue
                z = logits[b, :, y, x].astype(np.float64)
                lse = np.log(np.sum(np.exp(z - z.max()))) + z.max()
                v = lse - z[lab]
                if weights is not None:
                    v *= float(weights[b, y, x])
                values.append(v)
    values.sort(reverse=True)
    k = len(values) if top_k == 1.0 else max(1, int(top_k * len(values)))
    return float(np.mean(values[:k]))


def reference_weighted_loss(
    pred: np.ndarray, target: np.ndarray, weights: np.ndarray, power: int
) -> float:
    """Σ over every element of |p − t|^power · w(pixel) / Σ over pixels of w (0 if Σ w = 0)."""
    n, ch, h, w = pred.shape
    wt = weights.reshape(n, h, w).astype(np.float64)
    num = 0.0
    for b in range(n):
        for k in range(ch):
            for y in range(h):
                for x in range(w):
                    d = abs(float(pred[b, k, y, x]) - float(target[b, k, y, x]))
                    num += d**power * wt[b, y, x]
    den = float(wt.sum())
    return num / den if den > 0 else 0.0
