"""Class maps: a source dataset's categories mapped onto an application's label space.

A class map (JSON or YAML, format in ``docs/class-maps.md``) declares the train ids of a label
space -- name, thing or stuff, color -- and which source categories (by id or by name, for
any dataset or per dataset) feed each of them. It is loaded strictly: an unknown key, a wrong
type, a train id declared twice, a color outside 0..255 are errors naming the file.

Resolving a map against a source's category list (:meth:`ClassMap.resolve`) gives the lookup
table a converter applies, ``source id -> train id`` or :data:`IGNORE`:

* a source category named in ``classes[].sources`` maps to that class;
* one named in ``ignore`` becomes void;
* any other follows ``unmapped``: ``error`` (the default: the run stops and every unmapped
  category is listed), ``ignore`` (void) or ``background`` (the class ``background`` names).

Resolution errors (:class:`ClassMapError`): an entry that names no category of the source, a
category named twice, a thing class fed by a stuff category (a stuff region has no instances
to count), ``unmapped: background`` without a ``background`` class.

The idea follows mllib's class dictionaries (``bhlarson/mllib`` ``datasets/coco.json``: keys
``background``, ``ignore``, ``classes`` and an ``objects`` list mapping dataset ids to
``trainId`` with colors); panseg's format adds thing/stuff, names as keys and several datasets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

from panseg import fsio
from panseg.datasets.info import ClassInfo, DatasetInfo

UNMAPPED_POLICIES = ("error", "ignore", "background")
BUILTIN_MAPS = ("coco_panoptic133", "cityscapes19", "coco_person_vehicle_animal")
ANY_DATASET = "*"


class _Ignore:
    """The lookup result of a source category that becomes void."""

    _instance: _Ignore | None = None

    def __new__(cls) -> _Ignore:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "IGNORE"

    def __reduce__(self) -> str:
        return "IGNORE"


IGNORE = _Ignore()


class ClassMapError(ValueError):
    """A class map that is malformed, or that does not fit a source's categories."""


@dataclass(frozen=True)
class SourceCategory:
    """One category of a source dataset, as the dataset itself numbers and names it."""

    id: int
    name: str
    is_thing: bool


