"""The Cityscapes label table and label space against cityscapesScripts' labels.py."""

import numpy as np
from cityscapesscripts.helpers import labels as cs_labels

from panseg.datasets.cityscapes_labels import (
    CITYSCAPES_LABELS,
    cityscapes_panoptic_info,
    instance_value_label_id,
    label_id_to_train_id_lut,
)


def test_table_equals_cityscapesscripts():
    ours = [
        (lab.name, lab.id, lab.train_id, lab.category, lab.category_id, lab.has_instances,
         lab.ignore_in_eval, lab.color)
        for lab in CITYSCAPES_LABELS
    ]
    theirs = [tuple(lab) for lab in cs_labels.labels]
    assert ours == theirs
    assert len([lab for lab in CITYSCAPES_LABELS if lab.id >= 0]) == 34


def test_label_space_is_deeplab2s():
    info = cityscapes_panoptic_info()
    assert info.num_classes == 19 and info.ignore_label == 255 and info.label_divisor == 1000
    assert sorted(info.thing_ids) == list(range(11, 19))
    assert info.void_label == 255000
    assert [c.name for c in info.classes][:3] == ["road", "sidewalk", "building"]
    assert info.class_by_id(13).source_ids == (26,)  # car
    assert all(cs_labels.trainId2label[c.id].id == c.source_ids[0] for c in info.classes)


def test_train_id_lut():
    lut = label_id_to_train_id_lut()
    assert lut[7] == 0 and lut[26] == 13 and lut[33] == 18
    assert lut[0] == 255 and lut[29] == 255 and lut[34] == -1 and lut[255] == -1
    for lab in cs_labels.labels:
        if lab.id >= 0:
            assert lut[lab.id] == lab.trainId
    assert np.count_nonzero(lut >= 0) == 34


def test_instance_value_label_id():
    assert instance_value_label_id(7) == 7
    assert instance_value_label_id(26) == 26
    assert instance_value_label_id(26000) == 26
    assert instance_value_label_id(33999) == 33
