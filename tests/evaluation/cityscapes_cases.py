"""Cityscapes label space and random train-id panoptic pairs for the evaluation tests.

cityscapesscripts is the tests' oracle and CI installs it (scripts/test.sh): imported plainly,
so a missing oracle fails instead of skipping.
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers import labels as cs_labels

from panseg.datasets.info import ClassInfo, DatasetInfo

EVAL_LABELS = [lab for lab in cs_labels.labels if not lab.ignoreInEval]
TRAIN_TO_LABEL = {lab.trainId: lab.id for lab in EVAL_LABELS}


def cityscapes_info() -> DatasetInfo:
    classes = tuple(
        ClassInfo(id=lab.trainId, name=lab.name, is_thing=lab.hasInstances, color=lab.color)
        for lab in sorted(EVAL_LABELS, key=lambda lab: lab.trainId)
    )
    return DatasetInfo(
        name="cityscapes_panoptic", classes=classes, ignore_label=255, label_divisor=1000,
        num_classes=19,
    )


INFO = cityscapes_info()
THINGS = sorted(INFO.thing_ids)
STUFF = sorted(INFO.stuff_ids)


def random_cityscapes_pair(rng: np.random.Generator, h: int = 40, w: int = 64):
    """trainId * 1000 + instance maps: stuff, things (instance 0 = crowd), VOID 255."""
    sem = np.full((h, w), int(rng.choice(STUFF)), np.int64)
    inst = np.zeros((h, w), np.int64)
    for _ in range(int(rng.integers(2, 5))):
        y, x = rng.integers(0, h), rng.integers(0, w)
        sem[y : y + rng.integers(3, h), x : x + rng.integers(3, w)] = rng.choice(STUFF)
    for n in range(1, int(rng.integers(2, 12))):
        y, x = rng.integers(0, h), rng.integers(0, w)
        box = (slice(y, y + rng.integers(2, 15)), slice(x, x + rng.integers(2, 20)))
        sem[box] = rng.choice(THINGS)
        inst[box] = 0 if rng.random() < 0.15 else n
    sem[rng.random((h, w)) < 0.03] = 255
    gt = sem * 1000 + np.where(sem == 255, 0, inst)
    # prediction: shifted GT, a few relabelled blocks, predicted VOID, stuff with instance ids
    psem = np.roll(sem, tuple(int(v) for v in rng.integers(-2, 3, size=2)), axis=(0, 1))
    pinst = np.roll(inst, 1, axis=1) + 100
    for _ in range(int(rng.integers(0, 4))):
        y, x = rng.integers(0, h), rng.integers(0, w)
        psem[y : y + 6, x : x + 9] = rng.choice([*STUFF, *THINGS, 255])
    pinst[np.isin(psem, STUFF) & (rng.random((h, w)) < 0.7)] = 0
    pred = psem * 1000 + np.where(psem == 255, 0, pinst)
    return pred, gt
