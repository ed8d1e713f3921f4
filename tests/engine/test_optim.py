"""WarmupPolyLR as detectron2 computes it, hand-derived values; param groups; one step moves."""

import pytest
import torch
from torch import nn

from panseg.engine.config import SolverConfig
from panseg.engine.optim import (
    build_optimizer,
    build_scheduler,
    lr_factor,
    param_groups,
    warmup_factor_at,
)


def test_linear_warmup_factor():
    # detectron2 _get_warmup_factor_at_iter: f * (1 - i/n) + i/n, 1 from n on
    assert warmup_factor_at(0, method="linear", warmup_iters=10, warmup_factor=0.001) == 0.001
    assert warmup_factor_at(5, method="linear", warmup_iters=10, warmup_factor=0.001) == (
        pytest.approx(0.001 * 0.5 + 0.5))
    assert warmup_factor_at(10, method="linear", warmup_iters=10, warmup_factor=0.001) == 1.0
    assert warmup_factor_at(3, method="constant", warmup_iters=10, warmup_factor=0.25) == 0.25


def test_poly_schedule_values():
    s = SolverConfig(max_iter=100, warmup_iters=10, warmup_factor=0.1, poly_power=0.9)
    assert lr_factor(0, s) == pytest.approx(0.1)
    assert lr_factor(5, s) == pytest.approx((0.1 * 0.5 + 0.5) * 0.95**0.9)
    assert lr_factor(50, s) == pytest.approx(0.5**0.9)
    assert lr_factor(100, s) == 0.0
    const = SolverConfig(lr_scheduler="constant", warmup_iters=0)
    assert lr_factor(1234, const) == 1.0


def test_scheduler_follows_lr_factor():
    s = SolverConfig(max_iter=20, warmup_iters=5, base_lr=0.01)
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, s)
    sched = build_scheduler(opt, s)
    for i in range(20):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * lr_factor(i, s))
        opt.step()
        sched.step()


def test_no_weight_decay_on_norm_and_bias():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    decay, no_decay = param_groups(model, 1e-4)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3, 3, 3])]
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_one_step_changes_the_weights(name):
    from panseg.models.build import build_model

    torch.manual_seed(0)
    model = build_model(backbone="resnet18", num_classes=3, use_dsconv=False, width_divisor=8,
                        train_size=(32, 32), aspp_channels=16, sem_decoder_channels=16,
                        sem_head_channels=16, ins_decoder_channels=16, ins_head_channels=8)
    s = SolverConfig(optimizer=name, base_lr=0.01, warmup_iters=0, max_iter=10)
    opt = build_optimizer(model, s)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(2, 3, 32, 32)
    targets = {
        "semantic": torch.randint(0, 3, (2, 32, 32)), "semantic_weights": torch.ones(2, 32, 32),
        "center": torch.rand(2, 1, 32, 32), "center_weights": torch.ones(2, 32, 32),
        "offset": torch.randn(2, 2, 32, 32), "offset_weights": torch.ones(2, 32, 32),
    }
    loss = sum(model(images, targets).values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    weights = [k for k, p in model.named_parameters()]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    moved = [k for k in weights if k in changed]
    # every tensor moves with Adam; with SGD a few tiny offset-head gradients may round away
    assert len(moved) >= (len(weights) if name == "adam" else 0.9 * len(weights))
    assert any("running_mean" in k for k in changed)
