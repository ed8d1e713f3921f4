"""What a reader yields for a semantic-segmentation record: image bytes and label PNG bytes.

The panoptic counterpart is :class:`panseg.datasets.base.RawExample`. A semantic label is one
8-bit PNG per image whose values are class ids (or the source's own ids, mapped by the
encoder); encoders decide whether it passes through or is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RawSemanticExample:
    """One image with its semantic label file, as read from the source.

    Attributes:
        key: the name written as ``image/filename``.
        image_path: the image file (for messages).
        image_bytes: the image file's bytes.
        image_format: ``png`` or ``jpeg``.
        label_path: the label PNG (for messages); ``""`` without label.
        label_bytes: the label PNG's bytes, ``None`` for an image without label (test split).
    """

    key: str
    image_path: str
    image_bytes: bytes
    image_format: str
    label_path: str = ""
    label_bytes: bytes | None = None

    @property
    def has_label(self) -> bool:
        return self.label_bytes is not None
