"""Weight import: each key map on a state dict synthesized with the source's names and shapes.

The synthesized listings below are written from the upstream model definitions (names and
shapes only): torchvision ``models/resnet.py``, timm ``models/xception_aligned.py`` and
``models/hrnet.py``, detectron2 ``modeling/backbone/resnet.py``, ``projects/DeepLab/deeplab/
resnet.py``, ``layers/aspp.py``, ``projects/DeepLab/deeplab/semantic_seg.py`` and
``projects/Panoptic-DeepLab/panoptic_deeplab/panoptic_seg.py``; the seed's Xception-65 and
HRNet-48 listings are fixtures in tests/models/data.
"""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from panseg.models import ModelConfig, build_model, build_model_from_config
from panseg.models.backbones.hrnet import HRNet
from panseg.models.backbones.resnet import ResNet
from panseg.models.backbones.xception import Xception65
from panseg.models.weights import (
    BACKBONE_MAPS,
    WeightImportError,
    detectron2_key_map,
    load_backbone_weights,
    load_detectron2_weights,
    read_checkpoint,
    remap_state_dict,
    torchvision_resnet_key,
)

DATA = Path(__file__).parent / "data"
BN = ("weight", "bias", "running_mean", "running_var")
Shapes = dict[str, tuple[int, ...]]


def seed_listing(name: str) -> Shapes:
    with gzip.open(DATA / name, "rt") as f:
        return {k: tuple(v) for k, v in json.load(f).items()}


def fill(shapes: Shapes, seed: int = 0, numpy: bool = False) -> dict:
    """Every entry filled with its own constant (1 + its index + seed), so that a key mapped to
    another key of the same shape is caught by the value checks. Torch entries are expanded
    scalars (no memory), NumPy entries real arrays (for pickling)."""
    out = {}
    for i, (k, s) in enumerate(shapes.items()):
        if k.endswith("num_batches_tracked"):
            out[k] = np.array(7, dtype=np.int64) if numpy else torch.tensor(7)
        elif numpy:
            out[k] = np.full(s, 1.0 + i + seed, dtype=np.float32)
        else:
            out[k] = torch.tensor(1.0 + i + seed).expand(s)
    return out


def on_meta(build):
    """Build a full-size model without initialising weights (the key maps need shapes only)."""
    with torch.device("meta"):
        return build()


def backbone_remap(net, src, fmt):
    key_map, dropped = BACKBONE_MAPS[fmt]
    return remap_state_dict(net, src, key_map, dropped=dropped)


def assert_same(ours: torch.Tensor, theirs) -> None:
    assert np.array_equal(ours.detach().cpu().numpy(), np.asarray(theirs))


# --- torchvision ResNet ---------------------------------------------------------------------


def torchvision_resnet_shapes(depth: int) -> Shapes:
    sd: Shapes = {}

    def conv(name, cout, cin, k):
        sd[f"{name}.weight"] = (cout, cin, k, k)

    def bn(name, c):
        for n in BN:
            sd[f"{name}.{n}"] = (c,)
        sd[f"{name}.num_batches_tracked"] = ()

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    blocks = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    inp = 64
    for i, n in enumerate(blocks):
        planes = 64 * 2**i
        out = planes if depth < 50 else planes * 4
        for b in range(n):
            p = f"layer{i + 1}.{b}"
            if depth < 50:
                conv(f"{p}.conv1", planes, inp, 3), bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2", planes, planes, 3), bn(f"{p}.bn2", planes)
            else:
                conv(f"{p}.conv1", planes, inp, 1), bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2", planes, planes, 3), bn(f"{p}.bn2", planes)
                conv(f"{p}.conv3", out, planes, 1), bn(f"{p}.bn3", out)
            if b == 0 and (i > 0 or inp != out):
                conv(f"{p}.downsample.0", out, inp, 1), bn(f"{p}.downsample.1", out)
            inp = out
    sd["fc.weight"] = (1000, inp)
    sd["fc.bias"] = (1000,)
    return sd


