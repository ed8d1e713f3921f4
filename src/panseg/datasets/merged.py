"""Several datasets as one source, each mapped onto one label space by one class map.

``MergedSource(parts)`` lists each part's split in the order the parts are given (and each
part's own order within it) and maps every segment's source category to the shared train id
with that part's :class:`~panseg.datasets.classmap.ResolvedMap`, exactly as
:class:`~panseg.records.mapped.MappedEncoder` does for one dataset: ignored categories are
dropped (void), instances are counted within the new classes. The encoder behind it is built
on the map's label space with identity ``source_ids``
(:func:`panseg.records.mapped.identity_info`).

An item key is ``<dataset>/<key>`` (e.g. ``cityscapes/aachen_000000_000019``), so keys stay
unique across parts; the record's ``image/filename`` is the part's own key. A segment whose
category the part's map does not know is a listing problem when the part lists segments,
otherwise the encoder reports category ``-1`` for it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from panseg.datasets.base import Problem, RawExample
from panseg.datasets.classmap import ResolvedMap
from panseg.datasets.info import DatasetInfo
from panseg.records.mapped import map_segments


@dataclass(frozen=True)
class MergedPart:
    """One dataset of a merge: its reader and the class map resolved against it."""

    source: Any
    resolved: ResolvedMap


@dataclass(frozen=True)
class MergedItem:
    part: int
    item: Any
    key: str
    segments: tuple | None
    label_path: str


@dataclass(frozen=True)
class MergedSource:
    """The concatenation of ``parts`` (see the module docstring). Picklable."""

    parts: tuple[MergedPart, ...]
    info: DatasetInfo
    name: str = "merged"

    @property
    def root(self) -> str:
        return ";".join(f"{p.source.name}={getattr(p.source, 'root', '')}" for p in self.parts)

    def dataset_info(self) -> DatasetInfo:
        return self.info

    def item_key(self, item: MergedItem) -> str:
        return item.key

    def list_split(self, split: str) -> tuple[list[MergedItem], list[Problem]]:
        items: list[MergedItem] = []
        problems: list[Problem] = []
        seen: set[str] = set()
        for index, part in enumerate(self.parts):
            source = part.source
            part_items, part_problems = source.list_split(split)
            prefix = f"{source.name}/"
            problems.extend(
                dataclasses.replace(p, item=prefix + p.item) if p.item else p
                for p in part_problems
            )
            for item in part_items:
                key = prefix + source.item_key(item)
                if key in seen:
                    problems.append(Problem(str(getattr(item, "image_path", key)),
                                            "the same item is listed twice", item=key))
                    continue
                seen.add(key)
                label_path = getattr(item, "label_path", "") or ""
                segments = getattr(item, "segments", None)
                if segments is not None:
                    segments, unknown = map_segments(segments, part.resolved)
                    problems.extend(
                        Problem(label_path, f"category_id {seg.category_id} is not a "
                                f"{source.name} category known to the class map",
                                f"segment {seg.id}", key)
                        for seg in unknown
                    )
                items.append(MergedItem(index, item, key, segments, label_path))
        return items, problems

    def load(self, item: MergedItem) -> RawExample:
        part = self.parts[item.part]
        raw = part.source.load(item.item)
        if raw.segments is not None:
            segments, _ = map_segments(raw.segments, part.resolved)
            raw = dataclasses.replace(raw, segments=segments)
        return raw
