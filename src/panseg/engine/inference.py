"""From a trained model to panoptic maps, PQ, COCO panoptic files and overlays.

:class:`Predictor` runs the network on uint8 RGB images and post-processes with
:func:`panseg.postprocess.panoptic_batch` (detectron2's rules), giving panoptic maps in the
dataset's convention (``semantic * label_divisor + instance``, void = ``info.void_label``), which
is what :class:`~panseg.evaluation.evaluator.PanopticEvaluator` and the overlays read.

Test-time resizing (``eval.min_size`` > 0): the image is resized as detectron2's
``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)``, and the three outputs are resized back
bilinearly to the input size before post-processing, as detectron2's ``sem_seg_postprocess``.
Unlike detectron2, the offsets are also multiplied by the resize ratio per axis, so they stay in
pixels of the output image (detectron2 leaves them in resized pixels).

COCO panoptic output (panopticapi's format, ``docs/training.md``): one PNG per image with
segment id ``R + 256·G + 256²·B`` (1, 2, ... in increasing panoptic value; 0 is void) and a JSON
``{"annotations": [{"image_id", "file_name", "segments_info": [{"id", "category_id",
"iscrowd": 0, "area", "bbox"}]}], "categories": [...]}`` where ``category_id`` is the class's
source id (the original COCO category id) when the dataset has one, else its train id.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from panseg import fsio
from panseg.data.transforms import ResizeShortestEdge, resize_image
from panseg.datasets.info import DatasetInfo
from panseg.engine.config import EvalConfig
from panseg.evaluation.evaluator import PanopticEvaluator
from panseg.postprocess import panoptic_batch


class Predictor:
    """A model in eval mode plus the post-processing settings of an :class:`EvalConfig`."""

    def __init__(
        self, model: torch.nn.Module, info: DatasetInfo, cfg: EvalConfig, device: str = "cpu"
    ) -> None:
        self.model = model
        self.info = info
        self.cfg = cfg
        self.device = torch.device(device)

    @torch.no_grad()
    def outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Network outputs at input size for uint8 N×3×H×W RGB images (see the module
        docstring for test-time resizing)."""
        was_training = self.model.training
        self.model.eval()
        try:
            h, w = int(images.shape[-2]), int(images.shape[-1])
            x = images
            if self.cfg.min_size > 0:
                nh, nw = ResizeShortestEdge.output_shape(
                    h, w, self.cfg.min_size, self.cfg.max_size or (1 << 30)
                )
                if (nh, nw) != (h, w):
                    x = torch.stack([
                        torch.from_numpy(
                            np.array(resize_image(img.permute(1, 2, 0).cpu().numpy(), nh, nw))
                        ).permute(2, 0, 1)
                        for img in images
                    ])
            x = x.to(self.device)
            out = self.model.predict(self.model.normalize(x))
            out = {k: v.float() for k, v in out.items()}
            if x.shape[-2:] != images.shape[-2:]:
                sy, sx = h / x.shape[-2], w / x.shape[-1]
                out = {
                    k: F.interpolate(v, size=(h, w), mode="bilinear", align_corners=False)
                    for k, v in out.items()
                }
                out["offset"] = out["offset"] * torch.tensor(
                    [sy, sx], device=out["offset"].device
                ).view(1, 2, 1, 1)
            return out
        finally:
            self.model.train(was_training)

    def postprocess(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """int64 N×H×W panoptic maps (dataset convention) from :meth:`outputs`."""
        result = panoptic_batch(
            out["semantic"].argmax(dim=1), out["center"], out["offset"], self.info.thing_ids,
            self.info.label_divisor, self.cfg.stuff_area, self.info.void_label,
            threshold=self.cfg.center_threshold, nms_kernel=self.cfg.nms_kernel,
            top_k=self.cfg.top_k,
        )
        return result.panoptic

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """int64 N×H×W panoptic maps for uint8 N×3×H×W RGB images."""
        return self.postprocess(self.outputs(images)).cpu().numpy()


def _same_size_batches(indices: Sequence[int], get: Callable[[int], dict], size: int):
    batch: list[dict] = []
    for index in indices:
        sample = get(index)
        if batch and (len(batch) == size or batch[0]["image"].shape != sample["image"].shape):
            yield batch
            batch = []
        batch.append(sample)
    if batch:
        yield batch


def evaluate(
    predictor: Predictor,
    dataset: Any,
    *,
    max_images: int = 0,
    progress: bool = True,
    merge: Callable[[PanopticEvaluator], PanopticEvaluator] | None = None,
    on_image: Callable[[dict, np.ndarray], None] | None = None,
) -> dict[str, Any]:
    """PQ/SQ/RQ and mIoU of ``predictor`` on the labelled records of ``dataset`` (a
    :class:`~panseg.data.PanopticRecordDataset` without shuffling, sharded over ranks).

    ``max_images`` > 0 keeps the first images of the canonical order. ``merge`` combines the
    per-rank evaluators (:func:`panseg.engine.distributed.merge_evaluator`). ``on_image(sample,
    panoptic)`` sees each prediction (overlays). Returns :meth:`PanopticEvaluator.summarize`.
    """
    from tqdm import tqdm

    evaluator = PanopticEvaluator(predictor.info)
    indices = dataset.examples_for(0, 1)
    if max_images > 0:
        indices = [i for i in indices if i < max_images]
    bar = tqdm(total=len(indices), desc="evaluate", unit="img", disable=not progress,
               leave=False)
    for batch in _same_size_batches(indices, dataset.get, predictor.cfg.batch_size):
        missing = [s.get("filename") or s["index"] for s in batch if "panoptic" not in s]
        if missing:
            raise ValueError(f"cannot evaluate records without labels: {missing[:3]}")
        images = torch.stack([s["image"] for s in batch])
        preds = predictor(images)
        for sample, pred in zip(batch, preds, strict=True):
            evaluator.update(pred, sample["panoptic"].numpy())
            if on_image is not None:
                on_image(sample, pred)
        bar.update(len(batch))
    bar.close()
    if merge is not None:
        evaluator = merge(evaluator)
    return evaluator.summarize()


def headline(summary: dict[str, Any]) -> dict[str, float | None]:
    """The flat figures logged during training: pq/sq/rq (All), pq_th, pq_st, miou, in %."""
    pan = summary["panoptic"]

    def pct(v: float | None) -> float | None:
        return None if v is None else round(100.0 * v, 3)

    out = {
        "pq": pct(pan["All"]["pq"]), "sq": pct(pan["All"]["sq"]), "rq": pct(pan["All"]["rq"]),
        "pq_th": pct(pan["Things"]["pq"]), "pq_st": pct(pan["Stuff"]["pq"]),
    }
    if "semantic" in summary:
        out["miou"] = pct(summary["semantic"].get("miou"))
    return out


# ----------------------------------------------------------------- COCO panoptic format
def coco_categories(info: DatasetInfo) -> list[dict[str, Any]]:
    """panopticapi ``categories`` entries for the dataset's classes."""
    return [
        {"id": _category_id(c), "name": c.name, "isthing": int(c.is_thing),
         "color": list(c.color)}
        for c in info.classes
    ]


def _category_id(cls: Any) -> int:
    return int(cls.source_ids[0]) if cls.source_ids else int(cls.id)


def to_coco_panoptic(
    panoptic: np.ndarray, info: DatasetInfo
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """A panoptic map -> (uint32 H×W segment ids, ``segments_info``).

    Args:
        panoptic: int H×W, ``semantic * label_divisor + instance``; void pixels are those whose
            semantic is ``info.ignore_label`` (or negative values).

    Returns:
        ids (0 = void, 1..K in increasing panoptic value) and one ``segments_info`` entry per
        segment (``bbox`` = [x, y, w, h] of its pixels, ``area`` = its pixel count).
    """
    panoptic = np.asarray(panoptic, dtype=np.int64)
    values, inverse, counts = np.unique(panoptic, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(panoptic.shape)
    semantic = values // info.label_divisor
    keep = (values >= 0) & (semantic != info.ignore_label)
    seg_id = np.zeros(len(values), np.uint32)
    seg_id[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    ids = seg_id[inverse]
    segments = []
    for k in np.flatnonzero(keep):
        cls = info.class_by_id(int(semantic[k]))
        ys, xs = np.nonzero(inverse == k)
        segments.append({
            "id": int(seg_id[k]), "category_id": _category_id(cls), "iscrowd": 0,
            "area": int(counts[k]),
            "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                     int(ys.max() - ys.min() + 1)],
        })
    return ids, segments


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """uint32 H×W ids -> uint8 H×W×3 (R + 256 G + 256² B, panopticapi's ``id2rgb``)."""
    ids = np.asarray(ids, dtype=np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


class CocoPanopticWriter:
    """Writes ``OUT/panoptic/NAME.png`` per image, then ``OUT/panoptic.json`` on close."""

    def __init__(self, out_dir: str, info: DatasetInfo) -> None:
        self.out_dir = out_dir
        self.info = info
        self.annotations: list[dict[str, Any]] = []
        fsio.makedirs(fsio.join(out_dir, "panoptic"))

    def add(self, name: str, panoptic: np.ndarray, image_id: int | str | None = None) -> None:
        ids, segments = to_coco_panoptic(panoptic, self.info)
        file_name = f"{name}.png"
        fsio.write_bytes_atomic(fsio.join(self.out_dir, "panoptic", file_name),
                                png_bytes(ids_to_rgb(ids)))
        self.annotations.append({
            "image_id": name if image_id is None else image_id,
            "file_name": file_name, "segments_info": segments,
        })

    def close(self) -> str:
        path = fsio.join(self.out_dir, "panoptic.json")
        data = {"annotations": self.annotations, "categories": coco_categories(self.info)}
        fsio.write_bytes_atomic(path, json.dumps(data).encode("utf-8"))
        return path


def read_images(paths: Iterable[str]) -> Iterable[tuple[str, np.ndarray]]:
    """``(path, uint8 H×W×3 RGB)`` for each image file (any Pillow format)."""
    for path in paths:
        try:
            with Image.open(io.BytesIO(fsio.read_bytes(path))) as img:
                yield path, np.array(img.convert("RGB"), dtype=np.uint8)
        except FileNotFoundError:
            raise FileNotFoundError(f"image {path} does not exist") from None
        except OSError as exc:
            raise ValueError(f"image {path}: cannot decode ({exc})") from None
