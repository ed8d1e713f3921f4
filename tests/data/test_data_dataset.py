"""PanopticRecordDataset over local shards: decoding, exactly-once with DataLoader workers,
seeded samples, indexing without a manifest, collate padding, clear errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from records_fixture import (
    cityscapes_like_info,
    example_bytes,
    make_sample,
    write_record_dir,
    write_shards,
)
from torch.utils.data import DataLoader

from panseg.data.collate import PanopticCollate
from panseg.data.decode import RecordDecodeError, decode_record
from panseg.data.records_dataset import PanopticRecordDataset
from panseg.data.targets import PanopticTargetGenerator
from panseg.data.transforms import MEAN_RGB, cityscapes_train_transforms

VOID = 255000


def test_decodes_exactly_what_was_written(tmp_path):
    write_record_dir(str(tmp_path), 7, 2)
    ds = PanopticRecordDataset(str(tmp_path), split="train")
    assert ds.num_examples == 7 and len(ds) == 7
    assert ds.info == cityscapes_like_info()
    for i, sample in enumerate(ds):
        image, panoptic = make_sample(i)
        assert sample["index"] == i and sample["filename"] == f"img{i:04d}"
        assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 24, 32)
        np.testing.assert_array_equal(sample["image"].permute(1, 2, 0).numpy(), image)
        np.testing.assert_array_equal(sample["panoptic"].numpy(), panoptic)
        assert "targets" not in sample


def test_png_labels_jpeg_images_and_unlabelled_splits():
    image, panoptic = make_sample(2)
    small = (panoptic % 60000).astype(np.int32)
    d = decode_record(example_bytes(image, small, "a", label_format="png"))
    np.testing.assert_array_equal(d["panoptic"], small)
    d = decode_record(example_bytes(image, None, "b", image_format="jpeg"))
    assert d["image"].shape == (24, 32, 3) and "panoptic" not in d
    with pytest.raises(RecordDecodeError, match="raw label has"):
        from panseg.data.decode import decode_label

        decode_label(b"\0" * 12, "raw", 2, 2, "rec 3")
    with pytest.raises(RecordDecodeError, match="not a tf.train.Example"):
        decode_record(b"\xff\xff\xff", "x.tfrecord record 0")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_dataloader_reads_every_example_once_per_rank_grid(tmp_path, num_workers):
    write_record_dir(str(tmp_path), 9, 3)
    seen = []
    for rank in range(2):
        ds = PanopticRecordDataset(
            str(tmp_path), split="train", shuffle=True, seed=3, rank=rank, world_size=2
        )
        ds.set_epoch(1)
        loader = DataLoader(ds, batch_size=None, num_workers=num_workers)
        got = [int(s["index"]) for s in loader]
        assert len(got) == len(ds)
        seen += got
    assert sorted(seen) == list(range(9))


def test_same_seed_same_sample_whichever_reader(tmp_path):
    write_record_dir(str(tmp_path), 6, 2)
    info = cityscapes_like_info()
    kwargs = dict(
        split="train",
        shuffle=True,
        seed=5,
        transforms=cityscapes_train_transforms(label_fill=VOID, crop=(16, 20), jitter=0.2),
        target_generator=PanopticTargetGenerator.for_dataset(info, sigma=2),
    )
    one = {s["index"]: s for s in PanopticRecordDataset(str(tmp_path), **kwargs)}
    other_rank = PanopticRecordDataset(str(tmp_path), rank=1, world_size=2, **kwargs)
    assert len(other_rank) == 3
    for s in other_rank:
        a = one[s["index"]]
        assert torch.equal(a["image"], s["image"]) and torch.equal(a["panoptic"], s["panoptic"])
        for k, v in s["targets"].items():
            assert torch.equal(a["targets"][k], v), k
    ds = PanopticRecordDataset(str(tmp_path), **kwargs)
    first = ds.get(4)
    ds.set_epoch(1)
    assert not torch.equal(first["image"], ds.get(4)["image"])  # a new epoch, new draw
    assert first["image"].shape == (3, 16, 20) and first["targets"]["center"].shape == (1, 16, 20)


def test_glob_without_manifest_builds_the_index(tmp_path):
    examples = [example_bytes(*make_sample(i), f"g{i}") for i in range(5)]
    write_shards(str(tmp_path), examples, 2, prefix="x")
    with pytest.raises(ValueError, match="info"):
        PanopticRecordDataset(str(tmp_path / "x-*.tfrecord"))
    ds = PanopticRecordDataset(str(tmp_path / "x-*.tfrecord"), info=cityscapes_like_info())
    assert ds.counts() == [2, 3]
    assert [s["filename"] for s in ds] == [f"g{i}" for i in range(5)]
    assert ds.decoded(3)["filename"] == "g3"
    with pytest.raises(FileNotFoundError):
        PanopticRecordDataset(str(tmp_path / "nothing-*.tfrecord"), info=cityscapes_like_info())


def test_corrupt_record_names_file_and_offset(tmp_path):
    write_record_dir(str(tmp_path), 3, 1)
    path = tmp_path / "train-00000-of-00001.tfrecord"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # inside the last record's data
    path.write_bytes(bytes(data))
    ds = PanopticRecordDataset(str(tmp_path), split="train")
    ds.get(0)
    with pytest.raises(ValueError, match=r"train-00000-of-00001.tfrecord: corrupt TFRecord"):
        ds.get(2)
    with pytest.raises(ValueError, match="choose split"):
        PanopticRecordDataset(str(tmp_path), split="val")


def test_collate_pads_to_size_divisibility(tmp_path):
    write_record_dir(str(tmp_path), 4, 1)
    info = cityscapes_like_info()
    ds = PanopticRecordDataset(
        str(tmp_path),
        split="train",
        target_generator=PanopticTargetGenerator.for_dataset(info, sigma=1),
    )
    collate = PanopticCollate(ignore_label=255, void_label=VOID, size_divisibility=16)
    samples = [ds.get(0), ds.get(1)]
    samples[1] = {**samples[1], "image": samples[1]["image"][:, :20, :30]}
    for k in ("panoptic",):
        samples[1][k] = samples[1][k][:20, :30]
    samples[1]["targets"] = {k: v[..., :20, :30] for k, v in samples[1]["targets"].items()}
    batch = collate(samples)
    assert batch["image"].shape == (2, 3, 32, 32) and batch["image"].dtype == torch.uint8
    assert batch["image_sizes"].tolist() == [[24, 32], [20, 30]]
    assert (batch["image"][1, :, 20:] == torch.tensor(MEAN_RGB).view(3, 1, 1)).all()
    assert (batch["panoptic"][1, 20:] == VOID).all() and (batch["panoptic"][0, 24:] == VOID).all()
    t = batch["targets"]
    assert t["semantic"].shape == (2, 32, 32) and t["semantic"].dtype == torch.int64
    assert (t["semantic"][0, 24:] == 255).all()
    assert t["center"].shape == (2, 1, 32, 32) and t["offset"].shape == (2, 2, 32, 32)
    for k in ("semantic_weights", "center_weights", "offset_weights"):
        assert not t[k][0, 24:].any() and not t[k][1, :, 30:].any()
    assert batch["filename"] == ["img0000", "img0001"]
    loader = DataLoader(ds, batch_size=3, collate_fn=collate)
    sizes = [b["image"].shape[0] for b in loader]
    assert sizes == [3, 1]
    # In workers the batch is built in shared memory; contents are the same.
    loader = DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=2)
    got = {}
    for b in loader:
        for j, index in enumerate(b["index"].tolist()):
            got[index] = (b["image"][j], b["targets"]["offset"][j])
    assert sorted(got) == [0, 1, 2, 3]
    for index, (image, offset) in got.items():
        want = ds.get(index)
        single = collate([want])
        assert torch.equal(image, single["image"][0])
        assert torch.equal(offset, single["targets"]["offset"][0])


def test_reads_fsspec_urls(tmp_path):
    """A memory:// copy, with and without explicit storage options (S3: test_data_s3.py)."""
    import fsspec

    write_record_dir(str(tmp_path), 3, 2)
    fs = fsspec.filesystem("memory")
    for name in os.listdir(tmp_path):
        fs.pipe(f"memory://recs/{name}", (tmp_path / name).read_bytes())
    for options in (None, {"skip_instance_cache": True}):
        ds = PanopticRecordDataset("memory://recs", split="train", storage_options=options)
        assert [s["filename"] for s in ds] == ["img0000", "img0001", "img0002"]
