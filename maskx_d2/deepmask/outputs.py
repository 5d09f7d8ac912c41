"""DeepMask's outputs in the original image: window masks pasted, boxes of the masks.

detectron2's ``detector_postprocess`` pastes each mask into its ``pred_boxes`` after clipping
them to the image; a DeepMask mask covers its whole window, which may reach outside the image,
so clipping would squeeze the mask. Windows are pasted unclipped here instead.
"""

from typing import List

import torch
from detectron2.layers import paste_masks_in_image
from detectron2.structures import Boxes, Instances

__all__ = ["mask_boxes", "to_original_size"]


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) XYXY tight boxes of the masks (pixel edges); zeros for an empty
    mask (a proposal that recalls nothing)."""
    n, height, width = masks.shape
    columns, rows = masks.any(dim=1), masks.any(dim=2)  # (N, W), (N, H)
    x0 = columns.float().argmax(dim=1)
    x1 = width - columns.flip(1).float().argmax(dim=1)
    y0 = rows.float().argmax(dim=1)
    y1 = height - rows.flip(1).float().argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    return boxes * columns.any(dim=1, keepdim=True)


def to_original_size(
    results: List[Instances], batched_inputs: List[dict], image_sizes, threshold: float
) -> List[dict]:
    """Per image ``{"instances": ...}`` at the original size (``height``, ``width`` of the input).

    Args:
        results: per image, Instances on the network input with ``windows`` (D, 4) XYXY,
            ``mask_probs`` (D, M, M) over each window, and any fields to keep (``scores``,
            ``pred_classes``, ...). With ``pred_boxes`` (given boxes) those are kept, scaled;
            otherwise ``pred_boxes`` become the tight boxes of the masks.
        threshold: probability threshold of the pasted masks.
    Returns outputs whose Instances have ``pred_masks`` (D, H, W) bool and ``pred_boxes``, and no
    ``windows`` or ``mask_probs``.
    """
    outputs = []
    for r, x, (height, width) in zip(results, batched_inputs, image_sizes):
        out_h, out_w = x.get("height", height), x.get("width", width)
        scale = r.windows.new_tensor([out_w / width, out_h / height] * 2)
        fields = dict(r.get_fields())  # not r's own dict: r stays as it was
        windows, probs = fields.pop("windows") * scale, fields.pop("mask_probs")
        masks = paste_masks_in_image(probs, windows, (out_h, out_w), threshold=threshold)
        instances = Instances((out_h, out_w), **fields)
        instances.pred_masks = masks.bool()
        if instances.has("pred_boxes"):
            instances.pred_boxes = Boxes(instances.pred_boxes.tensor * scale)
        else:
            instances.pred_boxes = Boxes(mask_boxes(instances.pred_masks))
        outputs.append({"instances": instances})
    return outputs
