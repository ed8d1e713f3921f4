"""TensorFlow side of the interoperability check; run it with the TensorFlow venv's python.

    python scripts/tf_interop.py read  --spec deeplab2 'OUT/val-*.tfrecord'  > parsed.json
    python scripts/tf_interop.py write OUT/tf_written.tfrecord             > written.json

``read`` parses panseg's shards with ``tf.data.TFRecordDataset`` and
``tf.io.parse_single_example`` using the consumer's feature spec (DeepLab2's
``data/data_utils.py`` ``SegmentationDecoder``), decodes images with ``tf.io.decode_image``
and raw labels with ``tf.io.decode_raw``, and prints one JSON object per example.
``write`` writes Examples with ``tf.io.TFRecordWriter`` for panseg's reader and prints what it
wrote. Never imported by panseg or its tests: they run it in a subprocess.
"""

import argparse
import glob
import hashlib
import json
import sys

import numpy as np
import tensorflow as tf

DEEPLAB2_SPEC = {
    "image/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/filename": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/format": tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
    "image/height": tf.io.FixedLenFeature((), tf.int64, default_value=0),
    "image/width": tf.io.FixedLenFeature((), tf.int64, default_value=0),
    "image/channels": tf.io.FixedLenFeature((), tf.int64, default_value=3),
    "image/segmentation/class/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/segmentation/class/format": tf.io.FixedLenFeature((), tf.string, default_value="png"),
}

SPECS = {"deeplab2": DEEPLAB2_SPEC}


def digest(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def read(pattern: str, spec_name: str) -> None:
    files = sorted(glob.glob(pattern))
    dataset = tf.data.TFRecordDataset(files)
    for serialized in dataset:
        parsed = tf.io.parse_single_example(serialized, SPECS[spec_name])
        height = int(parsed["image/height"])
        width = int(parsed["image/width"])
        image = tf.io.decode_image(parsed["image/encoded"], channels=3).numpy()
        out = {
            "filename": parsed["image/filename"].numpy().decode(),
            "format": parsed["image/format"].numpy().decode(),
            "height": height,
            "width": width,
            "channels": int(parsed["image/channels"]),
            "image_shape": list(image.shape),
            "image_sha1": digest(image),
        }
        label_bytes = parsed["image/segmentation/class/encoded"]
        if len(label_bytes.numpy()):
            fmt = parsed["image/segmentation/class/format"].numpy().decode()
            if fmt == "raw":
                label = tf.reshape(tf.io.decode_raw(label_bytes, tf.int32), [height, width, 1])
            else:
                label = tf.io.decode_image(label_bytes, channels=1)
            label = label.numpy()[..., 0].astype(np.int32)
            out.update(label_format=fmt, label_sha1=digest(label), label_max=int(label.max()))
        print(json.dumps(out))


def write(path: str) -> None:
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(path) as writer:
        for index in range(3):
            payload = rng.integers(0, 256, size=int(rng.integers(0, 5000)), dtype=np.uint8)
            feature = {
                "bytes": tf.train.Feature(bytes_list=tf.train.BytesList(value=[payload.tobytes()])),
                "ints": tf.train.Feature(int64_list=tf.train.Int64List(value=[index, -index, 2**40])),
                "floats": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5, index / 4])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
            print(json.dumps({"bytes_sha1": hashlib.sha1(payload.tobytes()).hexdigest(),
                              "ints": [index, -index, 2**40], "floats": [0.5, index / 4]}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("read")
    r.add_argument("pattern")
    r.add_argument("--spec", default="deeplab2", choices=sorted(SPECS))
    w = sub.add_parser("write")
    w.add_argument("path")
    args = parser.parse_args()
    if args.cmd == "read":
        read(args.pattern, args.spec)
    else:
        write(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
