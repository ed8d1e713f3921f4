"""Strict training configs: unknown keys and wrong types are errors, overrides are typed, every
shipped config loads and equals the model presets of detectron2 / the seed."""

import glob
import os

import pytest

from panseg.engine.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    parse_override,
)

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "src", "panseg", "configs")


def test_defaults_are_detectron2_cityscapes_recipe():
    cfg = load_config(None)
    assert cfg.solver.optimizer == "adam" and cfg.solver.base_lr == 0.001
    assert cfg.solver.max_iter == 90000 and cfg.solver.batch_size == 32
    assert (cfg.solver.warmup_iters, cfg.solver.warmup_factor) == (1000, 0.001)
    assert cfg.data.crop_size == (512, 1024) and cfg.eval.nms_kernel == 7


@pytest.mark.parametrize(
    "data, message",
    [
        ({"solver": {"base_lrr": 0.1}}, "solver.base_lrr"),
        ({"solvers": {}}, "unknown section"),
        ({"solver": {"max_iter": "many"}}, "solver.max_iter must be int"),
        ({"solver": {"max_iter": 1.5}}, "solver.max_iter must be int"),
        ({"solver": {"amp": 1}}, "solver.amp must be bool"),
        ({"solver": {"optimizer": "rmsprop"}}, "solver.optimizer must be one of"),
        ({"data": {"crop_size": [1, 2, 3]}}, "data.crop_size needs 2 values"),
        ({"data": {"crop_size": 5}}, "data.crop_size must be a list"),
        ({"model": {"backbon": "r52"}}, "backbon"),
        ({"model": {"num_classes": "19"}}, "num_classes"),
        ({"eval": {"nms_kernel": 4}}, "nms_kernel"),
        ({"data": {"crop_size": [64, 64]}}, "model.train_size"),
        ({"init": {"backbone_weights": "x.pkl"}}, "go together"),
        ([1, 2], "mapping"),
    ],
)
def test_strict_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data, "test.yaml")


def test_overrides_are_parsed_and_typed():
    assert parse_override("solver.base_lr=0.01") == (["solver", "base_lr"], 0.01)
    assert parse_override("data.crop_size=[64, 96]") == (["data", "crop_size"], [64, 96])
    data = apply_overrides({}, ["solver.base_lr=1e-3", "solver.max_iter=7", "solver.amp=true",
                                "model.train_size=[64,96]", "data.crop_size=[64,96]"])
    cfg = config_from_dict(data)
    assert cfg.solver.base_lr == 0.001 and isinstance(cfg.solver.base_lr, float)
    assert cfg.solver.max_iter == 7 and cfg.solver.amp is True
    assert cfg.data.crop_size == (64, 96)
    with pytest.raises(ConfigError, match="section.key"):
        parse_override("base_lr=1")
    with pytest.raises(ConfigError, match="solver.nope"):
        config_from_dict(apply_overrides({}, ["solver.nope=1"]))


def test_int_is_accepted_for_float_but_not_bool():
    assert config_from_dict({"solver": {"base_lr": 1}}).solver.base_lr == 1.0
    with pytest.raises(ConfigError, match="base_lr must be float"):
        config_from_dict({"solver": {"base_lr": True}})


def test_yaml_round_trip(tmp_path):
    cfg = load_config(os.path.join(CONFIGS, "coco_x65_dsconv.yaml"), ["solver.max_iter=5"])
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(str(path))
    assert again == cfg and isinstance(again, TrainConfig)


SEED_TABLES = {
    "cityscapes_r52": ("cityscapes", "r52", False),
    "cityscapes_x65": ("cityscapes", "xception65", False),
    "cityscapes_x65_dsconv": ("cityscapes", "xception65", True),
    "cityscapes_h48": ("cityscapes", "hrnet_w48", False),
    "cityscapes_h48_dsconv": ("cityscapes", "hrnet_w48", True),
    "coco_x65_dsconv": ("coco", "xception65", True),
    "coco_h48_dsconv": ("coco", "hrnet_w48", True),
}


def test_every_shipped_config_is_listed():
    names = {os.path.basename(p)[:-5] for p in glob.glob(os.path.join(CONFIGS, "*.yaml"))}
    assert names == set(SEED_TABLES) | {"demo_synthetic"}


@pytest.mark.parametrize("name", sorted(SEED_TABLES))
def test_seed_configs_have_the_published_hyper_parameters(name):
    from panseg.engine.config import model_config
    from panseg.models.build import ModelConfig

    cfg = load_config(os.path.join(CONFIGS, f"{name}.yaml"))
    dataset, backbone, dsconv = SEED_TABLES[name]
    if dataset == "cityscapes":
        expected = ModelConfig.cityscapes(backbone, use_dsconv=dsconv)
        assert (cfg.solver.base_lr, cfg.solver.max_iter, cfg.solver.batch_size) == (
            0.001, 90000, 32)
        assert cfg.data.crop_size == (512, 1024) and cfg.data.sigma == 10
        assert (cfg.eval.stuff_area, cfg.eval.nms_kernel) == (2048, 7)
    else:  # DeepLab2 COCO records: 134 logits, 0 = void
        expected = ModelConfig.coco(backbone, use_dsconv=True, num_classes=134, ignore_label=0)
        assert (cfg.solver.base_lr, cfg.solver.max_iter, cfg.solver.batch_size) == (
            0.0005, 200000, 64)
        assert cfg.data.crop_size == (640, 640) and cfg.data.sigma == 8
        assert cfg.data.max_size == 960 and cfg.data.short_edges[0] == 320
        assert (cfg.eval.stuff_area, cfg.eval.nms_kernel, cfg.eval.min_size) == (4096, 41, 640)
    assert model_config(cfg) == expected
    assert cfg.solver.optimizer == "adam" and cfg.solver.weight_decay == 0.0
    assert (cfg.solver.poly_power, cfg.solver.warmup_iters) == (0.9, 1000)
    assert cfg.solver.sync_bn


def test_demo_config_builds_a_small_model():
    from panseg.engine.config import model_config
    from panseg.models.build import build_model_from_config

    cfg = load_config(os.path.join(CONFIGS, "demo_synthetic.yaml"))
    model = build_model_from_config(model_config(cfg))
    assert sum(p.numel() for p in model.parameters()) < 3_000_000
