"""What dataset readers yield, and how they report problems.

A reader (a *source*) lists the items of a split, cheaply and in a deterministic order, and
loads one item into a :class:`RawExample`: the image file bytes and the panoptic annotation
as a segment-id map plus its segment list. Readers know nothing about record schemas;
converters (``panseg.records.*``) turn raw examples into records.

Problems are data, not exceptions: a reader returns the :class:`Problem` s it found while
listing (the annotation JSON, file names, headers), and an encoder raises
:class:`ItemProblems` for what it finds in pixels. The converter gathers them all, so a user
sees every problem of a run at once, each naming its file and segment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from panseg.datasets.info import DatasetInfo


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, named precisely.

    Attributes:
        file: the file at fault (image, annotation PNG or JSON).
        where: the record or segment inside it (e.g. ``segment 3932265``), or ``""``.
        message: what is wrong.
        item: the item's key (image stem) when the problem belongs to one image.
    """

    file: str
    message: str
    where: str = ""
    item: str = ""

    def __str__(self) -> str:
        where = f" [{self.where}]" if self.where else ""
        return f"{self.file}{where}: {self.message}"


class ItemProblems(Exception):
    """Raised while encoding one item; carries every problem found in it."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Segment:
    """One entry of a panoptic annotation's segment list.

    ``category_id`` is the *source* dataset's category id (COCO original id, Cityscapes
    trainId or labelId); ``area`` is the annotated pixel count, or ``None`` when the source
    does not state one.
    """

    id: int
    category_id: int
    iscrowd: bool
    area: int | None = None


@dataclass
class RawExample:
    """One image with its panoptic annotation, as read from the source.

    Attributes:
        key: the name written as ``image/filename`` (no directory, no extension).
        image_path: the image file (for messages).
        image_bytes: the image file's bytes.
        image_format: ``jpeg`` or ``png``.
        segments: the annotation's segments in the source's order; ``None`` for an image
            without annotation (a test split).
        label_path: the file holding the segment-id map (for messages).
        read_ids: returns the segment-id map, ``uint32`` of shape ``(H, W)``; it is called at
            most once per encoding, so sources may decode lazily.
    """

    key: str
    image_path: str
    image_bytes: bytes
    image_format: str
    segments: tuple[Segment, ...] | None = None
    label_path: str = ""
    read_ids: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    @property
    def has_label(self) -> bool:
        return self.segments is not None


class Source(Protocol):
    """A dataset reader: picklable, so worker processes can load items themselves."""

    name: str

    def list_split(self, split: str) -> tuple[list, list[Problem]]:
        """Items of ``split`` in output order, and the problems found while listing them."""

    def load(self, item) -> RawExample:
        """Read one listed item."""

    def item_key(self, item) -> str:
        """The item's key (its ``image/filename``)."""

    def dataset_info(self) -> DatasetInfo:
        """The label space of the records this source produces by default."""
