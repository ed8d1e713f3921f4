"""Weight import: explicit key maps from other tools' checkpoints to panseg's modules.

Every map is a function ``panseg key -> source key`` plus a list of source keys that are
knowingly dropped (classifier heads). :func:`remap_state_dict` applies one strictly: every panseg
parameter and buffer must be found with the same shape (only ``num_batches_tracked`` may be
absent), and every source key must be consumed or listed as dropped; otherwise
:class:`WeightImportError` lists the offending keys.

Sources and their names (checked against upstream code; see docs/models.md):

* ``torchvision_resnet`` -- torchvision ``torchvision/models/resnet.py`` ImageNet checkpoints
  (``conv1``, ``bn1``, ``layer{1..4}.{b}.conv{j}``/``bn{j}``/``downsample.{0,1}``, ``fc``).
* ``detectron2_resnet`` -- detectron2 ResNets and the DeepLab R52 ``R-52.pkl``
  (``stem.conv{1..3}``, ``res{2..5}.{b}.conv{j}``/``shortcut``, each conv with ``.norm``).
* ``timm_xception65`` -- timm ``xception65`` (``timm/models/xception_aligned.py``:
  ``stem.{0,1}.conv/bn``, ``blocks.{i}.stack.conv{k}.conv_dw/bn_dw/conv_pw/bn_pw``,
  ``blocks.{i}.shortcut.conv/bn``, ``head.fc``).
* ``segmentron_xception65`` -- the seed's Xception-65 (SegmenTron ``tf-xception65`` and
  ``segmentation/model/backbone/xception.py``: ``conv{1,2}``, ``bn{1,2}``,
  ``block{1..21}.sep_conv{k}.block.depthwise/bn_depth/pointwise/bn_point``,
  ``block{i}.conv``/``bn``).
* ``hrnet`` -- HRNet-Image-Classification / timm ``hrnet_w48`` / the seed's HRNet: same names
  as panseg's :class:`~panseg.models.backbones.hrnet.HRNet`; classification heads dropped.
* ``detectron2`` -- a whole Panoptic-DeepLab trained with detectron2 or the seed
  (``projects/Panoptic-DeepLab``, ``tools_d2``): ``backbone.*`` (detectron2 ResNet, or the seed's
  Xception-65 / HRNet names), ``sem_seg_head.decoder.<feature>.project_conv`` (ASPP:
  ``convs.0``, ``convs.1-3``, ``convs.4.1`` image pooling, ``project``) and ``.fuse_conv``,
  ``sem_seg_head.head``/``predictor``, ``ins_embed_head.decoder...``,
  ``ins_embed_head.center_head``/``center_predictor``/``offset_head``/``offset_predictor``.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

KeyMap = Callable[[str], str]


class WeightImportError(ValueError):
    """A checkpoint does not fit the model under the chosen key map."""


def _sub_all(key: str, rules: Sequence[tuple[str, str]]) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def _d2_conv(key: str) -> str:
    """ConvNormAct ``X.conv.weight`` -> detectron2 ``Conv2d`` ``X.weight`` (norm unchanged)."""
    return re.sub(r"(^|\.)conv\.(weight|bias)$", r"\1\2", key)


def torchvision_resnet_key(key: str) -> str:
    """panseg ResNet (basic stem) key -> torchvision ResNet key."""
    key = _sub_all(key, [
        (r"^stem\.conv1\.conv\.", "conv1."),
        (r"^stem\.conv1\.norm\.", "bn1."),
    ])
    m = re.match(r"^res(\d)\.(\d+)\.(.*)$", key)
    if not m:
        return key
    rest = _sub_all(m.group(3), [
        (r"^conv(\d)\.conv\.", r"conv\1."),
        (r"^conv(\d)\.norm\.", r"bn\1."),
        (r"^shortcut\.conv\.", "downsample.0."),
        (r"^shortcut\.norm\.", "downsample.1."),
    ])
    return f"layer{int(m.group(1)) - 1}.{m.group(2)}.{rest}"


def detectron2_resnet_key(key: str) -> str:
    """panseg ResNet key -> detectron2 ResNet key (``stem.conv1``, ``res2.0.conv1``, ...)."""
    return _d2_conv(key)


def timm_xception65_key(key: str) -> str:
    """panseg Xception65 key -> timm ``xception65`` key."""
    return _sub_all(key, [
        (r"^stem\.conv(\d)\.conv\.", lambda m: f"stem.{int(m.group(1)) - 1}.conv."),
        (r"^stem\.conv(\d)\.norm\.", lambda m: f"stem.{int(m.group(1)) - 1}.bn."),
        (r"\.shortcut\.norm\.", ".shortcut.bn."),
        (r"\.sep(\d)\.depthwise\.conv\.", r".stack.conv\1.conv_dw."),
        (r"\.sep(\d)\.depthwise\.norm\.", r".stack.conv\1.bn_dw."),
        (r"\.sep(\d)\.pointwise\.conv\.", r".stack.conv\1.conv_pw."),
        (r"\.sep(\d)\.pointwise\.norm\.", r".stack.conv\1.bn_pw."),
    ])


def segmentron_xception65_key(key: str) -> str:
    """panseg Xception65 key -> the seed's / SegmenTron's Xception65 key."""
    key = _sub_all(key, [
        (r"^stem\.conv(\d)\.conv\.", r"conv\1."),
        (r"^stem\.conv(\d)\.norm\.", r"bn\1."),
    ])
    m = re.match(r"^blocks\.(\d+)\.(.*)$", key)
    if not m:
        return key
    rest = _sub_all(m.group(2), [
        (r"^shortcut\.conv\.", "conv."),
        (r"^shortcut\.norm\.", "bn."),
        (r"^sep(\d)\.depthwise\.conv\.", r"sep_conv\1.block.depthwise."),
        (r"^sep(\d)\.depthwise\.norm\.", r"sep_conv\1.block.bn_depth."),
        (r"^sep(\d)\.pointwise\.conv\.", r"sep_conv\1.block.pointwise."),
        (r"^sep(\d)\.pointwise\.norm\.", r"sep_conv\1.block.bn_point."),
    ])
    return f"block{int(m.group(1)) + 1}.{rest}"


def hrnet_key(key: str) -> str:
    """panseg HRNet key -> HRNet-Image-Classification / timm / seed key (identical)."""
    return key


HRNET_DROPPED = (r"^incre_modules\.", r"^downsamp_modules\.", r"^final_layer\.", r"^classifier\.")

BACKBONE_MAPS: dict[str, tuple[KeyMap, tuple[str, ...]]] = {
    "torchvision_resnet": (torchvision_resnet_key, (r"^fc\.",)),
    "detectron2_resnet": (detectron2_resnet_key, (r"^fc\.", r"^linear\.")),
    "timm_xception65": (timm_xception65_key, (r"^head\.",)),
    "segmentron_xception65": (segmentron_xception65_key, (r"^fc\.",)),
    "hrnet": (hrnet_key, HRNET_DROPPED),
}


def _detectron2_head_key(key: str) -> str:
    rules = [
        (r"^sem_head\.tower\.", "sem_seg_head.head."),
        (r"^sem_head\.predictor\.", "sem_seg_head.predictor."),
        (r"^center_head\.tower\.", "ins_embed_head.center_head."),
        (r"^center_head\.predictor\.", "ins_embed_head.center_predictor."),
        (r"^offset_head\.tower\.", "ins_embed_head.offset_head."),
        (r"^offset_head\.predictor\.", "ins_embed_head.offset_predictor."),
    ]
    return _d2_conv(_sub_all(key, rules))


def detectron2_key_map(model: nn.Module) -> KeyMap:
    """Key map panseg ``PanopticDeepLab`` -> detectron2 ``PanopticDeepLab`` checkpoint."""
    from .backbones.hrnet import HRNet
    from .backbones.resnet import ResNet
    from .backbones.xception import Xception65

    backbone = model.backbone
    if isinstance(backbone, ResNet):
        bmap: KeyMap = detectron2_resnet_key
    elif isinstance(backbone, Xception65):
        bmap = segmentron_xception65_key
    elif isinstance(backbone, HRNet):
        bmap = hrnet_key
    else:
        raise WeightImportError(
            f"no detectron2 key map for backbone {type(backbone).__name__}; load its weights "
            "with remap_state_dict and your own key map"
        )
    aspp_feature = model.sem_decoder.aspp_feature

    def key_map(key: str) -> str:
        if key.startswith("backbone."):
            return "backbone." + bmap(key[len("backbone."):])
        m = re.match(r"^(sem|ins)_decoder\.(aspp|project|fuse)\.(.*)$", key)
        if m:
            head = "sem_seg_head" if m.group(1) == "sem" else "ins_embed_head"
            part, rest = m.group(2), m.group(3)
            if part == "aspp":
                rest = _sub_all(rest, [
                    (r"^conv1x1\.", "convs.0."),
                    (r"^atrous\.(\d)\.", lambda mm: f"convs.{int(mm.group(1)) + 1}."),
                    (r"^pool_conv\.", "convs.4.1."),
                ])
                return _d2_conv(f"{head}.decoder.{aspp_feature}.project_conv.{rest}")
            feature, rest = rest.split(".", 1)
            slot = "project_conv" if part == "project" else "fuse_conv"
            return _d2_conv(f"{head}.decoder.{feature}.{slot}.{rest}")
        return _detectron2_head_key(key)

    return key_map


def _to_tensor(value: Any, key: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray) or np.isscalar(value):
        return torch.from_numpy(np.array(value))
    raise WeightImportError(f"checkpoint entry {key!r} is a {type(value).__name__}, not an array")


def remap_state_dict(
    model: nn.Module,
    source: Mapping[str, Any],
    key_map: KeyMap,
    *,
    dropped: Sequence[str] = (),
    source_name: str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """Return ``model``'s state dict filled from ``source`` through ``key_map``.

    ``source`` values may be tensors or NumPy arrays (detectron2 ``.pkl``). ``dropped`` are
    regexes of source keys that are knowingly unused. Raises :class:`WeightImportError`
    listing missing keys, shape mismatches and unconsumed source keys.
    """
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    missing, shapes, used = [], [], set()
    for key, ref in target.items():
        skey = key_map(key)
        if skey not in source:
            if key.endswith("num_batches_tracked"):
                out[key] = ref
                continue
            missing.append(f"{key} (expected {skey!r})")
            continue
        value = _to_tensor(source[skey], skey)
        if tuple(value.shape) != tuple(ref.shape):
            shapes.append(f"{skey}: {tuple(value.shape)} vs panseg {key}: {tuple(ref.shape)}")
            continue
        out[key] = value.to(dtype=ref.dtype)
        used.add(skey)
    unused = [
        k for k in source
        if k not in used and not k.endswith("num_batches_tracked")
        and not any(re.search(p, k) for p in dropped)
    ]
    problems = []
    for title, items in (("missing", missing), ("shape mismatch", shapes), ("unused", unused)):
        if items:
            shown = "; ".join(items[:8]) + (f"; ... ({len(items)} in all)" if len(items) > 8 else "")
            problems.append(f"{title}: {shown}")
    if problems:
        raise WeightImportError(f"{source_name} does not fit {type(model).__name__}: " + " | ".join(problems))
    return out


def load_backbone_weights(
    backbone: nn.Module, source: Mapping[str, Any], fmt: str, *, prefix: str = ""
) -> None:
    """Load an ImageNet checkpoint of format ``fmt`` (a ``BACKBONE_MAPS`` key) into a panseg
    backbone. ``prefix`` (e.g. ``"backbone."``) is stripped from the source keys first."""
    if fmt not in BACKBONE_MAPS:
        raise ValueError(f"unknown weight format {fmt!r}; expected one of {sorted(BACKBONE_MAPS)}")
    key_map, dropped = BACKBONE_MAPS[fmt]
    if prefix:
        source = {k[len(prefix):]: v for k, v in source.items() if k.startswith(prefix)}
    backbone.load_state_dict(remap_state_dict(backbone, source, key_map, dropped=dropped,
                                              source_name=f"{fmt} checkpoint"))


def load_detectron2_weights(model: nn.Module, source: Mapping[str, Any]) -> None:
    """Load a detectron2 / seed Panoptic-DeepLab checkpoint (its ``"model"`` dict) into a panseg
    ``PanopticDeepLab`` with the same architecture."""
    sd = remap_state_dict(model, source, detectron2_key_map(model),
                          dropped=(r"^pixel_mean$", r"^pixel_std$"),
                          source_name="detectron2 checkpoint")
    model.load_state_dict(sd)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only builds dicts, lists and NumPy arrays (detectron2 ``.pkl`` files)."""

    ALLOWED = {
        ("collections", "OrderedDict"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights pickle")


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Minimal reader of the safetensors format (timm's Hugging Face checkpoints): an 8-byte
    little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then the
    little-endian data."""
    import json

    raw = path.read_bytes()
    if len(raw) < 8:
        raise WeightImportError(f"{path}: too short for a safetensors file")
    n = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8 : 8 + n])
    except ValueError as e:
        raise WeightImportError(f"{path}: bad safetensors header ({e})") from e
    data = memoryview(raw)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise WeightImportError(f"{path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}")
        start, end = info["data_offsets"]
        if not 0 <= start <= end <= len(data):
            raise WeightImportError(f"{path}: tensor {name!r} lies outside the file")
        flat = torch.frombuffer(bytearray(data[start:end]), dtype=dtype) if end > start else \
            torch.empty(0, dtype=dtype)
        shape = tuple(info["shape"])
        if flat.numel() != int(np.prod(shape, dtype=np.int64)):
            raise WeightImportError(f"{path}: tensor {name!r} has {flat.numel()} values for shape {shape}")
        out[name] = flat.reshape(shape)
    return out


def read_checkpoint(path: str | Path, *, trusted: bool = False) -> dict[str, Any]:
    """Read a state dict from ``.pkl`` (detectron2: pickled dict of NumPy arrays, optionally
    under ``"model"``; only arrays are unpickled), ``.pth``/``.pt`` (``torch.load`` with
    ``weights_only=True`` unless ``trusted``; unwraps ``"model"`` or ``"state_dict"``; strips
    ``module.``) or ``.safetensors`` (timm's Hugging Face checkpoints)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if path.suffix == ".pkl":
        with open(path, "rb") as f:
            try:
                obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()
            except (pickle.UnpicklingError, EOFError) as e:
                raise WeightImportError(f"{path}: not a detectron2 weights pickle ({e})") from e
    elif path.suffix in (".pth", ".pt"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=not trusted)
        except pickle.UnpicklingError as e:
            raise WeightImportError(
                f"{path}: holds objects other than tensors (e.g. an optimizer or scheduler "
                f"state); if you trust the file, pass trusted=True ({e})"
            ) from e
    else:
        raise WeightImportError(
            f"{path}: unknown checkpoint suffix (expected .pkl, .pth, .pt or .safetensors)"
        )
    if isinstance(obj, dict):
        for wrapper in ("model", "state_dict"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise WeightImportError(f"{path}: expected a dict of named arrays")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)
