"""Export a PanopticDeepLab to TorchScript and ONNX, and check the result against eager mode.

Both exports take the normalised image batch (N×3×H×W float32) and return the tuple
``(semantic, center, offset)`` -- the same tensors as ``model(images)`` in eval mode. They are
traced at the example's spatial size: padding, the ASPP pooling window and the crop are fixed
to that size (the batch dimension stays dynamic in ONNX), so export once per deployment size.
TorchScript is deprecated from torch 2.13 on (it still works; the warnings are silenced here).
ONNX uses the TorchScript-based exporter (``dynamo=False``) at opset 17; it needs the ``onnx``
package (``pip install panseg[export]``), and the check needs ``onnxruntime``.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

OUTPUT_NAMES = ("semantic", "center", "offset")


class TupleOutputs(nn.Module):
    """Wraps a model so that ``forward(images)`` returns (semantic, center, offset)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model.predict(images)
        return out["semantic"], out["center"], out["offset"]


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Trace ``model`` (switched to eval mode) on ``example`` (N×3×H×W float) and save it."""
    path = Path(path)
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in 2.13
        traced = torch.jit.trace(TupleOutputs(model).eval(), (example,), check_trace=False)
    tmp = _atomic_target(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(traced, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: str | Path, *, opset: int = 17
) -> Path:
    """Export ``model`` (eval mode) to ONNX at ``example``'s size with a dynamic batch axis."""
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ImportError("ONNX export needs the onnx package: pip install 'panseg[export]'") from e
    path = Path(path)
    model.eval()
    tmp = _atomic_target(path)
    dynamic = {name: {0: "batch"} for name in ("images", *OUTPUT_NAMES)}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # an eval-mode wrapper: the exporter restores the wrapper's mode recursively
            torch.onnx.export(
                TupleOutputs(model).eval(), (example,), str(tmp), opset_version=opset,
                input_names=["images"], output_names=list(OUTPUT_NAMES),
                dynamic_axes=dynamic, dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def max_abs_diff(
    eager: dict[str, torch.Tensor], exported: tuple | list
) -> dict[str, float]:
    """Largest absolute difference per output between eager outputs and an exported run."""
    return {
        name: float((eager[name].detach() - torch.as_tensor(value).detach()).abs().max())
        for name, value in zip(OUTPUT_NAMES, exported, strict=True)
    }


def run_onnx(path: str | Path, images: torch.Tensor) -> list:
    """Run an exported model with onnxruntime (CPU) and return its three outputs (NumPy)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(list(OUTPUT_NAMES), {"images": images.numpy()})
