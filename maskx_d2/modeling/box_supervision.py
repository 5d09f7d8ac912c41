"""Boxes as weak masks: BoxInst's two losses (Tian et al., CVPR 2021).

- **Projection**: a box says where the object's mask reaches: along every column of the box
  (and no column outside it) the mask has at least one foreground pixel, and likewise along
  every row. So the mask's maximum along y, one value per column, must equal the box's extent
  along x, and its maximum along x must equal the box's extent along y: a dice loss on each of
  the two projections.
- **Pairwise colour affinity**: neighbouring pixels of similar colour (in CIE Lab) probably
  have the same label, so for every pixel in the box and each of its 8 neighbours (which may lie
  outside the box) whose colour similarity exp(-||Lab_i - Lab_j|| / 2) is at least a threshold,
  the loss is -log P(same label) with P = p_i p_j + (1 - p_i)(1 - p_j). The pairs that cross
  the box's edge matter most: they tie the box's background to the background outside, which
  the projection loss sets to 0; without them a filled box satisfies both losses exactly. In
  BoxInst this is what makes the masks follow the object's outline rather than fill its box.

Both are computed on the RoI's M x M grid, whose cells cover the RoI box (BoxInst works on a
whole-image mask at 1/4 resolution; a RoI head only has its grid), so a RoI must reach beyond
its ground-truth box for the edge pairs to exist: proposals usually do; ground-truth-box RoIs
are padded (``MODEL.MASKX.BOX_SUPERVISION.GT_BOX_PADDING``). Shapes: R RoIs, M mask side.

Until 2026-12-02 the pairwise loss here kept only the pairs with both cells in the box, so a
filled box satisfied both losses exactly. Measured since the fix (docs/table1c_synthetic.md,
3 seeds on each synthetic split): with the pairwise loss on, training still ends with B's masks
foreground in every cell of the RoI. That also satisfies the pairwise loss exactly (every pair
shares a label) and costs the projection loss only the RoI's rows and columns outside the box.
"""

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

__all__ = [
    "box_projection_targets",
    "box_projection_loss",
    "dice_loss",
    "pairwise_affinity_loss",
    "rgb_to_lab",
    "roi_lab_colours",
    "smooth_image",
]


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


# sRGB (D65) -> CIE XYZ, and the D65 white point.
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE = (0.950456, 1.0, 1.088754)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) sRGB in [0, 1] -> CIE Lab (L in [0, 100]), as skimage.color.rgb2lab."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    matrix = torch.tensor(_RGB_TO_XYZ, dtype=rgb.dtype, device=rgb.device)
    white = torch.tensor(_WHITE, dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,...jhw->...ihw", matrix, linear) / white[:, None, None]
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f.unbind(dim=-3)
    lightness = torch.where(xyz[..., 1, :, :] > 0.008856, 116 * fy - 16, 903.3 * xyz[..., 1, :, :])
    return torch.stack([lightness, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def neighbour_pairs(x: torch.Tensor, dilation: int):
    """(..., M, M) -> for the 4 offsets (0, d), (d, 0), (d, d), (d, -d) (with their opposites,
    every pair of the 8-neighbourhood at distance d once): aligned crops (first, second), where
    first[..., y, x] and second[..., y, x] are neighbours."""
    d, m = dilation, x.shape[-1]
    pairs = []
    for dy, dx in ((0, d), (d, 0), (d, d), (d, -d)):
        first = x[..., : m - dy, max(0, -dx) : m - max(0, dx)]
        second = x[..., dy:, max(0, dx) : m - max(0, -dx)]
        pairs.append((first, second))
    return pairs


def pairwise_affinity_loss(
    mask_logits: torch.Tensor,
    lab: torch.Tensor,
    proposal_boxes: torch.Tensor,
    gt_boxes: torch.Tensor,
    threshold: float = 0.3,
    dilation: int = 1,
) -> torch.Tensor:
    """BoxInst's pairwise loss on the RoI grids.

    Args:
        mask_logits: (R, M, M) logits of each RoI's class.
        lab: (R, 3, M, M) the image's CIE Lab colour at the cells' centres.
        proposal_boxes, gt_boxes: (R, 4) the RoI boxes and their instances' boxes.
        threshold: pairs whose colour similarity is below it are left out.
        dilation: the distance (in cells) between the two pixels of a pair.
    Returns:
        The mean of -log P(same label) over the kept pairs, each undirected pair counted once
        for each of its cells inside the ground-truth box (BoxInst takes every pixel in the box
        with each of its 8 neighbours, inside the box or not); a zero that keeps
        ``mask_logits`` in the graph when there is none.
    """
    if mask_logits.shape[0] == 0:
        return mask_logits.sum() * 0
    columns, rows = box_projection_targets(proposal_boxes, gt_boxes, mask_logits.shape[-1])
    inside = (rows[:, :, None] * columns[:, None, :])[:, None]  # (R, 1, M, M)
    fg, bg = F.logsigmoid(mask_logits)[:, None], F.logsigmoid(-mask_logits)[:, None]
    total, count = mask_logits.sum() * 0, 0.0
    for (lab_a, lab_b), (fg_a, fg_b), (bg_a, bg_b), (in_a, in_b) in zip(
        neighbour_pairs(lab, dilation),
        neighbour_pairs(fg, dilation),
        neighbour_pairs(bg, dilation),
        neighbour_pairs(inside, dilation),
    ):
        similarity = torch.exp(-(lab_a - lab_b).norm(dim=1, keepdim=True) * 0.5)
        # A pair is counted from each of its cells that lies in the box: twice inside the box,
        # once across its edge (that pair is what keeps the box's background at 0), never out.
        weight = ((similarity >= threshold).float() * (in_a + in_b)).detach()
        log_same = torch.logaddexp(fg_a + fg_b, bg_a + bg_b)
        total = total - (log_same * weight).sum()
        count += float(weight.sum())
    return total / max(count, 1.0)


def smooth_image(rgb: torch.Tensor, smoothing: int) -> torch.Tensor:
    """(N, 3, H, W) -> the same, each pixel the mean of the ``smoothing`` x ``smoothing`` window
    around it (windows cut at the image's edge average what is inside); 1 = unchanged."""
    if smoothing < 1 or smoothing % 2 == 0:
        raise ValueError(f"the colour smoothing window must be odd and >= 1, got {smoothing}")
    if smoothing == 1:
        return rgb
    return F.avg_pool2d(rgb, smoothing, 1, smoothing // 2, count_include_pad=False)


def roi_lab_colours(rgb: torch.Tensor, boxes, side: int, smoothing: int = 1):
    """The CIE Lab colour at the centres of each RoI's ``side`` x ``side`` cells.

    Args:
        rgb: (N, 3, H, W) the batch's images, sRGB in [0, 1].
        boxes: per image, (R_i, 4) XYXY RoI boxes in image pixels.
        smoothing: the colour is first averaged over this odd window of pixels
            (:func:`smooth_image`), as BoxInst reads it from an average-pooled image.
    Returns:
        Per image, (R_i, 3, side, side).
    """
    rgb = smooth_image(rgb, smoothing)
    # aligned=True with one sample per bin reads each cell at its centre, as the mask's pixels.
    sampled = roi_align(rgb, list(boxes), side, spatial_scale=1.0, sampling_ratio=1, aligned=True)
    return list(rgb_to_lab(sampled).split([len(b) for b in boxes]))
