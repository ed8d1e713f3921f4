"""Losses: hand-derived values, and agreement with the slow references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from panseg.models.losses import (
    center_loss,
    deeplab_ce_loss,
    offset_loss,
    panoptic_deeplab_losses,
    reference_deeplab_ce_loss,
    reference_weighted_loss,
)


def test_ce_hand_derived_top_k_over_whole_batch():
    # two classes, logits (0, 0) everywhere: every labelled pixel costs log 2
    logits = torch.zeros(2, 2, 1, 5)
    labels = torch.tensor([[[0, 1, 255, 0, 1]], [[255, 255, 255, 1, 0]]])
    weights = torch.tensor([[[1.0, 3.0, 1.0, 1.0, 1.0]], [[1.0, 1.0, 1.0, 1.0, 2.0]]])
    ln2 = math.log(2)
    # per-pixel losses: [ln2, 3ln2, 0, ln2, ln2, 0, 0, 0, ln2, 2ln2]; N·H·W = 10
    full = deeplab_ce_loss(logits, labels, weights, top_k=1.0)
    assert full.item() == pytest.approx(9 * ln2 / 10)  # ignored pixels stay in the count
    top = deeplab_ce_loss(logits, labels, weights, top_k=0.2)  # k = int(0.2·10) = 2
    assert top.item() == pytest.approx((3 * ln2 + 2 * ln2) / 2)
    top3 = deeplab_ce_loss(logits, labels, None, top_k=0.3)  # k = 3 of six ln2 and four 0
    assert top3.item() == pytest.approx(ln2)


def test_ce_all_ignored_and_tiny_inputs():
    logits = torch.randn(1, 3, 2, 2)
    labels = torch.full((1, 2, 2), 255)
    assert deeplab_ce_loss(logits, labels).item() == 0.0
    # int(0.2·4) = 0: detectron2 gives NaN, panseg keeps the hardest pixel
    labels = torch.tensor([[[0, 1], [2, 255]]])
    loss = deeplab_ce_loss(logits, labels, top_k=0.2)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="top_k"):
        deeplab_ce_loss(logits, labels, top_k=0.0)
    with pytest.raises(ValueError, match="N×H×W"):
        deeplab_ce_loss(logits, labels[0])


@pytest.mark.parametrize("top_k", [1.0, 0.2, 0.55])
def test_ce_agrees_with_reference(top_k):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 5, 7, generator=g) * 3
    labels = torch.randint(0, 4, (2, 5, 7), generator=g)
    labels[0, :2] = 255
    weights = torch.rand(2, 5, 7, generator=g) * 3
    got = deeplab_ce_loss(logits, labels, weights, top_k=top_k).item()
    ref = reference_deeplab_ce_loss(logits.numpy(), labels.numpy(), weights.numpy(), 255, top_k)
    assert got == pytest.approx(ref, rel=1e-5)


def test_center_and_offset_hand_derived():
    pred = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 2.0], [0.0, 0.5]]]])
    w = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    # (1 + 0 + 0.25) / 3
    assert center_loss(pred, target, w).item() == pytest.approx(1.25 / 3)
    assert center_loss(pred, target, torch.zeros(1, 2, 2)).item() == 0.0
    off_pred = torch.zeros(1, 2, 2, 2)
    off_t = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[2.0, 2.0], [2.0, 2.0]]]])
    # each weighted pixel contributes |dy| + |dx| = 3, denominator counts pixels once
    assert offset_loss(off_pred, off_t, w.unsqueeze(1)).item() == pytest.approx(3.0)
    assert offset_loss(off_pred, off_t, torch.zeros(1, 2, 2)).item() == 0.0


def test_center_offset_agree_with_reference_and_total_weights():
    g = torch.Generator().manual_seed(5)
    n, h, w = 2, 6, 5
    out = {
        "semantic": torch.randn(n, 3, h, w, generator=g),
        "center": torch.rand(n, 1, h, w, generator=g),
        "offset": torch.randn(n, 2, h, w, generator=g) * 5,
    }
    tgt = {
        "semantic": torch.randint(0, 3, (n, h, w), generator=g),
        "semantic_weights": torch.ones(n, h, w),
        "center": torch.rand(n, 1, h, w, generator=g),
        "center_weights": (torch.rand(n, h, w, generator=g) > 0.3).float(),
        "offset": torch.randn(n, 2, h, w, generator=g) * 5,
        "offset_weights": (torch.rand(n, h, w, generator=g) > 0.5).float(),
    }
    losses = panoptic_deeplab_losses(out, tgt)
    assert set(losses) == {"loss_sem_seg", "loss_center", "loss_offset"}
    c_ref = reference_weighted_loss(
        out["center"].numpy(), tgt["center"].numpy(), tgt["center_weights"].numpy(), 2
    )
    o_ref = reference_weighted_loss(
        out["offset"].numpy(), tgt["offset"].numpy(), tgt["offset_weights"].numpy(), 1
    )
    assert losses["loss_center"].item() == pytest.approx(200 * c_ref, rel=1e-5)
    assert losses["loss_offset"].item() == pytest.approx(0.01 * o_ref, rel=1e-5)
    s_ref = reference_deeplab_ce_loss(
        out["semantic"].numpy(), tgt["semantic"].numpy(), None, 255, 0.2
    )
    assert losses["loss_sem_seg"].item() == pytest.approx(s_ref, rel=1e-5)
    with pytest.raises(KeyError, match="offset_weights"):
        panoptic_deeplab_losses(out, {k: v for k, v in tgt.items() if k != "offset_weights"})
    with pytest.raises(ValueError, match="center_weights"):
        center_loss(out["center"], tgt["center"], torch.ones(n, h + 1, w))
    assert np.isfinite(losses["loss_offset"].item())
