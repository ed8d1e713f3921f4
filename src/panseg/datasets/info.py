"""Dataset facts in one immutable object, passed explicitly wherever they are needed.

A :class:`DatasetInfo` answers every question an algorithm has about a label space:
how many classes, which are things, which value is ignore/void, the panoptic label
divisor (``panoptic = semantic * label_divisor + instance``) and a color per class.
There is no global registry: converters write it into the manifest, readers load it
from there, and functions take it as an argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ClassInfo:
    """One train id of a label space.

    ``id`` is the train id stored in labels; ``source_ids`` lists the ids of the source
    dataset's categories mapped onto it (for COCO, the original category id).
    """

    id: int
    name: str
    is_thing: bool
    color: tuple[int, int, int]
    source_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about a label space.

    Attributes:
        name: a short name, e.g. ``coco_panoptic`` or ``cityscapes_panoptic``.
        classes: every real class, in ascending train id (the ignore label is not a class).
        ignore_label: semantic value of void/ignored pixels (0 for COCO, 255 for Cityscapes).
        label_divisor: ``panoptic = semantic * label_divisor + instance``.
        num_classes: the number of semantic logits a model predicts (DeepLab2 convention:
            134 for COCO, where 0 is void, and 19 for Cityscapes).
    """

    name: str
    classes: tuple[ClassInfo, ...]
    ignore_label: int
    label_divisor: int
    num_classes: int
    _by_id: Mapping[int, ClassInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[int, ClassInfo] = {}
        for cls in self.classes:
            if cls.id in by_id:
                raise ValueError(f"dataset {self.name!r}: train id {cls.id} is declared twice")
            if cls.id == self.ignore_label:
                raise ValueError(
                    f"dataset {self.name!r}: class {cls.name!r} uses the ignore label {cls.id}"
                )
            by_id[cls.id] = cls
        if self.label_divisor < 1:
            raise ValueError(f"dataset {self.name!r}: label_divisor must be >= 1")
        object.__setattr__(self, "_by_id", by_id)

    # ----------------------------------------------------------------- queries
    @property
    def class_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.classes)

    @property
    def thing_ids(self) -> frozenset[int]:
        return frozenset(c.id for c in self.classes if c.is_thing)

    @property
    def stuff_ids(self) -> frozenset[int]:
        return frozenset(c.id for c in self.classes if not c.is_thing)

    @property
    def void_label(self) -> int:
        """Panoptic value of a void pixel: ``ignore_label * label_divisor``."""
        return self.ignore_label * self.label_divisor

    @property
    def max_instances(self) -> int:
        """Largest instance id a class can hold (``label_divisor - 1``)."""
        return self.label_divisor - 1

    def class_by_id(self, train_id: int) -> ClassInfo:
        try:
            return self._by_id[train_id]
        except KeyError:
            raise KeyError(f"dataset {self.name!r} has no class with train id {train_id}") from None

    def is_thing(self, train_id: int) -> bool:
        cls = self._by_id.get(train_id)
        return cls is not None and cls.is_thing

    def palette(self, size: int = 256) -> list[tuple[int, int, int]]:
        """Color per train id, ``size`` entries; ids without a class are black."""
        colors = [(0, 0, 0)] * size
        for cls in self.classes:
            if 0 <= cls.id < size:
                colors[cls.id] = cls.color
        return colors

    # ------------------------------------------------------------ (de)serialize
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ignore_label": self.ignore_label,
            "label_divisor": self.label_divisor,
            "num_classes": self.num_classes,
            "classes": [
                {
                    "id": c.id,
                    "name": c.name,
                    "is_thing": c.is_thing,
                    "color": list(c.color),
                    "source_ids": list(c.source_ids),
                }
                for c in self.classes
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetInfo:
        expected = {"name", "ignore_label", "label_divisor", "num_classes", "classes"}
        unknown = set(data) - expected
        missing = expected - set(data)
        if unknown or missing:
            raise ValueError(
                f"dataset facts: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
            )
        classes = tuple(
            ClassInfo(
                id=int(c["id"]),
                name=str(c["name"]),
                is_thing=bool(c["is_thing"]),
                color=_color(c["color"]),
                source_ids=tuple(int(s) for s in c.get("source_ids", ())),
            )
            for c in data["classes"]
        )
        return cls(
            name=str(data["name"]),
            classes=classes,
            ignore_label=int(data["ignore_label"]),
            label_divisor=int(data["label_divisor"]),
            num_classes=int(data["num_classes"]),
        )


def _color(value: Sequence[int]) -> tuple[int, int, int]:
    if len(value) != 3 or not all(0 <= int(v) <= 255 for v in value):
        raise ValueError(f"a color is three integers in 0..255, got {list(value)!r}")
    return (int(value[0]), int(value[1]), int(value[2]))
