"""The mask loss of MNC's mask stage under partial supervision, as a pure function.

The mask stage runs on every sampled RoI (the classification stage needs a mask for each), but
only the foreground RoIs whose matched instance has a mask (:func:`mask_availability`) are
trained by it. Shape letters: R RoIs of all images, M mask side.
"""

from typing import List

import torch
from detectron2.layers import cat
from detectron2.modeling.roi_heads.mask_head import mask_rcnn_loss
from detectron2.structures import Instances

from ..modeling.partial_supervision import mask_availability

__all__ = ["mask_supervised", "mnc_mask_loss"]


def mask_supervised(rois: Instances, num_classes: int) -> torch.Tensor:
    """(R_i,) bool: the RoIs of one image that train the mask: foreground (``gt_classes`` in
    [0, K)) and matched to an instance with a mask."""
    foreground = (rois.gt_classes >= 0) & (rois.gt_classes < num_classes)
    return foreground & mask_availability(rois).to(foreground.device)


def mnc_mask_loss(
    mask_logits: torch.Tensor, rois: List[Instances], num_classes: int, vis_period: int = 0
) -> torch.Tensor:
    """Mean per-pixel BCE of the class-agnostic masks of the mask-supervised RoIs.

    Args:
        mask_logits: (R, 1, M, M) logits of every RoI of ``rois``, in order.
        rois: per image, the RoIs with ``proposal_boxes``, ``gt_classes`` and, where matched to
            ground truth, ``gt_masks`` / ``gt_has_mask``.
        num_classes: K.
        vis_period: as for detectron2's :func:`mask_rcnn_loss`.
    Returns:
        A scalar; with no mask-supervised RoI ``mask_logits.sum() * 0`` (detectron2's empty
        case): zero, with every mask parameter still in the graph, so DDP sees none unused.
    """
    selected = [mask_supervised(r, num_classes) for r in rois]
    if selected:
        keep = cat(selected).to(mask_logits.device)
    else:
        keep = torch.zeros(0, dtype=torch.bool, device=mask_logits.device)
    return mask_rcnn_loss(mask_logits[keep], [r[s] for r, s in zip(rois, selected)], vis_period)
