"""TensorFlow parses panseg's Model Garden shards with Model Garden's decoder feature spec.

Runs scripts/tf_interop_model_garden.py in the separate TensorFlow environment; skipped when
PANSEG_TF_PYTHON is not set (scripts/test.sh, which CI runs, sets it).
"""

import hashlib
import io
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from panseg.cli.main import main
from panseg.records.example import decode_example
from panseg.records.tfrecord import read_file_records

TF_PYTHON = os.environ.get("PANSEG_TF_PYTHON")
SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "tf_interop_model_garden.py")
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not TF_PYTHON, reason="PANSEG_TF_PYTHON is not set (scripts/test.sh sets it)"),
]


def sha1(array) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def test_tensorflow_decodes_model_garden_shards(tmp_path):
    root, out = str(tmp_path / "coco"), str(tmp_path / "rec")
    assert main(["synth", "coco", "--out", root, "--images", "5"]) == 0
    assert main(["convert", "coco", "--root", root, "--out", out, "--schema", "model-garden",
                 "--include-masks", "--include-panoptic-masks", "--num-shards", "2",
                 "--splits", "train", "--workers", "1", "--no-progress"]) == 0
    pattern = os.path.join(out, "train-*.tfrecord")
    result = subprocess.run([TF_PYTHON, SCRIPT, pattern], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    ours = [decode_example(r) for k in range(2)
            for r in read_file_records(os.path.join(out, f"train-{k:05d}-of-00002.tfrecord"))]
    assert len(parsed) == len(ours) == 5
    with_objects = 0
    for tf_ex, ex in zip(parsed, ours, strict=True):
        h, w = ex["image/height"].values[0], ex["image/width"].values[0]
        assert tf_ex["source_id"] == ex["image/source_id"].values[0].decode()
        assert [tf_ex["height"], tf_ex["width"]] == [h, w] and tf_ex["image_shape"] == [h, w, 3]
        labels = ex["image/object/class/label"].values if "image/object/class/label" in ex else []
        assert tf_ex["classes"] == labels
        if labels:
            with_objects += 1
            boxes = np.stack([ex[f"image/object/bbox/{k}"].values
                              for k in ("ymin", "xmin", "ymax", "xmax")], -1)
            np.testing.assert_allclose(tf_ex["boxes"], boxes, rtol=1e-6)
            assert tf_ex["is_crowd"] == ex["image/object/is_crowd"].values
            np.testing.assert_allclose(tf_ex["areas"], ex["image/object/area"].values)
            masks = np.stack([png(m) for m in ex["image/object/mask"].values])
            assert tf_ex["masks_shape"] == [len(labels), h, w] and tf_ex["masks_max"] == 1.0
            assert tf_ex["masks_sha1"] == sha1(masks)
        else:
            assert tf_ex["masks_shape"] == [0, h, w]
        for key, name in (("image/segmentation/class/encoded", "semantic"),
                          ("image/panoptic/category_mask", "category"),
                          ("image/panoptic/instance_mask", "instance")):
            assert tf_ex[f"{name}_shape"] == [h, w]
            assert tf_ex[f"{name}_sha1"] == sha1(png(ex[key].values[0]))
    assert with_objects >= 3
