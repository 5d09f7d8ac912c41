"""Boxes as weak masks: BoxInst's projection loss (Tian et al., CVPR 2021).

A box says where the object's mask reaches: along every column of the box (and no column
outside it) the mask has at least one foreground pixel, and likewise along every row. So the
mask's maximum along y, one value per column, must equal the box's extent along x, and its
maximum along x must equal the box's extent along y. The loss is a dice loss on each of the two
projections, on the RoI's M x M grid, whose cells cover the proposal box.

Shapes: R RoIs, M mask side.
"""

import torch

__all__ = ["box_projection_targets", "box_projection_loss", "dice_loss"]


def box_projection_targets(proposal_boxes: torch.Tensor, gt_boxes: torch.Tensor, side: int):
    """(R, 4) XYXY RoI boxes and (R, 4) ground-truth boxes -> the box's extent on the RoI's
    grid: (R, M) columns and (R, M) rows, 1.0 where the cell's centre lies in the box."""
    steps = (torch.arange(side, device=proposal_boxes.device, dtype=torch.float32) + 0.5) / side
    p, g = proposal_boxes.float(), gt_boxes.float()
    xs = p[:, :1] + steps[None] * (p[:, 2:3] - p[:, :1])  # (R, M) cell centres
    ys = p[:, 1:2] + steps[None] * (p[:, 3:4] - p[:, 1:2])
    columns = (xs >= g[:, :1]) & (xs <= g[:, 2:3])
    rows = (ys >= g[:, 1:2]) & (ys <= g[:, 3:4])
    return columns.float(), rows.float()


def dice_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(R, N) probabilities and targets -> (R,) 1 - 2|p t| / (|p|^2 + |t|^2), as BoxInst."""
    intersection = (prediction * target).sum(dim=1)
    union = (prediction**2).sum(dim=1) + (target**2).sum(dim=1)
    return 1 - 2 * intersection / union.clamp(min=eps)


def box_projection_loss(
    mask_logits: torch.Tensor, proposal_boxes: torch.Tensor, gt_boxes: torch.Tensor
) -> torch.Tensor:
    """Mean over the R RoIs of the dice losses of the two projections.

    Args:
        mask_logits: (R, M, M) logits of each RoI's class.
        proposal_boxes: (R, 4) the boxes the logits cover.
        gt_boxes: (R, 4) the ground-truth box of each RoI's instance.
    Returns:
        A scalar; with R == 0 a zero that keeps ``mask_logits`` in the graph.
    """
    if mask_logits.shape[0] == 0:
        return mask_logits.sum() * 0
    probabilities = mask_logits.sigmoid()
    columns, rows = box_projection_targets(proposal_boxes, gt_boxes, mask_logits.shape[-1])
    loss_x = dice_loss(probabilities.amax(dim=1), columns)  # max over y: one value per column
    loss_y = dice_loss(probabilities.amax(dim=2), rows)
    return (loss_x + loss_y).mean()
