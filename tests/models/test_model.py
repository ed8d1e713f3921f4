"""PanopticDeepLab: outputs, detectron2 resizing rules, ASPP pooling, config, training step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from panseg.models import ModelConfig, PanopticDeepLab, build_model, build_model_from_config
from panseg.models.aspp import ASPP, image_pool
from panseg.models.backbones.resnet import ResNet
from panseg.models.layers import ConvNormAct, DepthwiseSeparableConv2d

TINY = dict(
    aspp_channels=16, sem_decoder_channels=16, sem_head_channels=16, ins_decoder_channels=8,
    ins_head_channels=8, sem_project_channels=(4, 8), ins_project_channels=(4, 8),
)


def tiny_model(use_dsconv: bool = False, **kw) -> PanopticDeepLab:
    return build_model(
        backbone="resnet18", num_classes=5, use_dsconv=use_dsconv, width_divisor=8,
        **{**TINY, **kw},
    )


@pytest.mark.parametrize("use_dsconv", [False, True])
def test_eval_outputs_at_input_size(use_dsconv):
    model = tiny_model(use_dsconv).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 65, 97))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "semantic": (2, 5, 65, 97), "center": (2, 1, 65, 97), "offset": (2, 2, 65, 97),
    }


def test_offsets_are_scaled_by_common_stride():
    model = tiny_model().eval()
    with torch.no_grad():
        model.offset_head.predictor.weight.zero_()
        model.offset_head.predictor.bias.copy_(torch.tensor([1.5, -2.0]))
        out = model(torch.randn(1, 3, 64, 64))
    # a constant (1.5, -2) map at stride 4 stays constant when resized and is ×4
    assert torch.allclose(out["offset"][0, 0], torch.full((64, 64), 6.0))
    assert torch.allclose(out["offset"][0, 1], torch.full((64, 64), -8.0))


def test_resize_matches_detectron2_scale_then_crop():
    model = tiny_model(size_divisibility=32).eval()
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        out = model(x)
        padded = F.pad(x, (0, 26, 0, 14))  # detectron2 pads to 64×96 with zeros
        feats = model.backbone(padded)
        sem = model.sem_head(model.sem_decoder(feats))
        ref = F.interpolate(sem, scale_factor=4, mode="bilinear", align_corners=False)
    assert torch.allclose(out["semantic"], ref[:, :, :50, :70], atol=1e-6)


def test_center_head_never_dsconv_and_dsconv_placement():
    model = tiny_model(use_dsconv=True)
    assert isinstance(model.sem_head.tower, DepthwiseSeparableConv2d)
    assert isinstance(model.offset_head.tower, DepthwiseSeparableConv2d)
    assert isinstance(model.center_head.tower, torch.nn.Sequential)
    assert all(isinstance(m, DepthwiseSeparableConv2d) for m in model.sem_decoder.aspp.atrous)
    assert model.sem_head.tower.depthwise.conv.kernel_size == (5, 5)
    regular = tiny_model(use_dsconv=False)
    assert all(isinstance(m, ConvNormAct) for m in regular.ins_decoder.aspp.atrous)
    assert [m.conv.dilation for m in regular.ins_decoder.aspp.atrous] == [(6, 6), (12, 12), (18, 18)]
    assert regular.sem_decoder.aspp.pool_conv.bias is not None
    # detectron2 wiring: res3 -> 64 then res2 -> 32 for both decoders (defaults)
    full = ModelConfig()
    assert full.sem_project_channels == (32, 64) and full.ins_project_channels == (32, 64)


def test_image_pool_equals_detectron2_where_it_runs_and_works_elsewhere():
    x = torch.randn(2, 3, 8, 12)
    assert torch.allclose(image_pool(x, (4, 6)), F.avg_pool2d(x, (4, 6), stride=1))
    assert torch.allclose(image_pool(x, None), x.mean(dim=(2, 3), keepdim=True))
    # feature smaller than the kernel: AvgPool2d raises, panseg pools the whole axis
    small = torch.randn(1, 3, 3, 5)
    with pytest.raises(RuntimeError):
        torch.nn.AvgPool2d((32, 64), stride=1)(small)
    assert torch.allclose(image_pool(small, (32, 64)), small.mean(dim=(2, 3), keepdim=True))
    aspp = ASPP(3, 4, pool_kernel_size=(32, 64)).eval()
    for h, w in ((3, 5), (33, 65), (7, 130)):
        assert aspp(torch.randn(1, 3, h, w)).shape == (1, 4, h, w)
    with pytest.raises(ValueError, match="3 dilations"):
        ASPP(3, 4, (6, 12))


def test_training_step_returns_losses_and_gradients():
    torch.manual_seed(0)
    model = tiny_model().train()
    n, h, w = 2, 33, 41
    targets = {
        "semantic": torch.randint(0, 5, (n, h, w)),
        "semantic_weights": torch.ones(n, h, w),
        "center": torch.rand(n, 1, h, w),
        "center_weights": torch.ones(n, h, w),
        "offset": torch.randn(n, 2, h, w),
        "offset_weights": torch.ones(n, 1, h, w),
    }
    losses = model(torch.randn(n, 3, h, w), targets)
    assert set(losses) == {"loss_sem_seg", "loss_center", "loss_offset"}
    total = sum(losses.values())
    total.backward()
    assert model.center_head.predictor.weight.grad.abs().sum() > 0
    assert model.backbone.stem.conv1.conv.weight.grad.abs().sum() > 0


def test_bad_inputs_are_named():
    model = tiny_model().eval()
    with pytest.raises(ValueError, match="N×3×H×W"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="num_classes"):
        build_model(backbone="resnet18", num_classes=0, use_dsconv=False, width_divisor=8)
    with pytest.raises(ValueError, match="divisible"):
        tiny_model(train_size=(500, 1000))


def test_normalize_convention():
    model = tiny_model()
    img = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(model.normalize(img), torch.zeros(1, 3, 2, 2), atol=1e-6)
    x65 = build_model_from_config(ModelConfig.cityscapes("xception65", width_divisor=32, **TINY))
    assert x65.pixel_mean == (128.0, 128.0, 128.0) and x65.pixel_std == (128.0, 128.0, 128.0)


def test_config_presets_equal_detectron2():
    cs = ModelConfig.cityscapes()
    assert (cs.backbone, cs.num_classes, cs.output_stride, cs.multi_grid) == ("r52", 19, 16, (1, 2, 4))
    assert (cs.aspp_dilations, cs.aspp_dropout, cs.loss_top_k) == ((6, 12, 18), 0.1, 0.2)
    assert (cs.sem_decoder_channels, cs.sem_head_channels) == (256, 256)
    assert (cs.ins_decoder_channels, cs.ins_head_channels) == (128, 32)
    assert (cs.center_loss_weight, cs.offset_loss_weight, cs.train_size) == (200.0, 0.01, (512, 1024))
    coco = ModelConfig.coco()
    assert (coco.num_classes, coco.loss_top_k, coco.use_dsconv) == (133, 1.0, True)
    assert (coco.size_divisibility, coco.train_size) == (640, (640, 640))
    h48 = ModelConfig.cityscapes("hrnet_w48")
    assert h48.in_features == ("res2", "res3", "res4", "res5")
    assert h48.sem_project_channels == (32, 64, 128) and h48.aspp_dilations == (3, 6, 9)
    model = build_model_from_config(ModelConfig.cityscapes("hrnet_w48", width_divisor=6, **TINY
                                                           | {"sem_project_channels": (4, 4, 4),
                                                              "ins_project_channels": (4, 4, 4)}))
    assert model.sem_decoder.aspp.pool_kernel_size == (16, 32)  # 512×1024 crop / 32
    assert model.sem_decoder.low_features == ["res2", "res3", "res4"]


def test_config_strict_loading():
    cfg = ModelConfig.from_dict({"backbone": "resnet18", "aspp_dilations": [3, 6, 9],
                                 "train_size": None, "aspp_dropout": 0})
    assert cfg.aspp_dilations == (3, 6, 9) and cfg.train_size is None and cfg.aspp_dropout == 0.0
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"backbon": "r52"})
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig.from_dict({"num_classes": "19"})
    with pytest.raises(ValueError, match="use_dsconv"):
        ModelConfig.from_dict({"use_dsconv": 1})
    with pytest.raises(ValueError, match="train_size"):
        ModelConfig.from_dict({"train_size": [512]})


def test_custom_backbone_module_is_accepted():
    net = ResNet(18, width=8)
    model = build_model(backbone=net, num_classes=3, use_dsconv=False, train_size=None, **TINY)
    assert model.backbone is net
    assert model.sem_decoder.aspp.pool_kernel_size is None
