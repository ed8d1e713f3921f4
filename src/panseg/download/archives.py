"""The official dataset archives as facts: where they live, their exact size and md5.

Every size and checksum below was taken from public sources, never guessed; the sources of each
value are listed in docs/download.md (PaddleDetection's COCO table, COCO download scripts and
dataset builders that pin the same md5s, and cityscapes-dataset.com's published package md5s).

An archive whose md5 is unknown carries ``md5=None``; it is then verified by size and by the
CRC-32 of every zip member during extraction, never by an invented checksum.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Archive:
    """One downloadable archive.

    Attributes:
        name: local file name, e.g. ``train2017.zip``.
        url_path: path below the server's base URL, e.g. ``zips/train2017.zip``.
        size: exact size in bytes.
        md5: lowercase hex md5 of the whole file, or None when no public fact is known.
        nested: paths (inside the extracted tree) of zips that must be extracted in turn into
            their own directory and then deleted, e.g. ``annotations/panoptic_val2017.zip``.
        expects: paths (relative to the dataset root) that must exist after extraction; a
            missing one means the archive is not the one the table describes.
    """

    name: str
    url_path: str
    size: int
    md5: str | None
    nested: tuple[str, ...] = ()
    expects: tuple[str, ...] = ()

    def url(self, base_url: str) -> str:
        """The archive's URL below ``base_url`` (a trailing slash on the base is optional)."""
        return base_url.rstrip("/") + "/" + self.url_path.lstrip("/")


COCO_BASE_URL = "http://images.cocodataset.org"
"""The official host. Plain HTTP as published by cocodataset.org; integrity comes from the md5."""

COCO_ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        Archive(
            name="train2017.zip",
            url_path="zips/train2017.zip",
            size=19_336_861_798,
            md5="cced6f7f71b7629ddf16f17bbcfab6b2",
            expects=("train2017",),
        ),
        Archive(
            name="val2017.zip",
            url_path="zips/val2017.zip",
            size=815_585_330,
            md5="442b8da7639aecaf257c1dceb8ba8c80",
            expects=("val2017",),
        ),
        Archive(
            name="test2017.zip",
            url_path="zips/test2017.zip",
            size=6_646_970_404,
            md5="77ad2c53ac5d0aea611d422c0938fb35",
            expects=("test2017",),
        ),
        Archive(
            name="panoptic_annotations_trainval2017.zip",
            url_path="annotations/panoptic_annotations_trainval2017.zip",
            size=860_725_834,
            md5="4170db65fc022c9c296af880dbca6055",
            nested=("annotations/panoptic_train2017.zip", "annotations/panoptic_val2017.zip"),
            expects=(
                "annotations/panoptic_train2017.json",
                "annotations/panoptic_val2017.json",
                "annotations/panoptic_train2017",
                "annotations/panoptic_val2017",
            ),
        ),
        Archive(
            name="annotations_trainval2017.zip",
            url_path="annotations/annotations_trainval2017.zip",
            size=252_907_541,
            md5="f4bbac642086de4f52a3fdda2de5fa2c",
            expects=("annotations/instances_train2017.json", "annotations/instances_val2017.json"),
        ),
    )
}

COCO_PARTS: dict[str, tuple[str, ...]] = {
    "train": ("train2017.zip",),
    "val": ("val2017.zip",),
    "test": ("test2017.zip",),
    "panoptic": ("panoptic_annotations_trainval2017.zip",),
    "instances": ("annotations_trainval2017.zip",),
}
"""``--parts`` names to archives. ``instances`` holds ``instances_*.json`` (Model Garden's image
list); ``panoptic`` holds the panoptic JSONs and the nested PNG zips."""

COCO_DEFAULT_PARTS: tuple[str, ...] = ("train", "val", "panoptic", "instances")

CITYSCAPES_BASE_URL = "https://www.cityscapes-dataset.com"

CITYSCAPES_ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        Archive(
            name="gtFine_trainvaltest.zip",
            url_path="file-handling/?packageID=1",
            size=252_567_705,
            md5="4237c19de34c8a376e9ba46b495d6f66",
            expects=("gtFine/train", "gtFine/val", "gtFine/test"),
        ),
        Archive(
            name="leftImg8bit_trainvaltest.zip",
            url_path="file-handling/?packageID=3",
            size=11_592_327_197,
            md5="0a6e97e94b616a514066c9e2adb0c97f",
            expects=("leftImg8bit/train", "leftImg8bit/val", "leftImg8bit/test"),
        ),
    )
}


def coco_archives(parts: tuple[str, ...] | list[str], table: dict[str, Archive] | None = None
                  ) -> list[Archive]:
    """The archives for ``parts`` (names of :data:`COCO_PARTS`), in table order, no duplicates.

    ``table`` replaces :data:`COCO_ARCHIVES` (tests serve tiny archives with their own facts).
    Raises ValueError naming an unknown part.
    """
    table = COCO_ARCHIVES if table is None else table
    names: list[str] = []
    for part in parts:
        if part not in COCO_PARTS:
            raise ValueError(
                f"unknown COCO part {part!r}; choose from {', '.join(COCO_PARTS)}"
            )
        for name in COCO_PARTS[part]:
            if name not in names:
                names.append(name)
    order = list(table)
    return [table[n] for n in sorted(names, key=order.index)]
