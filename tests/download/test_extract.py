"""Atomic zip extraction: nested panoptic zips, merging, damaged and unsafe archives."""

from __future__ import annotations

import zipfile

import pytest

from panseg.download.extract import ExtractError, _split, extract_zip, temp_dir_for


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_panoptic_archive_with_nested_png_zips(tmp_path, dl):
    blobs = dl.coco_like()
    archive = tmp_path / "panoptic_annotations_trainval2017.zip"
    archive.write_bytes(blobs[archive.name])
    root = tmp_path / "coco"
    names = extract_zip(archive, root, nested=("annotations/panoptic_train2017.zip",
                                               "annotations/panoptic_val2017.zip"),
                        workers=3, progress=False)
    assert names == ["annotations"]
    assert _tree(root) == [
        "annotations/panoptic_train2017.json",
        "annotations/panoptic_train2017/000000000009.png",
        "annotations/panoptic_train2017/000000000025.png",
        "annotations/panoptic_train2017/000000000030.png",
        "annotations/panoptic_val2017.json",
        "annotations/panoptic_val2017/000000000139.png",
        "annotations/panoptic_val2017/000000000285.png",
    ]
    assert (root / "annotations/panoptic_val2017/000000000285.png").read_bytes() == \
        dl.random_bytes(5000, 300 + 285)
    assert not temp_dir_for(archive, root).exists()


def test_two_archives_merge_into_one_annotations_directory(tmp_path, dl):
    blobs = dl.coco_like()
    root = tmp_path / "coco"
    for name in ("annotations_trainval2017.zip", "panoptic_annotations_trainval2017.zip"):
        (tmp_path / name).write_bytes(blobs[name])
    extract_zip(tmp_path / "annotations_trainval2017.zip", root, progress=False)
    extract_zip(tmp_path / "panoptic_annotations_trainval2017.zip", root, progress=False)
    assert {p.name for p in (root / "annotations").iterdir()} == {
        "instances_train2017.json", "instances_val2017.json", "panoptic_train2017.json",
        "panoptic_val2017.json", "panoptic_train2017.zip", "panoptic_val2017.zip"}


def test_every_member_is_byte_exact_with_many_threads(tmp_path, dl):
    members = {f"train2017/{i:012d}.jpg": dl.random_bytes(100 + 37 * i, i) for i in range(40)}
    archive = tmp_path / "train2017.zip"
    archive.write_bytes(dl.make_zip(members, stored=False))
    extract_zip(archive, tmp_path / "root", workers=5, progress=False)
    for name, data in members.items():
        assert (tmp_path / "root" / name).read_bytes() == data


def test_split_keeps_every_member_once_in_order():
    infos = []
    for i in range(13):
        info = zipfile.ZipInfo(f"m{i}")
        info.compress_size = 1 + i % 4
        infos.append(info)
    for parts in (1, 2, 3, 13, 20):
        chunks = _split(infos, parts)
        assert [i for c in chunks for i in c] == infos
        assert len(chunks) <= parts


def test_damaged_member_names_it_and_leaves_root_untouched(tmp_path, dl):
    data = dl.make_zip({"val2017/000000000139.jpg": dl.random_bytes(3000, 1),
                     "val2017/000000000285.jpg": dl.random_bytes(3000, 2)})
    bad = bytearray(data)
    second = bytes(bad).index(dl.random_bytes(3000, 2)[:64])
    bad[second + 100] ^= 0x55  # stored member: its CRC-32 no longer matches
    archive = tmp_path / "val2017.zip"
    archive.write_bytes(bytes(bad))
    root = tmp_path / "coco"
    with pytest.raises(ExtractError, match=r"val2017\.zip: member 'val2017/000000000285\.jpg' is "
                                           r"damaged .*CRC"):
        extract_zip(archive, root, progress=False)
    assert list(root.iterdir()) == []


def test_unsafe_member_name_is_refused(tmp_path, dl):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(dl.make_zip({"../escape.txt": b"x"}))
    with pytest.raises(ExtractError, match=r"evil\.zip: unsafe member name '\.\./escape\.txt'"):
        extract_zip(archive, tmp_path / "root", progress=False)
    assert not (tmp_path / "escape.txt").exists()


def test_not_a_zip_and_missing_nested_zip(tmp_path, dl):
    archive = tmp_path / "junk.zip"
    archive.write_bytes(b"<html>not a zip</html>")
    with pytest.raises(ExtractError, match=r"junk\.zip: not a readable zip"):
        extract_zip(archive, tmp_path / "root", progress=False)
    archive.write_bytes(dl.make_zip({"annotations/panoptic_val2017.json": b"{}"}))
    with pytest.raises(ExtractError, match="nested archive annotations/panoptic_val2017.zip"):
        extract_zip(archive, tmp_path / "root", nested=("annotations/panoptic_val2017.zip",),
                    progress=False)
    assert list((tmp_path / "root").iterdir()) == []


def test_stale_temporary_directory_of_a_killed_run_is_replaced(tmp_path, dl):
    archive = tmp_path / "val2017.zip"
    archive.write_bytes(dl.make_zip({"val2017/a.jpg": b"abc"}))
    root = tmp_path / "coco"
    stale = temp_dir_for(archive, root)
    (stale / "val2017").mkdir(parents=True)
    (stale / "val2017" / "half-written.jpg").write_bytes(b"ab")
    extract_zip(archive, root, progress=False)
    assert _tree(root) == ["val2017/a.jpg"]
