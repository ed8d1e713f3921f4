"""TensorFlow side of the Model Garden interoperability check (run with the TF venv's python).

    python scripts/tf_interop_model_garden.py 'OUT/val-*.tfrecord' > parsed.json

Parses panseg's Model Garden shards with ``tf.io.parse_single_example`` and the feature spec
of Model Garden's decoders -- ``official/vision/dataloaders/tf_example_decoder.py``
``TfExampleDecoder(include_mask=True)`` plus the keys that
``official/projects/panoptic/dataloaders/panoptic_maskrcnn_input.py`` adds with
``include_panoptic_masks=True`` -- and decodes each tensor the way those decoders do (sparse
lists to dense, ``decode_image(channels=3)`` for the image, boxes stacked as
``[ymin, xmin, ymax, xmax]``, masks with ``decode_png(channels=1)`` to float32, the three
segmentation PNGs with ``decode_image(channels=1)``). Prints one JSON object per example.
The spec is restated here (Model Garden is not installed in the TF venv). Never imported by
panseg or its tests: they run it in a subprocess.
"""

import glob
import hashlib
import json
import sys

import numpy as np
import tensorflow as tf

SPEC = {
    # TfExampleDecoder.__init__ (include_mask=True, regenerate_source_id=False)
    "image/encoded": tf.io.FixedLenFeature((), tf.string),
    "image/height": tf.io.FixedLenFeature((), tf.int64, -1),
    "image/width": tf.io.FixedLenFeature((), tf.int64, -1),
    "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
    "image/object/class/label": tf.io.VarLenFeature(tf.int64),
    "image/object/area": tf.io.VarLenFeature(tf.float32),
    "image/object/is_crowd": tf.io.VarLenFeature(tf.int64),
    "image/object/mask": tf.io.VarLenFeature(tf.string),
    "image/source_id": tf.io.FixedLenFeature((), tf.string),
    # panoptic_maskrcnn_input.TfExampleDecoder (include_panoptic_masks=True)
    "image/segmentation/class/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/panoptic/category_mask": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/panoptic/instance_mask": tf.io.FixedLenFeature((), tf.string, default_value=""),
}


def digest(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def decode(serialized) -> dict:
    parsed = tf.io.parse_single_example(serialized, SPEC)
    for key, value in list(parsed.items()):
        if isinstance(value, tf.SparseTensor):
            default = "" if value.dtype == tf.string else 0
            parsed[key] = tf.sparse.to_dense(value, default_value=default)
    image = tf.io.decode_image(parsed["image/encoded"], channels=3).numpy()
    boxes = tf.stack(
        [parsed[f"image/object/bbox/{k}"] for k in ("ymin", "xmin", "ymax", "xmax")], axis=-1
    ).numpy()
    masks_png = parsed["image/object/mask"]
    height, width = int(parsed["image/height"]), int(parsed["image/width"])
    if int(tf.size(masks_png)) > 0:
        masks = tf.map_fn(
            lambda png: tf.cast(tf.squeeze(tf.io.decode_png(png, channels=1), -1), tf.float32),
            masks_png,
            fn_output_signature=tf.float32,
        ).numpy()
    else:
        masks = np.zeros((0, height, width), np.float32)
    out = {
        "source_id": parsed["image/source_id"].numpy().decode(),
        "height": height,
        "width": width,
        "image_shape": list(image.shape),
        "boxes": boxes.tolist(),
        "classes": parsed["image/object/class/label"].numpy().tolist(),
        "is_crowd": parsed["image/object/is_crowd"].numpy().tolist(),
        "areas": parsed["image/object/area"].numpy().tolist(),
        "masks_shape": list(masks.shape),
        "masks_sha1": digest(masks.astype(np.uint8)),
        "masks_max": float(masks.max()) if masks.size else 0.0,
    }
    for key, name in (
        ("image/segmentation/class/encoded", "semantic"),
        ("image/panoptic/category_mask", "category"),
        ("image/panoptic/instance_mask", "instance"),
    ):
        data = parsed[key]
        if len(data.numpy()):
            mask = tf.io.decode_image(data, channels=1).numpy()[..., 0]
            out[f"{name}_sha1"] = digest(mask.astype(np.uint8))
            out[f"{name}_shape"] = list(mask.shape)
    return out


def main() -> int:
    for serialized in tf.data.TFRecordDataset(sorted(glob.glob(sys.argv[1]))):
        print(json.dumps(decode(serialized)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
