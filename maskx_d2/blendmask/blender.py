"""The blender of BlendMask and its loss, as pure tensor functions.

Shape letters: N images, K bases, H x W the bases' map, R RoIs (detections or training
positives), S the cropped side (``BOTTOM_RESOLUTION``), M the attention side.
"""

import torch
from detectron2.layers import ROIAlign
from torch.nn import functional as F

__all__ = ["blend", "crop_bases", "blended_mask_loss"]


def crop_bases(pooler: ROIAlign, bases: torch.Tensor, boxes: torch.Tensor, image_index):
    """The bases inside each box.

    Args:
        pooler: RoIAlign at S x S with the bases' spatial scale.
        bases: (N, K, H, W) bases of the batch.
        boxes: (R, 4) XYXY boxes on the network's input.
        image_index: (R,) image of each box.
    Returns:
        (R, K, S, S).
    """
    rois = torch.cat([image_index.to(boxes.dtype)[:, None], boxes], dim=1)
    return pooler(bases, rois)


def blend(cropped_bases: torch.Tensor, attentions: torch.Tensor) -> torch.Tensor:
    """Blend each RoI's bases by its attention: upsample the attention to the bases' side,
    normalise it over the K bases (softmax), and sum the bases weighted by it.

    Args:
        cropped_bases: (R, K, S, S) bases cropped to each RoI.
        attentions: (R, K, M, M) attention logits of each RoI.
    Returns:
        (R, S, S) mask logits.
    """
    size = cropped_bases.shape[-2:]
    weights = F.interpolate(attentions, size=size, mode="bilinear", align_corners=False)
    return (cropped_bases * weights.softmax(dim=1)).sum(dim=1)


def blended_mask_loss(mask_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel binary cross-entropy.

    Args:
        mask_logits: (R, S, S) with R >= 1.
        targets: (R, S, S) in [0, 1].
    """
    return F.binary_cross_entropy_with_logits(mask_logits, targets.to(mask_logits.dtype))
