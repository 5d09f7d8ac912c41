"""MNC, the Multi-task Network Cascade (Dai, He, Sun, CVPR 2016), under partial supervision.

Importing this registers the ``MNCROIHeads`` ROI heads and the ``MNCFCMaskHead`` mask head
(used with detectron2's ``GeneralizedRCNN``). Files: ``config.py`` (the ``MODEL.MNC`` keys),
``mask_pooling.py`` (the mask-pooled features, pure tensor functions), ``mask_loss.py`` (which
RoIs train the mask stage), ``refinement.py`` (the 5-stage cascade's refined boxes and their
labels), ``fc_mask_head.py`` (the paper's two-FC mask stage), ``roi_heads.py`` (the cascade).
"""

from .config import add_mnc_config
from .fc_mask_head import MNCFCMaskHead
from .mask_loss import mnc_mask_loss
from .mask_pooling import mask_on_roi_grid, mask_pooled_features
from .refinement import refine_boxes, relabel_boxes
from .roi_heads import MNCROIHeads, check_mnc_config

__all__ = [
    "MNCFCMaskHead",
    "MNCROIHeads",
    "add_mnc_config",
    "check_mnc_config",
    "mask_on_roi_grid",
    "mask_pooled_features",
    "mnc_mask_loss",
    "refine_boxes",
    "relabel_boxes",
]
