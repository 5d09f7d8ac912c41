"""The RoIs the mask branch trains on: sampled proposals, ground-truth boxes, or both.

``MODEL.MASKX.MASK_TRAIN_BOXES`` picks the boxes (Deep-MARC trains the mask head on
ground-truth boxes); the partial-supervision rule then decides which of them carry a mask
(:func:`.partial_supervision.mask_availability`). Box-only RoIs come along only when a
box-supervised loss is on (``include_box_only``); they never reach the ordinary mask loss, and
their ground-truth-box RoIs may be padded (``box_only_padding``) so that the RoI's grid reaches
beyond the box, where the box-supervised losses learn the background.

Every RoI returned has ``proposal_boxes`` (the box the features are pooled from),
``gt_classes``, ``gt_boxes`` (its instance's exact box), ``gt_has_mask`` and, when the data has
masks, ``gt_masks``.
"""

from typing import List, Optional, Tuple

import torch
from detectron2.modeling.roi_heads.roi_heads import select_foreground_proposals
from detectron2.structures import Boxes, Instances

from .partial_supervision import mask_availability, select_mask_supervised

__all__ = ["jitter_boxes", "mask_training_rois", "pad_boxes"]

_FIELDS = ("proposal_boxes", "gt_classes", "gt_boxes", "gt_has_mask", "gt_masks")


def jitter_boxes(boxes: Boxes, fraction: float, image_size: Tuple[int, int]) -> Boxes:
    """Move each coordinate of (N, 4) XYXY boxes by U(-fraction, fraction) times the box's
    width (x) or height (y), clip to ``image_size`` (h, w), and keep every box at least one
    pixel wide and high."""
    t = boxes.tensor
    w, h = t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
    scale = torch.stack([w, h, w, h], dim=1)
    moved = Boxes(t + (torch.rand_like(t) * 2 - 1) * fraction * scale)
    moved.clip(image_size)
    m = moved.tensor
    x1 = torch.maximum(m[:, 2], (m[:, 0] + 1).clamp(max=image_size[1]))
    y1 = torch.maximum(m[:, 3], (m[:, 1] + 1).clamp(max=image_size[0]))
    x0, y0 = torch.minimum(m[:, 0], x1 - 1), torch.minimum(m[:, 1], y1 - 1)
    return Boxes(torch.stack([x0, y0, x1, y1], dim=1))


def pad_boxes(boxes: Boxes, fraction: float, image_size: Tuple[int, int]) -> Boxes:
    """(N, 4) XYXY boxes grown on every side by ``fraction`` of their width (x) or height (y),
    then clipped to ``image_size`` (h, w)."""
    t = boxes.tensor
    w, h = t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
    grown = Boxes(t + torch.stack([-w, -h, w, h], dim=1) * fraction)
    grown.clip(image_size)
    return grown


def _with_fields(instances: Instances, boxes: Boxes, has_mask: torch.Tensor) -> Instances:
    out = Instances(instances.image_size, proposal_boxes=boxes, gt_has_mask=has_mask)
    out.gt_classes = instances.gt_classes
    out.gt_boxes = instances.gt_boxes
    if instances.has("gt_masks"):
        out.gt_masks = instances.gt_masks
    return out


def _from_proposals(fg: Instances, include_box_only: bool) -> Instances:
    has_mask = mask_availability(fg)
    keep = has_mask | include_box_only
    fg = fg[keep]
    return _with_fields(fg, fg.proposal_boxes, has_mask[keep])


def _from_ground_truth(
    target: Instances, jitter: float, include_box_only: bool, box_only_padding: float
) -> Instances:
    has_mask = mask_availability(target).to(target.gt_boxes.device)
    keep = has_mask | include_box_only
    target, has_mask = target[keep], has_mask[keep]
    boxes = target.gt_boxes.clone()
    if jitter > 0 and len(boxes):
        boxes = jitter_boxes(boxes, jitter, target.image_size)
    if box_only_padding > 0 and not bool(has_mask.all()):
        padded = pad_boxes(boxes, box_only_padding, target.image_size).tensor
        boxes = Boxes(torch.where(has_mask[:, None], boxes.tensor, padded))
    return _with_fields(target, boxes, has_mask)


def _cat(parts: List[Instances]) -> Instances:
    nonempty = [p for p in parts if len(p)]
    if len(nonempty) > 1:
        fields = [set(p.get_fields()) for p in nonempty]
        common = set.intersection(*fields)
        nonempty = [Instances(p.image_size, **{k: p.get(k) for k in common}) for p in nonempty]
        return Instances.cat(nonempty)
    return nonempty[0] if nonempty else parts[0]


def mask_training_rois(
    proposals: List[Instances],
    targets: Optional[List[Instances]],
    num_classes: int,
    train_boxes: str = "proposals",
    jitter: float = 0.0,
    include_box_only: bool = False,
    box_only_padding: float = 0.0,
) -> List[Instances]:
    """Per image, the RoIs of the mask branch's training step.

    Args:
        proposals: per image, the sampled proposals with their matched ``gt_*`` fields (the
            output of ``label_and_sample_proposals``).
        targets: per image, the ground-truth instances (needed for "gt" and "both").
        num_classes: K; proposals of class K are background.
        train_boxes: "proposals", "gt" or "both" (``MODEL.MASKX.MASK_TRAIN_BOXES``).
        jitter: ``MODEL.MASKX.GT_BOX_JITTER``, for the ground-truth boxes.
        include_box_only: keep the RoIs of box-only instances too (box-supervised losses).
        box_only_padding: ``MODEL.MASKX.BOX_SUPERVISION.GT_BOX_PADDING``: the ground-truth-box
            RoIs of box-only instances grow by this fraction of their size on every side (after
            the jitter), so that their grids have cells outside the box.
    """
    if train_boxes == "proposals" and not include_box_only:
        # The paper's rule, on detectron2's own selection: fields and order untouched.
        foreground, _ = select_foreground_proposals(proposals, num_classes)
        return select_mask_supervised(foreground)
    per_image = [[] for _ in proposals]
    if train_boxes in ("proposals", "both"):
        foreground, _ = select_foreground_proposals(proposals, num_classes)
        for parts, fg in zip(per_image, foreground):
            parts.append(_from_proposals(fg, include_box_only))
    if train_boxes in ("gt", "both"):
        if targets is None:
            raise ValueError(f"MODEL.MASKX.MASK_TRAIN_BOXES={train_boxes!r} needs the targets")
        for parts, target in zip(per_image, targets):
            parts.append(_from_ground_truth(target, jitter, include_box_only, box_only_padding))
    return [_cat(parts) for parts in per_image]