@dataclass(frozen=True)
class MapClass:
    """One train id of the map; ``sources`` maps a dataset name (or ``*``) to ids/names."""

    id: int
    name: str
    is_thing: bool
    color: tuple[int, int, int]
    sources: Mapping[str, tuple[int | str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedMap:
    """A class map applied to one source: ``table`` maps every source category id to a
    train id or :data:`IGNORE`."""

    dataset: str
    table: Mapping[int, int | _Ignore]
    thing_sources: frozenset[int] = frozenset()
    stuff_classes: frozenset[int] = frozenset()

    @cached_property
    def ignored(self) -> frozenset[int]:
        return frozenset(k for k, v in self.table.items() if v is IGNORE)

    def train_ids(self) -> dict[int, int]:
        """``source id -> train id`` for the categories that are not ignored."""
        return {k: v for k, v in self.table.items() if v is not IGNORE}


@dataclass(frozen=True)
class ClassMap:
    """A loaded class map (see the module docstring)."""

    name: str
    classes: tuple[MapClass, ...]
    ignore_label: int
    label_divisor: int | None = None
    num_classes: int | None = None
    background: int | None = None
    unmapped: str = "error"
    ignore: Mapping[str, tuple[int | str, ...]] = field(default_factory=dict)
    path: str = ""

    def __post_init__(self) -> None:
        where = self.path or self.name
        seen: dict[int, MapClass] = {}
        for cls in self.classes:
            if cls.id in seen:
                other = seen[cls.id]
                what = (
                    "declared both thing and stuff"
                    if other.is_thing != cls.is_thing
                    else "declared twice"
                )
                raise ClassMapError(
                    f"{where}: train id {cls.id} is {what} ({other.name!r} and {cls.name!r})"
                )
            seen[cls.id] = cls
            if cls.id == self.ignore_label:
                raise ClassMapError(
                    f"{where}: class {cls.name!r} uses the ignore label {cls.id} as its train id"
                )
            if cls.id < 0:
                raise ClassMapError(f"{where}: class {cls.name!r} has a negative train id")
        if not self.classes:
            raise ClassMapError(f"{where}: a class map needs at least one class")
        if self.unmapped not in UNMAPPED_POLICIES:
            raise ClassMapError(
                f"{where}: unmapped must be one of {list(UNMAPPED_POLICIES)}, got {self.unmapped!r}"
            )
        if self.background is not None and self.background not in seen:
            raise ClassMapError(f"{where}: background {self.background} is not a declared class")
        if self.unmapped == "background" and self.background is None:
            raise ClassMapError(f"{where}: unmapped: background needs a background class id")
        top = max(seen)
        if self.num_classes is not None and self.num_classes <= top:
            raise ClassMapError(
                f"{where}: num_classes {self.num_classes} but the largest train id is {top}"
            )
        if self.label_divisor is not None and self.label_divisor < 1:
            raise ClassMapError(f"{where}: label_divisor must be >= 1")

    # ------------------------------------------------------------------- resolution
    def resolve(self, categories: Sequence[SourceCategory], dataset: str) -> ResolvedMap:
        """Apply the map to ``dataset``'s ``categories``.

        Raises:
            ClassMapError: every mismatch at once (see the module docstring).
        """
        where = self.path or self.name
        by_id = {c.id: c for c in categories}
        by_name: dict[str, SourceCategory] = {}
        for c in categories:
            by_name.setdefault(c.name, c)
        errors: list[str] = []
        table: dict[int, int | _Ignore] = {}
        named_by: dict[int, str] = {}

        def find(entry: int | str, owner: str) -> SourceCategory | None:
            cat = by_name.get(entry) if isinstance(entry, str) else by_id.get(entry)
            if cat is None:
                kind = "name" if isinstance(entry, str) else "id"
                errors.append(f"{owner}: {dataset} has no category with {kind} {entry!r}")
            return cat

        def assign(cat: SourceCategory, value: int | _Ignore, owner: str) -> None:
            if cat.id in table:
                errors.append(
                    f"{dataset} category {cat.name!r} (id {cat.id}) is mapped twice: "
                    f"by {named_by[cat.id]} and by {owner}"
                )
                return
            table[cat.id] = value
            named_by[cat.id] = owner

        for cls in self.classes:
            owner = f"class {cls.name!r} (train id {cls.id})"
            for entry in _entries_for(cls.sources, dataset):
                cat = find(entry, owner)
                if cat is None:
                    continue
                if cls.is_thing and not cat.is_thing:
                    errors.append(
                        f"{owner} is a thing class but {dataset} category {cat.name!r} "
                        f"(id {cat.id}) is stuff"
                    )
                assign(cat, cls.id, owner)
        for entry in _entries_for(self.ignore, dataset):
            cat = find(entry, "ignore")
            if cat is not None:
                assign(cat, IGNORE, "ignore")
        if not named_by and not errors:
            datasets = sorted(
                {d for c in self.classes for d in c.sources} | set(self.ignore)
            )
            errors.append(
                f"the map names no {dataset} category (its sources are for: "
                f"{', '.join(datasets) or 'none'}); a map must say how {dataset} maps"
            )
        unmapped = [c for c in categories if c.id not in table]
        if unmapped and self.unmapped == "error":
            listed = ", ".join(f"{c.name!r} (id {c.id})" for c in unmapped[:20])
            more = f" and {len(unmapped) - 20} more" if len(unmapped) > 20 else ""
            errors.append(
                f"{len(unmapped)} {dataset} categories are not mapped: {listed}{more}; map them, "
                "list them under ignore, or set unmapped: ignore or unmapped: background"
            )
        elif unmapped:
            fallback: int | _Ignore = IGNORE
            if self.unmapped == "background":
                assert self.background is not None
                fallback = self.background
                bg = self.class_by_id(self.background)
                things = [c.name for c in unmapped if not c.is_thing]
                if bg.is_thing and things:
                    errors.append(
                        f"background class {bg.name!r} is a thing class but would receive "
                        f"unmapped stuff categories {things[:5]}"
                    )
            for c in unmapped:
                table[c.id] = fallback
        if errors:
            raise ClassMapError(f"{where}: " + "; ".join(errors))
        return ResolvedMap(
            dataset,
            table,
            thing_sources=frozenset(c.id for c in categories if c.is_thing),
            stuff_classes=frozenset(c.id for c in self.classes if not c.is_thing),
        )

    def lookup(
        self, category: int | str | SourceCategory, categories: Sequence[SourceCategory],
        dataset: str,
    ) -> int | _Ignore:
        """The train id (or :data:`IGNORE`) of one source category, given by id or name."""
        table = self.resolve(categories, dataset).table
        if isinstance(category, SourceCategory):
            category = category.id
        if isinstance(category, str):
            matches = [c.id for c in categories if c.name == category]
            if not matches:
                raise KeyError(f"{dataset} has no category named {category!r}")
            category = matches[0]
        if category not in table:
            raise KeyError(f"{dataset} has no category with id {category}")
        return table[category]

    def class_by_id(self, train_id: int) -> MapClass:
        for cls in self.classes:
            if cls.id == train_id:
                return cls
        raise KeyError(f"class map {self.name!r} has no train id {train_id}")

    def dataset_info(
        self,
        *,
        label_divisor: int,
        resolved: ResolvedMap | None = None,
    ) -> DatasetInfo:
        """The label space as :class:`DatasetInfo`.

        Args:
            label_divisor: used when the map does not set one (the converter's default:
                256 for COCO, 1000 for Cityscapes).
            resolved: when given, each class's ``source_ids`` lists the source category ids
                mapped onto it; otherwise they are empty (a map over several datasets).
        """
        sources: dict[int, list[int]] = {}
        if resolved is not None:
            for src, train_id in sorted(resolved.train_ids().items()):
                sources.setdefault(train_id, []).append(src)
        classes = tuple(
            ClassInfo(
                id=c.id,
                name=c.name,
                is_thing=c.is_thing,
                color=c.color,
                source_ids=tuple(sources.get(c.id, ())),
            )
            for c in sorted(self.classes, key=lambda c: c.id)
        )
        return DatasetInfo(
            name=self.name,
            classes=classes,
            ignore_label=self.ignore_label,
            label_divisor=self.label_divisor or label_divisor,
            num_classes=self.num_classes or max(c.id for c in self.classes) + 1,
        )

    # ---------------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """The canonical form (what the manifest records); :func:`class_map_from_dict`
        reads it back."""
        out: dict[str, Any] = {"name": self.name, "ignore_label": self.ignore_label}
        for key in ("label_divisor", "num_classes", "background"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["unmapped"] = self.unmapped
        if self.ignore:
            out["ignore"] = _sources_to_dict(self.ignore)
        out["classes"] = [
            {
                "id": c.id,
                "name": c.name,
                "thing": c.is_thing,
                "color": list(c.color),
                **({"sources": _sources_to_dict(c.sources)} if c.sources else {}),
            }
            for c in self.classes
        ]
        return out


# ---------------------------------------------------------------------------- loading
_TOP_KEYS = {
    "name": str, "ignore_label": int, "label_divisor": int, "num_classes": int,
    "background": int, "unmapped": str, "ignore": (list, dict), "classes": list,
}
_REQUIRED_TOP = ("name", "ignore_label", "classes")
_CLASS_KEYS = {"id": int, "name": str, "thing": bool, "color": list, "sources": (list, dict)}
_REQUIRED_CLASS = ("id", "name", "thing")


def load_class_map(path_or_name: str) -> ClassMap:
    """Load a class map file (``.json``, ``.yaml``, ``.yml``) or a shipped map by name
    (one of :data:`BUILTIN_MAPS`).

    Raises:
        ClassMapError: the file is missing, unparsable or breaks a rule; the message names it.
    """
    if path_or_name in BUILTIN_MAPS and not os.path.exists(path_or_name):
        ref = resources.files("panseg.datasets").joinpath(f"data/classmaps/{path_or_name}.yaml")
        return _parse(ref.read_text(encoding="utf-8"), f"<builtin {path_or_name}>", yaml=True)
    try:
        text = fsio.read_bytes(path_or_name).decode("utf-8")  # a local path or a URL
    except OSError as exc:
        builtin = ", ".join(BUILTIN_MAPS)
        raise ClassMapError(
            f"class map {path_or_name}: cannot read it ({exc.strerror or exc}); "
            f"shipped maps: {builtin}"
        ) from None
    is_yaml = not path_or_name.lower().endswith(".json")
    return _parse(text, path_or_name, yaml=is_yaml)


def builtin_class_map(name: str) -> ClassMap:
    """One of the shipped maps (:data:`BUILTIN_MAPS`)."""
    if name not in BUILTIN_MAPS:
        raise ClassMapError(f"no shipped class map {name!r}; shipped: {list(BUILTIN_MAPS)}")
    return load_class_map(name)


def _parse(text: str, where: str, *, yaml: bool) -> ClassMap:
    try:
        if yaml:
            import yaml as yaml_module

            data = yaml_module.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        raise ClassMapError(f"{where}: not valid {'YAML' if yaml else 'JSON'}: {exc}") from None
    return class_map_from_dict(data, where)


def class_map_from_dict(data: Any, where: str = "<class map>") -> ClassMap:
    """Build a :class:`ClassMap` from parsed JSON/YAML, strictly (see the module docstring)."""
    _check_keys(data, _TOP_KEYS, _REQUIRED_TOP, where)
    classes = []
    for index, entry in enumerate(data["classes"]):
        at = f"{where}: classes[{index}]"
        _check_keys(entry, _CLASS_KEYS, _REQUIRED_CLASS, at)
        color = entry.get("color")
        if color is None:
            color = _default_color(entry["id"])
        elif len(color) != 3 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color
        ):
            raise ClassMapError(f"{at}: color must be three integers in 0..255, got {color!r}")
        classes.append(
            MapClass(
                id=entry["id"],
                name=entry["name"],
                is_thing=entry["thing"],
                color=tuple(color),
                sources=_parse_sources(entry.get("sources", []), f"{at}.sources"),
            )
        )
    return ClassMap(
        name=data["name"],
        classes=tuple(classes),
        ignore_label=data["ignore_label"],
        label_divisor=data.get("label_divisor"),
        num_classes=data.get("num_classes"),
        background=data.get("background"),
        unmapped=data.get("unmapped", "error"),
        ignore=_parse_sources(data.get("ignore", []), f"{where}: ignore"),
        path=where,
    )


def _check_keys(data: Any, spec: dict, required: Sequence[str], where: str) -> None:
    if not isinstance(data, dict):
        raise ClassMapError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise ClassMapError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(spec)}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ClassMapError(f"{where}: missing key(s) {missing}")
    for key, value in data.items():
        expected = spec[key]
        bad_bool = expected is int and isinstance(value, bool)
        if bad_bool or not isinstance(value, expected):
            names = (
                " or ".join(t.__name__ for t in expected)
                if isinstance(expected, tuple)
                else expected.__name__
            )
            raise ClassMapError(f"{where}: {key} must be {names}, got {value!r}")


def _parse_sources(value: Any, where: str) -> dict[str, tuple[int | str, ...]]:
    if isinstance(value, list):
        value = {ANY_DATASET: value} if value else {}
    if not isinstance(value, dict):
        raise ClassMapError(f"{where}: expected a list or a mapping of dataset -> list")
    out: dict[str, tuple[int | str, ...]] = {}
    for dataset, entries in value.items():
        if not isinstance(entries, list):
            raise ClassMapError(f"{where}.{dataset}: expected a list of category ids or names")
        for entry in entries:
            if isinstance(entry, bool) or not isinstance(entry, (int, str)):
                raise ClassMapError(
                    f"{where}.{dataset}: {entry!r} is neither a category id nor a name"
                )
        out[str(dataset)] = tuple(entries)
    return out


def _entries_for(sources: Mapping[str, tuple[int | str, ...]], dataset: str):
    yield from sources.get(ANY_DATASET, ())
    yield from sources.get(dataset, ())


def _sources_to_dict(sources: Mapping[str, tuple[int | str, ...]]) -> Any:
    if set(sources) == {ANY_DATASET}:
        return list(sources[ANY_DATASET])
    return {k: list(v) for k, v in sources.items()}


def _default_color(train_id: int) -> list[int]:
    """A deterministic color for a class without one (the PASCAL VOC bit-interleave)."""
    r = g = b = 0
    value = int(train_id)
    for shift in range(7, -1, -1):
        r |= ((value >> 0) & 1) << shift
        g |= ((value >> 1) & 1) << shift
        b |= ((value >> 2) & 1) << shift
        value >>= 3
    return [r, g, b]


def dataset_categories(dataset: str) -> tuple[SourceCategory, ...]:
    """The categories a class map resolves against for a dataset panseg reads.

    ``coco``: the 133 COCO panoptic categories by original id (panopticapi's table);
    ``cityscapes``: the label ids 0..33 of cityscapesScripts' ``labels.py`` (things are the
    labels with ``hasInstances``), which is what the Cityscapes reader's segments carry.
    """
    if dataset == "coco":
        from panseg.datasets.coco import coco_categories

        return tuple(
            SourceCategory(c["id"], c["name"], bool(c["isthing"])) for c in coco_categories()
        )
    if dataset == "cityscapes":
        from panseg.datasets.cityscapes_labels import CITYSCAPES_LABELS

        return tuple(
            SourceCategory(lab.id, lab.name, lab.has_instances)
            for lab in CITYSCAPES_LABELS
            if lab.id >= 0
        )
    raise ValueError(f"no category table for dataset {dataset!r}; known: coco, cityscapes")
