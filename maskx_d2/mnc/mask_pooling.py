"""MNC's mask-pooled features (stage 3's input), as pure tensor functions.

Shape letters: R RoIs, C feature channels, P x P the RoI grid of the pooled features, M x M the
predicted masks.
"""

import torch
from torch.nn import functional as F

__all__ = ["mask_on_roi_grid", "mask_pooled_features"]


def mask_on_roi_grid(mask_logits: torch.Tensor, side, hard: bool = False) -> torch.Tensor:
    """The predicted masks seen at the RoI grid's resolution.

    Args:
        mask_logits: (R, 1, M, M) mask logits on the RoIs' boxes.
        side: P, or (P_h, P_w): the RoI grid.
        hard: threshold the result at 0.5.
    Returns:
        (R, 1, P, P): in each RoI bin, the mean of the mask's probabilities over the bin (the
        fraction of the bin inside the object; bins of M / P mask cells, adaptive pooling when
        M is not a multiple of P), or with ``hard`` 1 where that reaches 0.5, else 0.
    """
    # Averaging, not bilinear sampling: the pooled features (RoIAlign) also average each bin.
    grid = F.adaptive_avg_pool2d(mask_logits.sigmoid(), side)
    if hard:
        # Thresholded after the averaging, so that the gate is binary on the grid it multiplies.
        return (grid >= 0.5).to(grid.dtype)
    return grid


def mask_pooled_features(
    roi_features: torch.Tensor, mask_logits: torch.Tensor, hard: bool = False
) -> torch.Tensor:
    """F_mask = F_RoI * M (MNC, Eq. 3): each RoI's features with the background masked out.

    Args:
        roi_features: (R, C, P, P) pooled RoI features.
        mask_logits: (R, 1, M, M) the predicted mask logits on the same RoIs.
        hard: multiply by the 0.5-thresholded mask instead of its probabilities.
    Returns:
        (R, C, P, P).
    """
    grid = mask_on_roi_grid(mask_logits, roi_features.shape[-2:], hard)
    return roi_features * grid.to(roi_features.dtype)