@pytest.mark.parametrize("depth,name", [(18, "resnet18"), (50, "resnet50"), (101, "resnet101")])
def test_torchvision_resnet_map(depth, name):
    shapes = torchvision_resnet_shapes(depth)
    src = fill(shapes)
    if depth == 18:  # the public loader, on a real module
        net = ResNet(depth)
        load_backbone_weights(net, src, "torchvision_resnet")
        sd = net.state_dict()
    else:
        net = on_meta(lambda: ResNet(depth))
        sd = backbone_remap(net, src, "torchvision_resnet")
    assert_same(sd["stem.conv1.conv.weight"], src["conv1.weight"])
    assert_same(sd["res2.0.conv1.norm.running_var"], src["layer1.0.bn1.running_var"])
    last, final = len(net.res5) - 1, "conv3" if depth >= 50 else "conv2"
    assert_same(sd[f"res5.{last}.{final}.conv.weight"], src[f"layer4.{last}.{final}.weight"])
    assert_same(sd["res3.0.shortcut.norm.bias"], src["layer2.0.downsample.1.bias"])
    assert int(sd["res3.0.shortcut.norm.num_batches_tracked"]) == 7
    assert torchvision_resnet_key("res4.5.conv2.norm.weight") == "layer3.5.bn2.weight"


# --- timm / seed Xception-65, HRNet ---------------------------------------------------------


def timm_xception65_shapes() -> Shapes:
    sd: Shapes = {}

    def bn(name, c):
        for n in BN:
            sd[f"{name}.{n}"] = (c,)
        sd[f"{name}.num_batches_tracked"] = ()

    sd["stem.0.conv.weight"] = (32, 3, 3, 3)
    bn("stem.0.bn", 32)
    sd["stem.1.conv.weight"] = (64, 32, 3, 3)
    bn("stem.1.bn", 64)
    cfg = [(64, (128,) * 3), (128, (256,) * 3), (256, (728,) * 3)]
    cfg += [(728, (728,) * 3)] * 16 + [(728, (728, 1024, 1024)), (1024, (1536, 1536, 2048))]
    for i, (cin, outs) in enumerate(cfg):
        p = f"blocks.{i}"
        if i < 20 and (outs[-1] != cin or i < 3):
            sd[f"{p}.shortcut.conv.weight"] = (outs[-1], cin, 1, 1)
            bn(f"{p}.shortcut.bn", outs[-1])
        c = cin
        for k, o in enumerate(outs, start=1):
            sd[f"{p}.stack.conv{k}.conv_dw.weight"] = (c, 1, 3, 3)
            bn(f"{p}.stack.conv{k}.bn_dw", c)
            sd[f"{p}.stack.conv{k}.conv_pw.weight"] = (o, c, 1, 1)
            bn(f"{p}.stack.conv{k}.bn_pw", o)
            c = o
    sd["head.fc.weight"] = (1000, 2048)
    sd["head.fc.bias"] = (1000,)
    return sd


def test_timm_xception65_map():
    src = fill(timm_xception65_shapes())
    sd = backbone_remap(on_meta(Xception65), src, "timm_xception65")
    assert_same(sd["stem.conv2.norm.weight"], src["stem.1.bn.weight"])
    assert_same(sd["blocks.19.shortcut.conv.weight"], src["blocks.19.shortcut.conv.weight"])
    assert_same(sd["blocks.20.sep3.pointwise.conv.weight"], src["blocks.20.stack.conv3.conv_pw.weight"])
    assert_same(sd["blocks.5.sep2.depthwise.norm.running_mean"],
                src["blocks.5.stack.conv2.bn_dw.running_mean"])


def test_segmentron_xception65_and_hrnet_maps_on_seed_listings():
    src = fill(seed_listing("seed_xception65_keys.json.gz"))
    sd = backbone_remap(on_meta(Xception65), src, "segmentron_xception65")
    assert_same(sd["blocks.0.sep1.depthwise.conv.weight"], src["block1.sep_conv1.block.depthwise.weight"])
    assert_same(sd["blocks.2.shortcut.norm.bias"], src["block3.bn.bias"])
    assert_same(sd["stem.conv1.conv.weight"], src["conv1.weight"])

    shapes = seed_listing("seed_hrnet48_keys.json.gz")
    # timm / HRNet-Image-Classification add a classification head that panseg drops
    shapes |= {
        "incre_modules.0.0.conv1.weight": (32, 48, 1, 1),
        "downsamp_modules.0.0.weight": (256, 128, 3, 3),
        "final_layer.0.weight": (2048, 1024, 1, 1),
        "classifier.weight": (1000, 2048),
        "classifier.bias": (1000,),
    }
    src = fill(shapes, seed=1)
    sd = backbone_remap(on_meta(lambda: HRNet(48)), src, "hrnet")
    assert_same(sd["stage4.2.fuse_layers.3.0.2.0.weight"], src["stage4.2.fuse_layers.3.0.2.0.weight"])


