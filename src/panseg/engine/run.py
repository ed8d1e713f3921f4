"""A run directory: the resolved config, the dataset facts, checkpoints, metrics.

::

    RUN_DIR/config.yaml       the resolved TrainConfig (every key, after --set overrides)
    RUN_DIR/dataset.json      DatasetInfo of the training records
    RUN_DIR/metrics.jsonl     one JSON object per logged step / evaluation
    RUN_DIR/checkpoints/      see panseg.engine.checkpoint
    RUN_DIR/tensorboard/      when tensorboard is installed
"""

from __future__ import annotations

import json
from typing import Any

import torch

from panseg import fsio
from panseg.datasets.info import DatasetInfo
from panseg.engine.checkpoint import last_checkpoint, load_checkpoint
from panseg.engine.config import TrainConfig, load_config, model_config

CONFIG_NAME = "config.yaml"
DATASET_NAME = "dataset.json"
METRICS_NAME = "metrics.jsonl"


def write_run_files(run_dir: str, cfg: TrainConfig, info: DatasetInfo) -> None:
    fsio.makedirs(run_dir)
    fsio.write_bytes_atomic(fsio.join(run_dir, CONFIG_NAME), cfg.to_yaml().encode("utf-8"))
    fsio.write_bytes_atomic(
        fsio.join(run_dir, DATASET_NAME), json.dumps(info.to_dict(), indent=1).encode("utf-8")
    )


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
    path = fsio.join(run_dir, METRICS_NAME)
    if not fsio.exists(path):
        return []
    lines = fsio.read_bytes(path).decode("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load_run(
    run_dir: str, *, checkpoint: str | None = None, device: str = "cpu",
    overrides: list[str] | None = None,
) -> tuple[TrainConfig, DatasetInfo, torch.nn.Module, dict[str, Any]]:
    """The config, dataset facts and trained model (eval mode, on ``device``) of a run.

    ``checkpoint``: a checkpoint path (default: the run's newest). Returns also the
    checkpoint's ``step`` and ``path`` in a dict.
    """
    from panseg.models.build import build_model_from_config

    config_path = fsio.join(run_dir, CONFIG_NAME)
    if not fsio.exists(config_path):
        raise FileNotFoundError(f"{run_dir} is not a panseg run directory (no {CONFIG_NAME})")
    cfg = load_config(config_path, overrides or [])
    info = DatasetInfo.from_dict(json.loads(fsio.read_bytes(fsio.join(run_dir, DATASET_NAME))))
    path = checkpoint or last_checkpoint(run_dir)
    if path is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet (checkpoints/last_checkpoint)")
    state = load_checkpoint(path)
    model = build_model_from_config(model_config(cfg))
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return cfg, info, model, {"step": int(state["step"]), "path": path}
