"""The Panoptic-DeepLab network: backbone, semantic and instance decoders, three heads.

Reference behaviour: detectron2 ``projects/Panoptic-DeepLab/panoptic_deeplab/panoptic_seg.py``
(``PanopticDeepLab.forward``, ``PanopticDeepLabSemSegHead``, ``PanopticDeepLabInsEmbedHead``):
the images are zero-padded (after normalisation) to the size divisibility, the heads predict at
the decoder stride (4), every output is resized ×4 bilinearly (``align_corners=False``),
**offsets are also multiplied by 4** so they stay in input pixels, and the padding is cropped
off (``sem_seg_postprocess``). Losses are computed on the ×4 resized predictions.

Input convention (panseg): RGB float images normalised as ``(x − mean) / std`` with x in
0..255 and, for the ImageNet-pretrained ResNet/HRNet weights, mean (123.675, 116.28, 103.53),
std (58.395, 57.12, 57.375) (detectron2's Panoptic-DeepLab configs). The seed's Xception-65
weights (converted from TensorFlow) use mean = std = (128, 128, 128). The model keeps its
convention in ``pixel_mean``/``pixel_std`` and :meth:`PanopticDeepLab.normalize` applies it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones.base import check_backbone
from .decoders import DeepLabV3PlusDecoder
from .heads import PredictionHead
from .losses import panoptic_deeplab_losses

IMAGENET_RGB_MEAN = (123.675, 116.28, 103.53)
IMAGENET_RGB_STD = (58.395, 57.12, 57.375)


class PanopticDeepLab(nn.Module):
    """Panoptic-DeepLab over any backbone following :mod:`panseg.models.backbones.base`.

    Forward ``model(images)`` with images N×3×H×W float (normalised, see the module
    docstring) returns::

        {"semantic": N×num_classes×H×W logits,
         "center":   N×1×H×W heatmap (regression, no sigmoid),
         "offset":   N×2×H×W (dy, dx) in input pixels, pointing from a pixel to its center}

    ``model(images, targets)`` returns the losses ``{"loss_sem_seg", "loss_center",
    "loss_offset"}`` (already weighted; their sum is the training loss) for targets::

        "semantic" N×H×W int64 (ignore_label where ignored), "semantic_weights" N×H×W float,
        "center" N×1×H×W, "center_weights" N×H×W, "offset" N×2×H×W, "offset_weights" N×H×W

    as produced by detectron2's ``PanopticDeepLabTargetGenerator`` (weights may also be
    N×1×H×W). Losses are computed on the unpadded H×W region; detectron2 also counts padded
    pixels (loss 0) in its top-k, which differs only when padding is applied in training.

    State-dict layout: ``backbone``, ``sem_decoder``, ``sem_head``, ``ins_decoder``,
    ``center_head``, ``offset_head`` (see ``panseg.models.weights`` for detectron2's names).
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        num_classes: int,
        in_features: Sequence[str] = ("res2", "res3", "res5"),
        sem_project_channels: Sequence[int] = (32, 64),
        ins_project_channels: Sequence[int] = (32, 64),
        aspp_channels: int = 256,
        aspp_dilations: Sequence[int] = (6, 12, 18),
        aspp_dropout: float = 0.1,
        sem_decoder_channels: int = 256,
        sem_head_channels: int = 256,
        ins_decoder_channels: int = 128,
        ins_head_channels: int = 32,
        common_stride: int = 4,
        pool_kernel_size: tuple[int, int] | None = None,
        use_dsconv: bool = False,
        norm: str = "BN",
        size_divisibility: int = -1,
        ignore_label: int = 255,
        loss_top_k: float = 0.2,
        semantic_loss_weight: float = 1.0,
        center_loss_weight: float = 200.0,
        offset_loss_weight: float = 0.01,
        pixel_mean: Sequence[float] = IMAGENET_RGB_MEAN,
        pixel_std: Sequence[float] = IMAGENET_RGB_STD,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        check_backbone(backbone, tuple(in_features))
        feats = {name: backbone.out_features[name] for name in in_features}
        finest = min(stride for _, stride in feats.values())
        if finest != common_stride:
            raise ValueError(
                f"the finest decoder feature has stride {finest}, expected common_stride "
                f"{common_stride}"
            )
        self.backbone = backbone
        dec = dict(
            aspp_channels=aspp_channels, aspp_dilations=tuple(aspp_dilations),
            aspp_dropout=aspp_dropout, pool_kernel_size=pool_kernel_size,
            use_dsconv=use_dsconv, norm=norm,
        )
        self.sem_decoder = DeepLabV3PlusDecoder(
            feats, project_channels=sem_project_channels, decoder_channels=sem_decoder_channels,
            **dec,
        )
        self.sem_head = PredictionHead(
            sem_decoder_channels, sem_head_channels, num_classes, use_dsconv=use_dsconv, norm=norm
        )
        self.ins_decoder = DeepLabV3PlusDecoder(
            feats, project_channels=ins_project_channels, decoder_channels=ins_decoder_channels,
            **dec,
        )
        # detectron2: the center tower is two 3×3 convs even with depthwise-separable convs.
        self.center_head = PredictionHead(
            ins_decoder_channels, ins_head_channels, 1, use_dsconv=False, norm=norm
        )
        self.offset_head = PredictionHead(
            ins_decoder_channels, ins_head_channels, 2, use_dsconv=use_dsconv, norm=norm
        )
        if size_divisibility < 0:
            size_divisibility = int(getattr(backbone, "size_divisibility", 0))
        self.size_divisibility = size_divisibility
        self.common_stride = common_stride
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.loss_top_k = loss_top_k
        self.loss_weights = (semantic_loss_weight, center_loss_weight, offset_loss_weight)
        self.pixel_mean = tuple(float(v) for v in pixel_mean)
        self.pixel_std = tuple(float(v) for v in pixel_std)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """N×3×H×W RGB in 0..255 (any dtype) -> float32 ``(x − pixel_mean) / pixel_std``."""
        mean = torch.tensor(self.pixel_mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.pixel_std, device=images.device).view(1, -1, 1, 1)
        return (images.float() - mean) / std

    def _upsample(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        if x.shape[-2] < h or x.shape[-1] < w:
            raise ValueError(
                f"predictions of size {tuple(x.shape[-2:])} after ×{self.common_stride} "
                f"upsampling are smaller than the input {(h, w)}: the backbone's stride-"
                f"{self.common_stride} feature must have ceil(H/{self.common_stride}) rows"
            )
        return x[:, :, :h, :w]

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three outputs at input resolution (see the class docstring)."""
        if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(
                f"images must be a float N×3×H×W tensor, got {images.dtype} {tuple(images.shape)}"
            )
        h, w = int(images.shape[-2]), int(images.shape[-1])
        d = self.size_divisibility
        if d > 0 and (h % d or w % d):
            images = F.pad(images, (0, (-w) % d, 0, (-h) % d))
        features = self.backbone(images)
        semantic = self.sem_head(self.sem_decoder(features))
        ins = self.ins_decoder(features)
        center = self.center_head(ins)
        offset = self.offset_head(ins)
        return {
            "semantic": self._upsample(semantic, h, w),
            "center": self._upsample(center, h, w),
            "offset": self._upsample(offset, h, w) * self.common_stride,
        }

    def losses(
        self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Weighted losses of :meth:`predict`'s outputs against ``targets``."""
        sw, cw, ow = self.loss_weights
        return panoptic_deeplab_losses(
            outputs, targets, ignore_label=self.ignore_label, top_k=self.loss_top_k,
            semantic_weight=sw, center_weight=cw, offset_weight=ow,
        )

    def forward(
        self, images: torch.Tensor, targets: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        outputs = self.predict(images)
        if targets is None:
            return outputs
        return self.losses(outputs, targets)
