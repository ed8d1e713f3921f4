"""``panseg evaluate`` on COCO panoptic files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation.pqcases import random_pair, write_coco
from panseg.cli.main import main
from panseg.evaluation.coco_format import evaluate_coco_panoptic


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    return write_coco(str(tmp_path), [random_pair(rng, 20, 30, 10) for _ in range(4)])


def test_evaluate_prints_the_table_and_writes_json(files, tmp_path, capsys):
    out = tmp_path / "res" / "pq.json"
    argv = ["evaluate", "--gt-json", files["gt_json"], "--gt-dir", files["gt_dir"],
            "--pred-json", files["pred_json"], "--pred-dir", files["pred_dir"],
            "--json", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    expected = evaluate_coco_panoptic(**files, progress=False)
    assert saved["All"]["pq"] == expected["All"]["pq"]
    assert f"All       | {100 * expected['All']['pq']:5.1f}" in printed
    assert saved["inputs"]["pred_dir"] == files["pred_dir"]


def test_folders_default_to_the_json_path_without_extension(files, capsys):
    assert main(["evaluate", "--gt-json", files["gt_json"], "--pred-json", files["pred_json"],
                 "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "person" in printed and "Things" in printed


def test_user_errors_are_one_line(files, capsys):
    assert main(["evaluate"]) == 2
    assert "say what to evaluate: --gt-json" in capsys.readouterr().err
    assert main(["evaluate", "--gt-json", files["gt_json"]]) == 2
    assert "needs --pred-json" in capsys.readouterr().err
    argv = ["evaluate", "--gt-json", files["gt_json"], "--pred-json", files["pred_json"],
            "--pred-dir", "/nonexistent"]
    assert main(argv) == 2
    assert "prediction segmentation folder '/nonexistent' does not exist" in capsys.readouterr().err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "examples:" in capsys.readouterr().out
