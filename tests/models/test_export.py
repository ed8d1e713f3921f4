"""TorchScript and ONNX (opset 17) exports agree with eager mode."""

from __future__ import annotations

import onnx
import pytest
import torch

from panseg.models import build_model
from panseg.models.export import export_onnx, export_torchscript, max_abs_diff, run_onnx


def tiny(use_dsconv: bool, backbone: str = "resnet18", **kw):
    torch.manual_seed(0)
    model = build_model(
        backbone=backbone, num_classes=4, use_dsconv=use_dsconv, width_divisor=8,
        aspp_channels=16, sem_decoder_channels=16, sem_head_channels=16,
        ins_decoder_channels=8, ins_head_channels=8, sem_project_channels=(4, 8),
        ins_project_channels=(4, 8), **kw,
    )
    # non-trivial batch-norm statistics and predictor weights
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        for head in (model.sem_head, model.center_head, model.offset_head):
            head.predictor.weight.normal_(0, 0.1)
    return model.eval()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_matches_eager(tmp_path):
    model = tiny(use_dsconv=False, size_divisibility=32)
    example = torch.randn(2, 3, 33, 49)
    path = export_torchscript(model, example, tmp_path / "m.pt")
    loaded = torch.jit.load(str(path))
    x = torch.randn(2, 3, 33, 49)  # another input of the traced size
    with torch.no_grad():
        eager = model(x)
        diffs = max_abs_diff(eager, loaded(x))
    assert max(diffs.values()) < 1e-5, diffs
    assert not model.training
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind


def test_onnx_opset17_matches_eager_with_dynamic_batch(tmp_path):
    model = tiny(use_dsconv=True, train_size=(64, 64))
    example = torch.randn(2, 3, 33, 49)
    path = export_onnx(model, example, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    assert any(o.domain in ("", "ai.onnx") and o.version == 17 for o in proto.opset_import)
    assert [o.name for o in proto.graph.output] == ["semantic", "center", "offset"]
    assert not model.training  # the exporter must not leave the model in training mode
    for n in (1, 3):
        x = torch.randn(n, 3, 33, 49)
        with torch.no_grad():
            eager = model(x)
        diffs = max_abs_diff(eager, run_onnx(path, x))
        assert max(diffs.values()) < 1e-4, (n, diffs)
