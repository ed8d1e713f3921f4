"""Merge a semantic map and class-agnostic instance ids into a panoptic map.

Reference behaviour (detectron2 ``merge_semantic_and_instance``; see ``docs/postprocess.md``):

* every pixel starts as ``void_label``;
* instance ids are visited in increasing order; an instance's *thing pixels* are its pixels with
  ``instance > 0`` and ``thing_seg > 0``; an instance with none is skipped; its class is the most
  frequent semantic label over its thing pixels (ties: the smallest label, as ``torch.mode`` on
  CPU); a per-class counter numbers instances 1, 2, ... in that visiting order and the pixels get
  ``class * label_divisor + number``;
* every semantic label that is not in ``thing_ids`` and whose pixels with ``instance == 0`` number
  at least ``stuff_area`` paints those pixels ``class * label_divisor``; everything else stays void.

The fast path works on the foreground pixels only (``instance != 0`` implies ``thing_seg != 0``)
and replaces the per-instance and per-class full-image passes with one count over
(instance, class) pairs, one count of the semantic map and one lookup table.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = [
    "merge_codes",
    "merge_semantic_and_instance",
    "number_instances",
    "semantic_codes",
    "thing_lookup",
]

# Above this many bins a sort-based count is used instead of a dense count.
_MAX_BINS = 1 << 24


def _codes(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted table [U], code [n] in [0, U)) with ``table[code] == values``.

    For integers spanning a small range the table is that whole range (values absent from the
    input are included); otherwise it holds the distinct values.
    """
    if values.numel() and not values.is_floating_point():
        lo, hi = (int(v) for v in torch.aminmax(values))
        if hi - lo + 1 <= max(1 << 16, 4 * values.numel()):
            table = torch.arange(lo, hi + 1, dtype=values.dtype, device=values.device)
            return table, values - lo
    table, code = torch.unique(values, sorted=True, return_inverse=True)
    return table, code


def _count(codes: torch.Tensor, size: int) -> torch.Tensor:
    """int64 [size] occurrences of each value of ``codes`` (int64 in [0, size)).

    ``index_add_`` of ones: ``bincount`` would first scan the codes for their min and max.
    """
    ones = torch.ones(1, dtype=torch.long, device=codes.device).expand(codes.numel())
    return torch.zeros(size, dtype=torch.long, device=codes.device).index_add_(0, codes, ones)


def number_instances(classes: torch.Tensor) -> torch.Tensor:
    """Per-class running number (1, 2, ...) of items listed in order.

    Args:
        classes: int64 [U], the class of each item in visiting order.

    Returns:
        int64 [U]: ``1 + number of earlier items with the same class``.
    """
    if classes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=classes.device)
    order = torch.argsort(classes, stable=True)
    sorted_classes = classes[order]
    positions = torch.arange(classes.numel(), device=classes.device)
    starts = torch.ones_like(sorted_classes, dtype=torch.bool)
    starts[1:] = sorted_classes[1:] != sorted_classes[:-1]
    group_start = torch.cummax(torch.where(starts, positions, 0), dim=0).values
    numbers = torch.empty_like(classes)
    numbers[order] = positions - group_start + 1
    return numbers


