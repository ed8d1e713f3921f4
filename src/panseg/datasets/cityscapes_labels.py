"""The Cityscapes label table and the 19-class label space DeepLab2 trains on.

Facts from cityscapesScripts ``cityscapesscripts/helpers/labels.py`` (``labels``): 34 labels
with ids 0..33 plus ``license plate`` (id -1, never drawn). Each has a train id (0..18, or 255
for classes not trained on), a category, whether it distinguishes instances and whether it
is ignored in evaluation, and a color.

:func:`cityscapes_panoptic_info` is DeepLab2's ``cityscapes_panoptic`` label space
(``data/dataset.py`` L215-229): train ids 0..18, ignore label 255, label divisor 1000, things
11..18. Each class's ``source_ids`` is the Cityscapes label id mapped onto it, so segments
read from the raw ``*_instanceIds.png`` carry label ids, and the prepared panoptic JSON's train
ids are translated back to label ids (the map is one to one on 0..18).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from panseg.datasets.info import ClassInfo, DatasetInfo

CITYSCAPES_IGNORE_LABEL = 255
CITYSCAPES_LABEL_DIVISOR = 1000
# Values of ``*_instanceIds.png``: ``label id`` (stuff, crowd groups) or ``label id * 1000 + k``.
INSTANCE_ID_DIVISOR = 1000


@dataclass(frozen=True)
class CityscapesLabel:
    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


def _label(name, id_, train_id, category, category_id, has_instances, ignore, color):
    return CityscapesLabel(name, id_, train_id, category, category_id, has_instances, ignore, color)


# name, id, trainId, category, categoryId, hasInstances, ignoreInEval, color
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    _label("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
    _label("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
    _label("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
    _label("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
    _label("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
    _label("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
    _label("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
    _label("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
    _label("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
    _label("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
    _label("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
    _label("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
    _label("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
    _label("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
    _label("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
    _label("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
    _label("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
    _label("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
    _label("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
    _label("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
    _label("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
    _label("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
    _label("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
    _label("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
    _label("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
    _label("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
    _label("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
    _label("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
    _label("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
    _label("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
    _label("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
    _label("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
    _label("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
    _label("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
    _label("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142)),
)

LABEL_BY_ID: dict[int, CityscapesLabel] = {lab.id: lab for lab in CITYSCAPES_LABELS}
LABEL_BY_NAME: dict[str, CityscapesLabel] = {lab.name: lab for lab in CITYSCAPES_LABELS}
# Train ids 0..18 each come from exactly one label.
LABEL_BY_TRAIN_ID: dict[int, CityscapesLabel] = {
    lab.train_id: lab for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < 255
}


@lru_cache(maxsize=1)
def cityscapes_panoptic_info() -> DatasetInfo:
    """DeepLab2's Cityscapes label space: 19 train ids, ignore 255, divisor 1000."""
    classes = tuple(
        ClassInfo(
            id=lab.train_id,
            name=lab.name,
            is_thing=lab.has_instances,
            color=lab.color,
            source_ids=(lab.id,),
        )
        for lab in sorted(LABEL_BY_TRAIN_ID.values(), key=lambda lab: lab.train_id)
    )
    return DatasetInfo(
        name="cityscapes_panoptic",
        classes=classes,
        ignore_label=CITYSCAPES_IGNORE_LABEL,
        label_divisor=CITYSCAPES_LABEL_DIVISOR,
        num_classes=len(classes),
    )


def label_id_to_train_id_lut() -> np.ndarray:
    """``int16 (256,)``: train id of each label id 0..33 (255 = not trained), -1 = unknown id.

    Indexing it with a ``*_labelIds.png`` gives the ``*_labelTrainIds.png`` that
    cityscapesScripts' ``json2labelImg(..., "trainIds")`` draws from the same polygons: both
    fill each polygon with one value of its label, so the last polygon drawn wins in both.
    """
    lut = np.full(256, -1, dtype=np.int16)
    for lab in CITYSCAPES_LABELS:
        if lab.id >= 0:
            lut[lab.id] = lab.train_id
    return lut


def instance_value_label_id(value: int) -> int:
    """The label id of an ``*_instanceIds.png`` value: ``v`` below 1000, else ``v // 1000``."""
    return value if value < INSTANCE_ID_DIVISOR else value // INSTANCE_ID_DIVISOR
