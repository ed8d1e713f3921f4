"""``panseg demo --fast``: the whole path (synthetic data, records, training, evaluation,
overlays, curves) runs end to end from the command line."""

import json
import os
import time

from PIL import Image


def test_demo_fast_end_to_end(tmp_path, capsys):
    from panseg.cli.main import main

    out = tmp_path / "demo"
    start = time.time()
    assert main(["demo", "--fast", "--out", str(out), "--no-progress"]) == 0
    seconds = time.time() - start
    text = capsys.readouterr().out
    assert "demo PQ" in text and "synthetic val split" in text
    assert (out / "records" / "manifest.json").exists()
    assert (out / "run" / "checkpoints" / "last_checkpoint").exists()
    metrics = [json.loads(x) for x in open(out / "run" / "metrics.jsonl")]
    assert any("loss" in m for m in metrics) and any("eval" in m for m in metrics)
    overlays = sorted(os.listdir(out / "overlays"))
    assert overlays and all(n.endswith(".png") for n in overlays)
    image = Image.open(out / "overlays" / overlays[0])
    assert image.size[0] > 3 * 128 and image.size[1] == 96  # image | ground truth | prediction
    curves = Image.open(out / "training_curves.png")
    assert curves.size[0] == 640 and curves.size[1] >= 3 * 200
    assert seconds < 120  # about 15 s on an idle 2-core machine


def test_plot_draws_the_series():
    import numpy as np

    from panseg.engine.plot import plot_curves

    img = plot_curves([("a", [(0, 1.0), (10, 0.5)], (255, 0, 0)), ("b", [], (0, 0, 255))])
    assert img.shape == (440, 640, 3) and img.dtype == np.uint8
    red = (img[..., 0] == 255) & (img[..., 1] == 0) & (img[..., 2] == 0)
    assert red[:220].any() and not red[220:].any()