def test_remap_errors_name_the_keys():
    shapes = torchvision_resnet_shapes(18)
    src = fill(shapes)
    net = ResNet(18)
    with pytest.raises(WeightImportError, match=r"missing: res2\.0\.conv1\.conv\.weight"):
        load_backbone_weights(net, {k: v for k, v in src.items() if k != "layer1.0.conv1.weight"},
                              "torchvision_resnet")
    with pytest.raises(WeightImportError, match=r"unused: layer5\.0\.conv1\.weight"):
        load_backbone_weights(net, src | {"layer5.0.conv1.weight": torch.zeros(1)}, "torchvision_resnet")
    bad = dict(src)
    bad["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(WeightImportError, match="shape mismatch"):
        load_backbone_weights(net, bad, "torchvision_resnet")
    with pytest.raises(WeightImportError, match="unused"):
        backbone_remap(on_meta(ResNet), fill(torchvision_resnet_shapes(101)), "torchvision_resnet")
    with pytest.raises(ValueError, match="unknown weight format"):
        load_backbone_weights(net, src, "caffe")


# --- detectron2 Panoptic-DeepLab checkpoints ------------------------------------------------


class D2:
    """Names and shapes of a detectron2 Panoptic-DeepLab state dict."""

    def __init__(self) -> None:
        self.sd: Shapes = {}

    def conv(self, name, cin, cout, k, norm=True, groups=1):
        self.sd[f"{name}.weight"] = (cout, cin // groups, k, k)
        if norm:
            for n in BN:
                self.sd[f"{name}.norm.{n}"] = (cout,)
        else:
            self.sd[f"{name}.bias"] = (cout,)

    def dsconv(self, name, cin, cout, k):
        self.conv(f"{name}.depthwise", cin, cin, k, groups=cin)
        self.conv(f"{name}.pointwise", cin, cout, 1)

    def tower(self, name, cin, cout, k_ds, dsconv):
        if dsconv:
            self.dsconv(name, cin, cout, k_ds)
        else:
            self.conv(f"{name}.0", cin, cin if name.endswith(("head", "_head")) else cout, 3)
            self.conv(f"{name}.1", cin if name.endswith(("head", "_head")) else cout, cout, 3)

    def decoder(self, head, feats, proj, dec, aspp=256, dsconv=False):
        names = list(feats)
        top = names[-1]
        a = f"{head}.decoder.{top}.project_conv"
        self.conv(f"{a}.convs.0", feats[top], aspp, 1)
        for i in (1, 2, 3):
            if dsconv:
                self.dsconv(f"{a}.convs.{i}", feats[top], aspp, 3)
            else:
                self.conv(f"{a}.convs.{i}", feats[top], aspp, 3)
        self.conv(f"{a}.convs.4.1", feats[top], aspp, 1, norm=False)
        self.conv(f"{a}.project", 5 * aspp, aspp, 1)
        prev = aspp
        for name, p in reversed(list(zip(names[:-1], proj, strict=True))):
            self.conv(f"{head}.decoder.{name}.project_conv", feats[name], p, 1)
            f = f"{head}.decoder.{name}.fuse_conv"
            if dsconv:
                self.dsconv(f, p + prev, dec, 5)
            else:
                self.conv(f"{f}.0", p + prev, dec, 3)
                self.conv(f"{f}.1", dec, dec, 3)
            prev = dec

    def heads(self, num_classes, dsconv, sem=256, ins=128, ins_head=32):
        if dsconv:
            self.dsconv("sem_seg_head.head", sem, sem, 5)
            self.dsconv("ins_embed_head.offset_head", ins, ins_head, 5)
        else:
            self.conv("sem_seg_head.head.0", sem, sem, 3)
            self.conv("sem_seg_head.head.1", sem, sem, 3)
            self.conv("ins_embed_head.offset_head.0", ins, ins, 3)
            self.conv("ins_embed_head.offset_head.1", ins, ins_head, 3)
        self.conv("ins_embed_head.center_head.0", ins, ins, 3)
        self.conv("ins_embed_head.center_head.1", ins, ins_head, 3)
        self.conv("sem_seg_head.predictor", sem, num_classes, 1, norm=False)
        self.conv("ins_embed_head.center_predictor", ins_head, 1, 1, norm=False)
        self.conv("ins_embed_head.offset_predictor", ins_head, 2, 1, norm=False)

    def r52(self, width=64):
        self.conv("backbone.stem.conv1", 3, width, 3)
        self.conv("backbone.stem.conv2", width, width, 3)
        self.conv("backbone.stem.conv3", width, 2 * width, 3)
        inp, bott = 2 * width, width
        for s, n in zip((2, 3, 4, 5), (3, 4, 6, 3), strict=True):
            out = bott * 4
            for b in range(n):
                p = f"backbone.res{s}.{b}"
                if b == 0:
                    self.conv(f"{p}.shortcut", inp, out, 1)
                self.conv(f"{p}.conv1", inp, bott, 1)
                self.conv(f"{p}.conv2", bott, bott, 3)
                self.conv(f"{p}.conv3", bott, out, 1)
                inp = out
            bott *= 2


def d2_remap(model, src):
    return remap_state_dict(model, src, detectron2_key_map(model), dropped=())


def check_loaded(sd, model, src):
    pairs = {
        "sem_head.predictor.weight": "sem_seg_head.predictor.weight",
        "center_head.predictor.bias": "ins_embed_head.center_predictor.bias",
        "offset_head.predictor.weight": "ins_embed_head.offset_predictor.weight",
        "center_head.tower.0.conv.weight": "ins_embed_head.center_head.0.weight",
        "sem_decoder.aspp.atrous.2.norm.running_var" if "sem_decoder.aspp.atrous.2.norm.running_var" in sd
        else "sem_decoder.aspp.atrous.2.pointwise.norm.running_var":
            "sem_seg_head.decoder.{top}.project_conv.convs.3.norm.running_var"
            if "sem_decoder.aspp.atrous.2.norm.running_var" in sd
            else "sem_seg_head.decoder.{top}.project_conv.convs.3.pointwise.norm.running_var",
        "ins_decoder.aspp.pool_conv.bias": "ins_embed_head.decoder.{top}.project_conv.convs.4.1.bias",
        "ins_decoder.project.res3.conv.weight": "ins_embed_head.decoder.res3.project_conv.weight",
    }
    top = model.sem_decoder.aspp_feature
    for ours, theirs in pairs.items():
        assert_same(sd[ours], src[theirs.format(top=top)])


def test_detectron2_r52_cityscapes_full_size():
    d2 = D2()
    d2.r52()
    feats = {"res2": 256, "res3": 512, "res5": 2048}
    d2.decoder("sem_seg_head", feats, (32, 64), 256)
    d2.decoder("ins_embed_head", feats, (32, 64), 128)
    d2.heads(19, dsconv=False)
    src = fill(d2.sd)
    model = on_meta(lambda: build_model_from_config(ModelConfig.cityscapes()))
    sd = d2_remap(model, src)
    check_loaded(sd, model, src)
    assert_same(sd["backbone.stem.conv3.conv.weight"], src["backbone.stem.conv3.weight"])
    assert_same(sd["backbone.res5.2.conv2.norm.weight"], src["backbone.res5.2.conv2.norm.weight"])


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_detectron2_checkpoint_files_load_into_a_model(tmp_path, suffix):
    # a narrow R52 model (width 8) with detectron2's names, written as detectron2 writes them:
    # .pkl = pickled {"model": {name: numpy array}}, .pth = torch.save({"model": tensors})
    d2 = D2()
    d2.r52(width=8)
    feats = {"res2": 32, "res3": 64, "res5": 256}
    d2.decoder("sem_seg_head", feats, (4, 8), 16, aspp=16)
    d2.decoder("ins_embed_head", feats, (4, 8), 8, aspp=16)
    d2.heads(5, dsconv=False, sem=16, ins=8, ins_head=4)
    src = fill(d2.sd, numpy=True)
    path = tmp_path / f"model_final{suffix}"
    if suffix == ".pkl":
        with open(path, "wb") as f:
            pickle.dump({"model": src, "__author__": "detectron2"}, f)
    else:
        torch.save({"model": {k: torch.from_numpy(v) for k, v in src.items()}, "iteration": 9}, path)
    model = build_model(
        backbone="r52", num_classes=5, use_dsconv=False, width_divisor=8, aspp_channels=16,
        sem_decoder_channels=16, sem_head_channels=16, ins_decoder_channels=8,
        ins_head_channels=4, sem_project_channels=(4, 8), ins_project_channels=(4, 8),
    )
    load_detectron2_weights(model, read_checkpoint(path))
    check_loaded(model.state_dict(), model, src)
    assert_same(model.backbone.res4[5].conv3.norm.running_mean,
                src["backbone.res4.5.conv3.norm.running_mean"])
    del src["sem_seg_head.predictor.bias"]
    with pytest.raises(WeightImportError, match="sem_head.predictor.bias"):
        load_detectron2_weights(model, src)


def test_detectron2_r52_coco_dsconv_pth(tmp_path):
    d2 = D2()
    d2.r52()
    feats = {"res2": 256, "res3": 512, "res5": 2048}
    d2.decoder("sem_seg_head", feats, (32, 64), 256, dsconv=True)
    d2.decoder("ins_embed_head", feats, (32, 64), 128, dsconv=True)
    d2.heads(133, dsconv=True)
    src = fill(d2.sd, seed=2)
    model = on_meta(lambda: build_model_from_config(ModelConfig.coco()))
    check_loaded(d2_remap(model, src), model, src)


def test_seed_xception65_and_hrnet48_checkpoints():
    d2 = D2()
    d2.sd |= {f"backbone.{k}": v for k, v in seed_listing("seed_xception65_keys.json.gz").items()}
    feats = {"res2": 256, "res3": 728, "res5": 2048}
    d2.decoder("sem_seg_head", feats, (32, 64), 256, dsconv=True)
    d2.decoder("ins_embed_head", feats, (32, 64), 128, dsconv=True)
    d2.heads(19, dsconv=True)
    src = fill(d2.sd, seed=3)
    model = on_meta(lambda: build_model_from_config(ModelConfig.cityscapes("xception65", use_dsconv=True)))
    check_loaded(d2_remap(model, src), model, src)

    d2 = D2()
    d2.sd |= {f"backbone.{k}": v for k, v in seed_listing("seed_hrnet48_keys.json.gz").items()}
    feats = {"res2": 48, "res3": 96, "res4": 192, "res5": 384}
    d2.decoder("sem_seg_head", feats, (32, 64, 128), 256)
    d2.decoder("ins_embed_head", feats, (32, 64, 128), 128)
    d2.heads(19, dsconv=False)
    src = fill(d2.sd, seed=4)
    model = on_meta(lambda: build_model_from_config(ModelConfig.cityscapes("hrnet_w48")))
    sd = d2_remap(model, src)
    check_loaded(sd, model, src)
    assert_same(sd["ins_decoder.fuse.res4.0.conv.weight"],
                src["ins_embed_head.decoder.res4.fuse_conv.0.weight"])
    assert_same(sd["backbone.stage3.3.branches.2.3.bn2.running_var"],
                src["backbone.stage3.3.branches.2.3.bn2.running_var"])


def test_read_checkpoint_refuses_code_and_unknown_files(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {"a": Evil()}}, f)
    with pytest.raises(WeightImportError, match="not a detectron2 weights pickle"):
        read_checkpoint(path)
    other = tmp_path / "w.npz"
    other.write_bytes(b"x")
    with pytest.raises(WeightImportError, match="suffix"):
        read_checkpoint(other)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pth")
    torch.save({"module.a": torch.ones(2)}, tmp_path / "dp.pth")
    assert list(read_checkpoint(tmp_path / "dp.pth")) == ["a"]


def test_remap_state_dict_accepts_numpy_and_keeps_missing_num_batches_tracked():
    net = ResNet(18, width=8)
    src = {k: v.numpy().copy() for k, v in net.state_dict().items() if "num_batches" not in k}
    out = remap_state_dict(net, src, lambda k: k)
    assert set(out) == set(net.state_dict())


class _SchedulerState:  # stands for a non-tensor object in a training checkpoint
    def __init__(self) -> None:
        self.last_epoch = 3


def test_read_checkpoint_safetensors_and_trusted_pth(tmp_path):
    # safetensors written by hand from the format's spec: u64 header size, JSON header, data
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([5, -1], dtype=np.int64)
    header = {
        "__metadata__": {"format": "pt"},
        "stem.0.conv.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "n": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
    }
    blob = json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + a.tobytes() + b.tobytes())
    sd = read_checkpoint(path)
    assert np.array_equal(sd["stem.0.conv.weight"].numpy(), a) and sd["n"].tolist() == [5, -1]
    header["n"]["data_offsets"] = [24, 48]
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + a.tobytes() + b.tobytes())
    with pytest.raises(WeightImportError, match="outside the file"):
        read_checkpoint(path)

    pth = tmp_path / "train.pth"
    torch.save({"model": {"w": torch.ones(2)}, "scheduler": _SchedulerState()}, pth)
    with pytest.raises(WeightImportError, match="trusted=True"):
        read_checkpoint(pth)
    assert torch.equal(read_checkpoint(pth, trusted=True)["w"], torch.ones(2))
