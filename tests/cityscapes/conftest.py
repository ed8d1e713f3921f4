"""Shared Cityscapes trees: the synthetic raw tree, and a copy prepared by cityscapesScripts."""

import contextlib
import glob
import io
import shutil

import pytest

from panseg.datasets.synthetic_cityscapes import synth_cityscapes


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes_raw")
    synth_cityscapes(str(root), images_per_city=2, height=64, width=128, seed=3)
    return root


@pytest.fixture(scope="session")
def cs_prepared_root(synth_root, tmp_path_factory):
    """The synthetic tree after csCreateTrainIdLabelImgs and csCreatePanopticImgs
    --use-train-id (cityscapesScripts itself, the oracle)."""
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    root = tmp_path_factory.mktemp("cityscapes_prepared") / "cs"
    shutil.copytree(synth_root, root)
    for path in glob.glob(str(root / "gtFine" / "*" / "*" / "*_labelTrainIds.png")):
        shutil.os.remove(path)
    for path in sorted(glob.glob(str(root / "gtFine" / "*" / "*" / "*_polygons.json"))):
        json2labelImg(path, path.replace("_polygons.json", "_labelTrainIds.png"), "trainIds")
    with contextlib.redirect_stdout(io.StringIO()):
        convert2panoptic(str(root / "gtFine"), None, True, ["train", "val", "test"])
    return root
