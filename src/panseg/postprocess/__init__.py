"""Fast Panoptic-DeepLab post-processing, identical to detectron2's (see docs/postprocess.md).

Public functions:

* :func:`get_panoptic_segmentation` - one image, detectron2's signature and result;
* :func:`panoptic_batch` - N images, optionally with instance scores for AP;
* :func:`find_instance_centers`, :func:`assign_to_centers`, :func:`merge_semantic_and_instance`,
  :func:`instance_scores` - the steps;
* :mod:`panseg.postprocess.reference` - the slow oracle written from the specification.
"""

from panseg.postprocess.centers import find_instance_centers
from panseg.postprocess.grouping import assign_to_centers, predicted_locations
from panseg.postprocess.merge import merge_semantic_and_instance, number_instances
from panseg.postprocess.panoptic import (
    PanopticOutput,
    get_panoptic_segmentation,
    panoptic_batch,
)
from panseg.postprocess.scores import InstanceScores, instance_scores

__all__ = [
    "InstanceScores",
    "PanopticOutput",
    "assign_to_centers",
    "find_instance_centers",
    "get_panoptic_segmentation",
    "instance_scores",
    "merge_semantic_and_instance",
    "number_instances",
    "panoptic_batch",
    "predicted_locations",
]
