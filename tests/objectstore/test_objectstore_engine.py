"""Training data, checkpoints and evaluation inputs/outputs on s3:// (local moto server)."""

from __future__ import annotations

import json

import pytest

from panseg import fsio
from panseg.cli.main import main

torch = pytest.importorskip("torch")


def test_train_loader_and_checkpoints_on_s3(coco_records, bucket, s3_options, upload_tree):
    from panseg.engine.checkpoint import last_checkpoint, load_checkpoint, save_checkpoint
    from panseg.engine.config import DataConfig
    from panseg.engine.data import build_eval_dataset, build_train_loader
    from panseg.records.manifest import load_manifest

    upload_tree(coco_records[1], f"{bucket}/records")
    # As after the CLI's --storage-option: the loader's worker process reads the bucket too.
    data = DataConfig(root=f"{bucket}/records", augment="none", crop_size=(32, 40),
                      flip=False, num_workers=1)
    loader, info = build_train_loader(data, batch_size=2, seed=0, rank=0, world_size=1)
    batch = next(iter(loader))
    assert tuple(batch["image"].shape) == (2, 3, 32, 40)
    assert info == load_manifest(coco_records[1]).dataset
    assert len(list(build_eval_dataset(f"{bucket}/records", "val"))) == 2

    run = f"{bucket}/run"
    save_checkpoint(run, {"step": 3, "w": torch.arange(4.0)})
    path = save_checkpoint(run, {"step": 7, "w": torch.ones(2)}, keep=1)
    assert last_checkpoint(run) == path == f"{run}/checkpoints/model_0000007.pt"
    assert fsio.listdir(f"{run}/checkpoints") == ["last_checkpoint", "model_0000007.pt"]
    state = load_checkpoint(path)
    assert state["step"] == 7 and torch.equal(state["w"], torch.ones(2))


def test_evaluate_coco_files_on_s3(coco_records, bucket, s3_options, s3_config, upload_tree,
                                   capsys):
    local_gt = f"{coco_records[0]}/annotations/panoptic_val2017.json"
    assert main(["evaluate", "--gt-json", local_gt, "--pred-json", local_gt, "--quiet",
                 "--json", f"{coco_records[0]}/pq.json"]) == 0
    want = json.loads(open(f"{coco_records[0]}/pq.json").read())

    upload_tree(f"{coco_records[0]}/annotations", f"{bucket}/annotations")
    gt = f"{bucket}/annotations/panoptic_val2017.json"
    out = f"{bucket}/results/pq.json"
    fsio.configure(None)  # the CLI options alone reach the store
    argv = ["evaluate", "--gt-json", gt, "--pred-json", gt, "--json", out, "--quiet",
            "--workers", "2"]
    assert main(argv + s3_options) == 0
    fsio.configure({"s3": s3_config})
    got = json.loads(fsio.read_bytes(out))
    assert got.pop("inputs")["gt_json"] == gt
    want.pop("inputs")
    assert got == want and got["images"] == 2


def test_class_map_from_s3(bucket, s3_options):
    from importlib import resources

    from panseg.datasets.classmap import ClassMapError, load_class_map

    text = resources.files("panseg.datasets").joinpath(
        "data/classmaps/coco_person_vehicle_animal.yaml").read_bytes()
    fsio.write_bytes_atomic(f"{bucket}/maps/pva.yaml", text)
    import dataclasses

    got = load_class_map(f"{bucket}/maps/pva.yaml")
    assert got.path == f"{bucket}/maps/pva.yaml"
    assert dataclasses.replace(got, path="") == dataclasses.replace(
        load_class_map("coco_person_vehicle_animal"), path="")
    with pytest.raises(ClassMapError, match="missing.yaml: cannot read it"):
        load_class_map(f"{bucket}/maps/missing.yaml")
