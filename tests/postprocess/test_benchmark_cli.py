"""``panseg benchmark`` and the detectron2 file loader, on tiny inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from panseg.cli.main import main
from panseg.postprocess.bench import load_detectron2_postprocessing, time_postprocessing

TINY = ["--height", "48", "--width", "64", "--centers", "4", "--stuff-area", "32"]


def test_post_processing_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "--no-network", "--iterations", "2", *TINY]) == 0
    out = capsys.readouterr().out
    assert "post-processing panseg" in out and "spec oracle" in out
    assert "identical output: True" in out


def test_with_a_tiny_network(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["benchmark", "--iterations", "1", "--width-divisor", "8", *TINY]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "network r52 (forward only)" in out and "end to end panseg" in out


def test_user_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["benchmark", "--no-network", "--detectron2", str(tmp_path), *TINY]) == 2
    assert "post_processing.py not found" in capsys.readouterr().err
    assert main(["benchmark", "--no-network", "--nms-kernel", "4", *TINY]) == 2
    assert main(["benchmark", "--backbone", "nope", "--width-divisor", "8", *TINY]) == 2


def test_loader_accepts_a_checkout_layout(tmp_path: Path) -> None:
    # A stand-in with detectron2's layout and entry point (delegating to panseg's oracle).
    target = tmp_path / "projects/Panoptic-DeepLab/panoptic_deeplab/post_processing.py"
    target.parent.mkdir(parents=True)
    target.write_text(
        "from panseg.postprocess.reference import reference_panoptic\n"
        "def get_panoptic_segmentation(*args, **kwargs):\n"
        "    return reference_panoptic(*args, **kwargs)\n"
    )
    module = load_detectron2_postprocessing(tmp_path)
    assert callable(module.get_panoptic_segmentation)
    timing = time_postprocessing(
        height=40,
        width=60,
        num_instances=3,
        stuff_area=16,
        repeat=1,
        other_repeat=1,
        detectron2=tmp_path,
    )
    assert timing.other == "detectron2" and timing.equal


def test_random_equality_check_against_the_oracle() -> None:
    from panseg.postprocess.bench import check_equality

    assert check_equality(None, cases=12) == 0
