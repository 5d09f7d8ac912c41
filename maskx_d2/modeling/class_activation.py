"""Class activation maps (CAM, Zhou et al. 2016) of the box head: OPMask's prior for the mask head.

Pure tensor functions, no modules. Shape letters: R RoIs, D width of the box head's last conv
map, S its side (ROI_BOX_HEAD.POOLER_RESOLUTION, 7), P the side of the pooled mask features
(ROI_MASK_HEAD.POOLER_RESOLUTION, 14), K foreground classes.

With a box head that ends in global average pooling and a linear classifier (``cls_score``,
weight (K + 1, D), bias (K + 1,)), class k's logit is
``w_k . mean_xy F[:, x, y] + b_k = mean_xy (w_k . F[:, x, y]) + b_k``: the map
``CAM_k[x, y] = w_k . F[:, x, y]`` says where in the RoI the evidence for class k lies, and its
spatial mean plus the bias is exactly the logit. It needs no mask of class k, so it is a prior
for box-only classes too.
"""

import torch
from torch.nn import functional as F

__all__ = [
    "CAM_NORMALIZATIONS",
    "class_activation_maps",
    "normalize_class_activation_maps",
    "resize_class_activation_maps",
]

CAM_NORMALIZATIONS = ("none", "max", "minmax")


def class_activation_maps(
    feature_map: torch.Tensor, class_weights: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """Each RoI's CAM for its own class.

    Args:
        feature_map: (R, D, S, S) the box head's last conv map of each RoI.
        class_weights: (K + 1, D) the box classifier's weight (the last row, background, is
            never indexed by foreground classes).
        classes: (R,) int64 class of each RoI, in [0, K].
    Returns:
        (R, S, S): ``cam[r] = sum_d class_weights[classes[r], d] * feature_map[r, d]``.
    """
    # Only each RoI's own row: cost and memory do not grow with K (3000 classes for VG).
    weights = class_weights[classes].to(feature_map.dtype)
    return torch.einsum("rdhw,rd->rhw", feature_map, weights)


def normalize_class_activation_maps(
    cams: torch.Tensor, mode: str = "minmax", eps: float = 1e-6
) -> torch.Tensor:
    """Scale each RoI's CAM on its own: (R, S, S) -> (R, S, S).

    ``mode``: "minmax" (into [0, 1], OPMask), "max" (divided by its largest absolute value, into
    [-1, 1]) or "none". ``eps`` bounds the divisor away from 0, so a flat CAM gives zeros
    ("minmax") or itself ("max" of zeros), never NaN.
    """
    if mode not in CAM_NORMALIZATIONS:
        raise ValueError(
            f"MODEL.MASKX.CLASS_ACTIVATION_PRIOR.NORMALIZATION must be one of "
            f"{CAM_NORMALIZATIONS}, got {mode!r}"
        )
    if mode == "none":
        return cams
    flat = cams.flatten(1)
    if mode == "max":
        scale = flat.abs().amax(dim=1).clamp(min=eps)
        return cams / scale[:, None, None]
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    return (cams - low[:, None, None]) / (high - low).clamp(min=eps)[:, None, None]


def resize_class_activation_maps(cams: torch.Tensor, side: int) -> torch.Tensor:
    """(R, S, S) -> (R, P, P) with P = ``side``, bilinear (align_corners=False, the sampling of
    RoIAlign's cells: both grids cover the same box)."""
    if cams.shape[-2:] == (side, side):
        return cams
    resized = F.interpolate(cams[:, None], size=(side, side), mode="bilinear", align_corners=False)
    return resized[:, 0]
