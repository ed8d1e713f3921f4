import pytest


@pytest.fixture
def coco_tree(tmp_path):
    root = tmp_path / "coco"
    root.mkdir()
    return root
