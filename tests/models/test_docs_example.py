"""The custom-backbone example of docs/models.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def test_custom_backbone_example_runs():
    text = DOC.read_text()
    marker = "<!-- custom-backbone-example -->"
    assert marker in text
    block = re.search(r"```python\n(.*?)```", text[text.index(marker):], re.S)
    assert block is not None
    namespace: dict = {}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    model = namespace["model"]
    assert model.sem_decoder.aspp.pool_kernel_size == (32, 64)
    assert set(namespace["out"]) == {"semantic", "center", "offset"}
