"""Batch samples of :class:`~panseg.data.records_dataset.PanopticRecordDataset`, padding to a
common size that is a multiple of ``size_divisibility`` (detectron2's ``ImageList.from_tensors``
pads the same way: bottom/right).

Padding values: the image with the mean pixel (uint8; it normalises to about 0, as detectron2
pads normalised images with 0) or with 0 for float images; ``panoptic`` with the void value;
``semantic`` with the ignore label; every other target (heatmap, offsets, weights) with 0, so
padded pixels carry no loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import get_worker_info

from panseg.data.transforms import MEAN_RGB


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``; inside a DataLoader worker the result is allocated in shared memory
    directly, as ``default_collate`` does, saving the copy the worker queue would make."""
    if get_worker_info() is None:
        return torch.stack(tensors)
    elem = tensors[0]
    storage = elem._typed_storage()._new_shared(len(tensors) * elem.numel(), device=elem.device)
    out = elem.new(storage).resize_(len(tensors), *elem.shape)
    return torch.stack(tensors, 0, out=out)


def _pad(t: torch.Tensor, height: int, width: int, value: float) -> torch.Tensor:
    dh, dw = height - t.shape[-2], width - t.shape[-1]
    if dh == 0 and dw == 0:
        return t
    return F.pad(t, (0, dw, 0, dh), value=value)


def _pad_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if image.dtype != torch.uint8:
        return _pad(image, height, width, 0.0)
    if image.shape[-2:] == (height, width):
        return image
    out = torch.tensor(MEAN_RGB, dtype=torch.uint8).view(3, 1, 1).expand(3, height, width).clone()
    out[:, : image.shape[-2], : image.shape[-1]] = image
    return out


class PanopticCollate:
    """``collate_fn`` for a DataLoader: stacks samples to N×..., padded.

    Args:
        ignore_label: padding of the semantic target.
        void_label: padding of the panoptic label (``ignore_label * label_divisor``).
        size_divisibility: the batch's H and W are rounded up to a multiple (0 or 1: none).

    Returns a dict: ``image`` N×3×H×W (the samples' dtype), ``panoptic`` N×H×W int32 (when
    every sample has one), ``targets`` {name: N×...} (when every sample has them),
    ``image_sizes`` N×2 int64 (each sample's size before padding), ``filename`` list[str],
    ``index`` int64 N.
    """

    def __init__(self, *, ignore_label: int, void_label: int, size_divisibility: int = 0):
        if size_divisibility < 0:
            raise ValueError(f"size_divisibility must be >= 0, got {size_divisibility}")
        self.ignore_label = int(ignore_label)
        self.void_label = int(void_label)
        self.size_divisibility = int(size_divisibility)

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if not samples:
            raise ValueError("cannot collate an empty batch")
        sizes = [tuple(s["image"].shape[-2:]) for s in samples]
        height = max(h for h, _ in sizes)
        width = max(w for _, w in sizes)
        d = self.size_divisibility
        if d > 1:
            height, width = -(-height // d) * d, -(-width // d) * d
        batch: dict[str, Any] = {
            "image": _stack([_pad_image(s["image"], height, width) for s in samples]),
            "image_sizes": torch.tensor(sizes, dtype=torch.int64),
            "filename": [s.get("filename", "") for s in samples],
            "index": torch.tensor([int(s.get("index", -1)) for s in samples], dtype=torch.int64),
        }
        if all("panoptic" in s for s in samples):
            batch["panoptic"] = _stack(
                [_pad(s["panoptic"], height, width, self.void_label) for s in samples]
            )
        if all("targets" in s for s in samples):
            names = samples[0]["targets"].keys()
            batch["targets"] = {
                name: _stack(
                    [
                        _pad(
                            s["targets"][name],
                            height,
                            width,
                            self.ignore_label if name == "semantic" else 0,
                        )
                        for s in samples
                    ]
                )
                for name in names
            }
        return batch
