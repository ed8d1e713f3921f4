"""panseg: panoptic segmentation from raw datasets to exact metrics.

Data preparation (``panseg.records``, ``panseg.datasets``, ``panseg.convert``,
``panseg.evaluation``) never imports torch; the PyTorch side lives in
``panseg.data``, ``panseg.models``, ``panseg.engine``.
"""

__version__ = "0.1.0"
