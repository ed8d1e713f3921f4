"""panseg's target generator feeds the model's losses, and a few steps fit one batch on CPU."""

from __future__ import annotations

import numpy as np
import torch

from panseg.data.targets import PanopticTargetGenerator
from panseg.models import build_model


def panoptic_map(h: int, w: int, shift: int) -> np.ndarray:
    pan = np.zeros((h, w), dtype=np.int64)  # stuff class 0
    pan[:, w // 2 :] = 1 * 1000  # stuff class 1
    pan[5 + shift : 17 + shift, 4:20] = 2 * 1000 + 1  # two things of class 2
    pan[22:34, 30 + shift : 48 + shift] = 2 * 1000 + 2
    return pan


def test_targets_drive_losses_and_training_fits_a_batch():
    gen = PanopticTargetGenerator(ignore_label=255, label_divisor=1000, thing_ids=[2], sigma=3)
    samples = [gen(panoptic_map(40, 56, s)) for s in (0, 3)]
    targets = {k: torch.stack([torch.from_numpy(np.asarray(s[k])) for s in samples])
               for k in samples[0] if k != "center_points"}
    assert targets["center"].shape == (2, 1, 40, 56)
    torch.manual_seed(0)
    images = torch.randn(2, 3, 40, 56)
    model = build_model(
        backbone="resnet18", num_classes=3, use_dsconv=False, width_divisor=8,
        aspp_channels=16, sem_decoder_channels=16, sem_head_channels=16,
        ins_decoder_channels=8, ins_head_channels=8, sem_project_channels=(4, 8),
        ins_project_channels=(4, 8), train_size=None, aspp_dropout=0.0,
    ).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(15):
        losses = model(images, targets)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    for key in ("loss_sem_seg", "loss_center", "loss_offset"):
        assert history[-1][key] < 0.7 * history[0][key], (key, history[0][key], history[-1][key])