def _majority(codes: torch.Tensor, labels: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Most frequent label per code, smallest label on ties.

    codes: int64 [n] in [0, num_codes); labels: int64 [n]. Returns [num_codes] (codes without
    pixels get an arbitrary label).
    """
    label_values, label_code = _codes(labels)
    num_labels = label_values.numel()
    if num_codes * num_labels <= _MAX_BINS:
        counts = _count(codes * num_labels + label_code, num_codes * num_labels)
        winner = torch.argmax(counts.view(num_codes, num_labels), dim=1)  # first max
        return label_values[winner]
    # Many (code, label) pairs: count distinct pairs by sorting.
    pairs, pair_counts = torch.unique(codes * num_labels + label_code, return_counts=True)
    pair_code = torch.div(pairs, num_labels, rounding_mode="floor")
    # Sort by (code, -count, label) and keep the first pair of each code.
    key = torch.argsort(pairs % num_labels, stable=True)
    key = key[torch.argsort(-pair_counts[key], stable=True)]
    key = key[torch.argsort(pair_code[key], stable=True)]
    first = torch.ones(key.numel(), dtype=torch.bool, device=codes.device)
    first[1:] = pair_code[key][1:] != pair_code[key][:-1]
    winners = torch.zeros(num_codes, dtype=label_values.dtype, device=codes.device)
    winners[pair_code[key][first]] = label_values[pairs[key][first] % num_labels]
    return winners


def semantic_codes(semantic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(table [U], code [H*W]) of an integer [H, W] semantic map, ``table[code] == labels``.

    ``table`` is sorted; it may list labels that do not occur.
    """
    flat = semantic.reshape(-1).to(torch.long)
    if flat.numel():
        lo, hi = (int(v) for v in torch.aminmax(flat))
        if hi - lo + 1 <= max(1 << 16, 4 * flat.numel()):
            table = torch.arange(lo, hi + 1, dtype=torch.long, device=flat.device)
            return table, flat if lo == 0 else flat - lo
    return _codes(flat)


def merge_codes(
    table: torch.Tensor,
    code: torch.Tensor,
    fg_index: torch.Tensor,
    fg_instance: torch.Tensor,
    fg_thing: torch.Tensor | None,
    thing_table: torch.Tensor,
    label_divisor: int,
    stuff_area: int,
    void_label: int,
) -> torch.Tensor:
    """:func:`merge_semantic_and_instance` on coded labels (see :func:`semantic_codes`).

    ``thing_table`` is bool [U]: whether ``table[u]`` is a thing. Returns int64 [H*W].
    """
    # Stuff: area of each label over pixels with instance == 0.
    area = _count(code, table.numel())
    fg_code = code[fg_index]
    if fg_index.numel():
        area -= _count(fg_code, table.numel())
    keep_stuff = (~thing_table) & (area >= stuff_area)
    lut = torch.where(keep_stuff, table * label_divisor, torch.full_like(table, void_label))
    panoptic = lut.index_select(0, code)
    if fg_index.numel() == 0:
        return panoptic
    if fg_thing is not None:
        panoptic[fg_index] = void_label  # foreground but not thing: void (else overwritten)

    # Things: majority class per instance id, numbered per class in increasing id order.
    if fg_thing is None:
        thing_index, thing_instance, thing_code = fg_index, fg_instance, fg_code
    else:
        thing_index, thing_instance = fg_index[fg_thing], fg_instance[fg_thing]
        thing_code = fg_code[fg_thing]
    if thing_index.numel():
        ids, id_code = _codes(thing_instance)
        present = torch.nonzero(_count(id_code, ids.numel())).squeeze(1)
        classes = _majority(id_code, table[thing_code], ids.numel())[present]
        values = torch.zeros_like(ids, dtype=torch.long)
        values[present] = classes * label_divisor + number_instances(classes)
        panoptic[thing_index] = values[id_code]
    return panoptic


def thing_lookup(table: torch.Tensor, thing_ids: Iterable[int]) -> torch.Tensor:
    """bool [U]: which labels of ``table`` are in ``thing_ids``."""
    things = torch.tensor(sorted({int(t) for t in thing_ids}), dtype=torch.long)
    if table.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=table.device)
    lo, hi = int(table[0]), int(table[-1])
    if hi - lo + 1 == table.numel():  # a range: scatter instead of isin
        lookup = torch.zeros(table.numel(), dtype=torch.bool)
        things = things[(things >= lo) & (things <= hi)]
        lookup[things - lo] = True
        return lookup.to(table.device)
    return torch.isin(table, things.to(table.device))


def merge_semantic_and_instance(
    semantic: torch.Tensor,
    fg_index: torch.Tensor,
    fg_instance: torch.Tensor,
    fg_thing: torch.Tensor | None,
    thing_ids: Iterable[int],
    label_divisor: int,
    stuff_area: int,
    void_label: int,
) -> torch.Tensor:
    """Panoptic map of one image from foreground pixels' instance ids.

    Args:
        semantic: integer [H, W] semantic labels (any integers).
        fg_index: int64 [n] raster indices of the pixels whose instance id is non-zero, in
            increasing order (empty when no center was found).
        fg_instance: [n] their instance ids (integer or float; compared by value).
        fg_thing: bool [n], ``instance > 0 and thing_seg > 0`` at those pixels, or None when
            that holds for all of them.
        thing_ids: semantic labels that are things (never painted as stuff).
        label_divisor: panoptic id = class * label_divisor + instance number.
        stuff_area: minimum stuff area (pixels with instance 0) to keep a stuff class.
        void_label: value of unassigned pixels.

    Returns:
        int64 [H, W] panoptic map, equal to detectron2's ``merge_semantic_and_instance``.
    """
    height, width = semantic.shape
    table, code = semantic_codes(semantic)
    panoptic = merge_codes(
        table,
        code,
        fg_index,
        fg_instance,
        fg_thing,
        thing_lookup(table, thing_ids),
        label_divisor,
        stuff_area,
        void_label,
    )
    return panoptic.view(height, width)
