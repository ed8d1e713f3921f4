"""Training runs: run-directory files, exact resume, evaluation and prediction from a run."""

import json
import os

import numpy as np
import pytest
import torch

from panseg.engine.checkpoint import last_checkpoint, load_checkpoint
from panseg.engine.trainer import train


def _flat(state, prefix=""):
    out = {}
    for k, v in state.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, (list, tuple)) and v and isinstance(v[0], dict):
            for i, item in enumerate(v):
                out.update(_flat(item, f"{key}.{i}."))
        else:
            out[key] = v
    return out


def _assert_same(a, b):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if isinstance(fa[k], torch.Tensor):
            assert torch.equal(fa[k], fb[k]), k
        else:
            assert fa[k] == fb[k], k


def test_resumed_run_ends_in_the_same_state(tiny_config, tmp_path):
    cfg = tiny_config("solver.max_iter=4", "solver.clip_grad_norm=5.0")
    whole = train(cfg, str(tmp_path / "whole"), progress=False, log=lambda m: None)
    first = train(cfg, str(tmp_path / "split"), progress=False, log=lambda m: None, stop_after=2)
    assert first["step"] == 2 and first["eval"] is None
    rest = train(cfg, str(tmp_path / "split"), resume=True, progress=False, log=lambda m: None)
    assert rest["step"] == 4
    a = load_checkpoint(whole["checkpoint"])
    b = load_checkpoint(rest["checkpoint"])
    for key in ("model", "optimizer", "scheduler", "step", "samples", "rng"):
        _assert_same({key: a[key]}, {key: b[key]})
    assert whole["eval"] == rest["eval"]
    # the metrics of the split run are those of the whole run (times aside)
    def lines(run):
        rows = [json.loads(x) for x in open(tmp_path / run / "metrics.jsonl")]
        return [{k: v for k, v in r.items() if k != "seconds_per_step"} for r in rows]
    assert lines("whole") == lines("split")


@pytest.fixture(scope="module")
def tiny_run(tiny_records, tmp_path_factory):
    """A 3-step run with a checkpoint at each step (the newest 2 kept), evaluated at the end."""
    from panseg.engine.config import load_config
    from panseg.engine.demo import shipped_config

    from .conftest import TINY

    run = str(tmp_path_factory.mktemp("run") / "run")
    cfg = load_config(shipped_config("demo_synthetic"),
                      [f"data.root={tiny_records}", *TINY, "solver.max_iter=3",
                       "solver.checkpoint_period=1", "solver.keep_checkpoints=2"])
    return run, cfg, train(cfg, run, progress=False, log=lambda m: None)


def test_run_directory(tiny_run):
    from panseg.engine.config import load_config

    run, cfg, result = tiny_run
    names = set(os.listdir(run))
    assert {"config.yaml", "dataset.json", "metrics.jsonl", "checkpoints"} <= names
    assert load_config(os.path.join(run, "config.yaml")) == cfg
    assert last_checkpoint(run).endswith("model_0000003.pt")
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == [  # keep_checkpoints=2
        "last_checkpoint", "model_0000002.pt", "model_0000003.pt"]
    ev = result["eval"]
    assert set(ev) == {"pq", "sq", "rq", "pq_th", "pq_st", "miou"}
    assert 0 <= ev["miou"] <= 100


def test_evaluate_run_gives_the_trainers_figures(tiny_run, tmp_path):
    from panseg.cli.main import main

    run, _, result = tiny_run
    out = tmp_path / "pq.json"
    assert main(["evaluate", "--run", run, "--quiet", "--json", str(out), "--device", "cpu"]) == 0
    data = json.loads(out.read_text())
    assert round(100 * data["All"]["pq"], 3) == result["eval"]["pq"]
    assert round(100 * data["semantic"]["miou"], 3) == result["eval"]["miou"]
    assert data["inputs"]["step"] == 3


def test_unknown_key_on_the_command_line_is_one_clear_error(tiny_records, tmp_path, capsys):
    from panseg.cli.main import main

    code = main(["train", "--config", "demo_synthetic", "--set", f"data.root={tiny_records}",
                 "solver.lr=0.1", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "solver.lr" in capsys.readouterr().err
    assert main(["train", "--config", "demo_synthetic", "--out", str(tmp_path / "r")]) == 2
    assert "data.root is empty" in capsys.readouterr().err


def test_num_classes_must_match_the_records(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        train(tiny_config("model.num_classes=19"), str(tmp_path / "r"), progress=False)


def test_predict_writes_coco_panoptic_and_overlays(tiny_run, tiny_records, tmp_path):
    from PIL import Image

    from panseg.cli.main import main
    from panseg.evaluation.coco_format import read_id_png

    run = tiny_run[0]
    coco = os.path.join(os.path.dirname(tiny_records), "coco", "val2017")
    images = sorted(os.path.join(coco, n) for n in os.listdir(coco))
    out = tmp_path / "pred"
    assert main(["predict", "--run", run, *images, "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    data = json.loads((out / "panoptic.json").read_text())
    assert len(data["annotations"]) == len(images)
    cats = {c["id"] for c in data["categories"]}
    for ann in data["annotations"]:
        ids = read_id_png(str(out / "panoptic" / ann["file_name"]))
        listed = {s["id"]: s for s in ann["segments_info"]}
        present, counts = np.unique(ids, return_counts=True)
        assert set(present.tolist()) - {0} == set(listed)
        for sid, n in zip(present.tolist(), counts.tolist(), strict=True):
            if sid:
                assert listed[sid]["area"] == n and listed[sid]["category_id"] in cats
        overlay = Image.open(out / "overlays" / ann["file_name"])
        assert overlay.size[1] == ids.shape[0] and overlay.size[0] > ids.shape[1]
        assert ann["image_id"] == int(ann["file_name"][:-4])  # COCO's 000000000139 -> 139

    # the files are COCO panoptic: panopticapi's rules evaluate them against the GT JSON
    gt = os.path.join(os.path.dirname(tiny_records), "coco", "annotations",
                      "panoptic_val2017.json")
    assert main(["predict", "--run", run, *images, "--out", str(out / "b"), "--no-progress",
                 "--device", "cpu", "--coco-json", gt, "--no-overlays"]) == 0
    assert main(["evaluate", "--gt-json", gt, "--pred-json", str(out / "b" / "panoptic.json"),
                 "--pred-dir", str(out / "b" / "panoptic"), "--quiet",
                 "--json", str(out / "pq.json")]) == 0
    assert 0 <= json.loads((out / "pq.json").read_text())["All"]["pq"] <= 1


def test_to_coco_panoptic_by_hand():
    from panseg.datasets.info import ClassInfo, DatasetInfo
    from panseg.engine.inference import to_coco_panoptic

    info = DatasetInfo("t", (ClassInfo(1, "sky", False, (0, 0, 255), (187,)),
                             ClassInfo(2, "car", True, (255, 0, 0), (3,))), 0, 256, 3)
    pan = np.array([[1 * 256, 1 * 256, 2 * 256 + 1],
                    [0, 2 * 256 + 2, 2 * 256 + 1]])
    ids, segs = to_coco_panoptic(pan, info)
    assert ids.tolist() == [[1, 1, 2], [0, 3, 2]]
    assert segs == [
        {"id": 1, "category_id": 187, "iscrowd": 0, "area": 2, "bbox": [0, 0, 2, 1]},
        {"id": 2, "category_id": 3, "iscrowd": 0, "area": 2, "bbox": [2, 0, 1, 2]},
        {"id": 3, "category_id": 3, "iscrowd": 0, "area": 1, "bbox": [1, 1, 1, 1]},
    ]
