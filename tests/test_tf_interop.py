"""Interoperability with TensorFlow itself, in the separate TensorFlow environment.

scripts/test.sh (the README's test command, which CI runs) sets PANSEG_TF_PYTHON to the
python of that environment; without it these tests are skipped (a developer run).
"""

import hashlib
import json
import os
import subprocess

import numpy as np
import pytest

from panseg.cli.main import main
from panseg.records.deeplab2 import decode_deeplab2
from panseg.records.example import decode_example
from panseg.records.tfrecord import read_file_records

TF_PYTHON = os.environ.get("PANSEG_TF_PYTHON")
SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "tf_interop.py")
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not TF_PYTHON, reason="PANSEG_TF_PYTHON is not set (scripts/test.sh sets it)"),
]


def run_tf(*args: str) -> list[dict]:
    result = subprocess.run(
        [TF_PYTHON, SCRIPT, *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def sha1(array) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def test_tensorflow_parses_panseg_deeplab2_shards(tmp_path):
    root, out = str(tmp_path / "coco"), str(tmp_path / "rec")
    assert main(["synth", "coco", "--out", root, "--images", "4"]) == 0
    assert main(["convert", "coco", "--root", root, "--out", out, "--num-shards", "2",
                 "--workers", "1", "--no-progress"]) == 0
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        parsed = run_tf("read", "--spec", "deeplab2", os.path.join(out, f"{split}-*.tfrecord"))
        ours = [
            decode_deeplab2(r)
            for k in range(2)
            for r in read_file_records(os.path.join(out, f"{split}-{k:05d}-of-00002.tfrecord"))
        ]
        assert len(parsed) == len(ours) == n
        for tf_ex, ex in zip(parsed, ours, strict=True):
            assert tf_ex["filename"] == ex.filename
            assert tf_ex["format"] == "jpeg" and tf_ex["channels"] == 3
            assert [tf_ex["height"], tf_ex["width"]] == list(ex.image.shape[:2])
            assert tf_ex["image_shape"] == list(ex.image.shape)
            # TF's and PIL's libjpeg may differ by rounding; the decoded size is what matters
            # here, and labels must be identical.
            if split == "test":
                assert "label_sha1" not in tf_ex
            else:
                assert tf_ex["label_format"] == "raw"
                assert tf_ex["label_sha1"] == sha1(ex.label.astype(np.int32))


def test_panseg_reads_tensorflow_written_records(tmp_path):
    path = str(tmp_path / "tf.tfrecord")
    written = run_tf("write", path)
    records = read_file_records(path)
    assert len(records) == len(written) == 3
    for data, expected in zip(records, written, strict=True):
        feats = decode_example(data)
        assert hashlib.sha1(feats["bytes"].one()).hexdigest() == expected["bytes_sha1"]
        assert feats["ints"].values == expected["ints"]
        assert feats["floats"].values == pytest.approx(expected["floats"])
