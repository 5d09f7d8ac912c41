"""Mask^X R-CNN model parts; importing this registers them into detectron2's registries."""

from .mask_head import MaskXMaskHead
from .meta_arch import MaskXRCNN
from .mlp_branch import MaskMLPBranch
from .partial_supervision import mask_availability, select_mask_supervised
from .roi_heads import MaskXROIHeads
from .weight_transfer import WeightTransfer

__all__ = [
    "MaskXMaskHead",
    "MaskXRCNN",
    "MaskXROIHeads",
    "MaskMLPBranch",
    "WeightTransfer",
    "mask_availability",
    "select_mask_supervised",
]
