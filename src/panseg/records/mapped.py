"""Applying a resolved class map in front of any encoder.

:class:`MappedEncoder` wraps an encoder (DeepLab2's, Model Garden's) built on the *mapped*
label space with identity ``source_ids`` (:func:`identity_info`). Before the wrapped encoder
sees a segment list or a raw example, every segment's (and every object's) source category id
is replaced by its train id; segments and objects of ignored categories are dropped, so their
pixels become void exactly as pixels of unlisted segment ids do. Instances are therefore
counted within the *new* classes: two cars and a truck mapped onto ``vehicle`` become
``vehicle`` instances 1, 2, 3 in segment order.

A category id the map does not know (not in the source's category list) is a problem naming
the file and segment, never a silent void.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from panseg.datasets.base import ItemProblems, Problem, RawExample, Segment
from panseg.datasets.classmap import ClassMap, ResolvedMap, SourceCategory
from panseg.datasets.info import ClassInfo, DatasetInfo

UNKNOWN_CATEGORY = -1


def identity_info(info: DatasetInfo) -> DatasetInfo:
    """``info`` with each class's ``source_ids`` set to its own train id (what an encoder
    behind :class:`MappedEncoder` looks categories up with)."""
    return dataclasses.replace(
        info,
        classes=tuple(
            ClassInfo(c.id, c.name, c.is_thing, c.color, source_ids=(c.id,)) for c in info.classes
        ),
    )


def map_segments(
    segments: Sequence[Segment], resolved: ResolvedMap
) -> tuple[tuple[Segment, ...], list[Segment]]:
    """Segments with train ids as ``category_id`` (ignored ones dropped), and the segments
    whose category the map does not know (kept with category ``UNKNOWN_CATEGORY``).

    A crowd segment of a thing category mapped onto a stuff class loses its crowd flag: it
    is plain stuff in the new label space (a crowd *stuff* source segment stays an error).
    """
    table, ignored = resolved.train_ids(), resolved.ignored
    out: list[Segment] = []
    unknown: list[Segment] = []
    for seg in segments:
        if seg.category_id in ignored:
            continue
        train_id = table.get(seg.category_id)
        crowd = seg.iscrowd
        if train_id is None:
            unknown.append(seg)
            train_id = UNKNOWN_CATEGORY
        elif crowd and train_id in resolved.stuff_classes:
            crowd = crowd and seg.category_id not in resolved.thing_sources
        out.append(dataclasses.replace(seg, category_id=train_id, iscrowd=crowd))
    return tuple(out), unknown


@dataclass(frozen=True)
class MappedEncoder:
    """An encoder that sees train ids (see the module docstring). Picklable."""

    inner: object
    resolved: ResolvedMap

    @cached_property
    def table(self) -> dict[int, int]:
        return self.resolved.train_ids()

    def _unknown(self, unknown: list[Segment], file: str, key: str) -> list[Problem]:
        return [
            Problem(
                file,
                f"category_id {seg.category_id} is not a {self.resolved.dataset} category "
                "known to the class map",
                f"segment {seg.id}",
                key,
            )
            for seg in unknown
        ]

    def _map_raw(self, raw: RawExample) -> tuple[RawExample, list[Problem]]:
        problems: list[Problem] = []
        changes: dict = {}
        table, ignored = self.table, self.resolved.ignored
        if raw.segments is not None:
            segments, unknown = map_segments(raw.segments, self.resolved)
            problems.extend(self._unknown(unknown, raw.label_path, raw.key))
            changes["segments"] = segments
        objects = getattr(raw, "objects", None)
        if objects is not None:
            kept = []
            for index, obj in enumerate(objects):
                if obj.category_id in ignored:
                    continue
                train_id = table.get(obj.category_id)
                if train_id is None:
                    problems.append(
                        Problem(
                            getattr(raw, "objects_file", "") or raw.image_path,
                            f"category_id {obj.category_id} is not a {self.resolved.dataset} "
                            "category known to the class map",
                            f"object #{index}",
                            raw.key,
                        )
                    )
                    continue
                kept.append(dataclasses.replace(obj, category_id=train_id))
            changes["objects"] = tuple(kept)
        return dataclasses.replace(raw, **changes), problems

    def check_listing(self, key: str, segments: Sequence[Segment], file: str) -> list[Problem]:
        mapped, unknown = map_segments(segments, self.resolved)
        problems = self._unknown(unknown, file, key)
        return problems or self.inner.check_listing(key, mapped, file)

    def check(self, raw: RawExample) -> list[Problem]:
        mapped, problems = self._map_raw(raw)
        return problems or self.inner.check(mapped)

    def encode(self, raw: RawExample) -> tuple[bytes, str]:
        mapped, problems = self._map_raw(raw)
        if problems:
            raise ItemProblems(problems)
        return self.inner.encode(mapped)


@dataclass(frozen=True)
class LabelSpace:
    """What a converter needs from an optional class map.

    Attributes:
        info: the label space written into the manifest (``source_ids`` = source ids).
        encoder_info: the label space the encoder is built on (identity ``source_ids`` when
            a map is applied, since :class:`MappedEncoder` hands it train ids).
        resolved: the applied map, or ``None`` for the converter's default label space.
        options: what goes into the manifest's options (the map itself, canonical form).
    """

    info: DatasetInfo
    encoder_info: DatasetInfo
    resolved: ResolvedMap | None = None
    options: Mapping = dataclasses.field(default_factory=dict)

    def wrap(self, encoder: object) -> object:
        """``encoder`` behind the map, or unchanged without one."""
        return encoder if self.resolved is None else MappedEncoder(encoder, self.resolved)


def label_space(
    class_map: ClassMap | None,
    *,
    default: DatasetInfo,
    categories: Sequence[SourceCategory],
    dataset: str,
) -> LabelSpace:
    """The label space of a conversion: ``default`` without a map, else the map resolved
    against ``categories`` (label divisor: the map's, else ``default``'s).

    Raises:
        ClassMapError: the map does not fit the categories.
    """
    if class_map is None:
        return LabelSpace(default, default)
    resolved = class_map.resolve(categories, dataset)
    info = class_map.dataset_info(label_divisor=default.label_divisor, resolved=resolved)
    return LabelSpace(info, identity_info(info), resolved, {"class_map": class_map.to_dict()})
