"""The paper's mask stage: two FC layers on the pooled RoI features, one class-agnostic mask.

Shape letters: R RoIs, C channels, P x P the pooled RoI grid, M = 2P the mask side (the side of
detectron2's conv head on the same pooler, so that both heads are interchangeable).
"""

import fvcore.nn.weight_init as weight_init
import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.mask_head import ROI_MASK_HEAD_REGISTRY, BaseMaskRCNNHead
from torch import nn
from torch.nn import functional as F

__all__ = ["MNCFCMaskHead"]


@ROI_MASK_HEAD_REGISTRY.register()
class MNCFCMaskHead(BaseMaskRCNNHead):
    """FC (C P P -> ``fc_dim``) + ReLU, then FC (``fc_dim`` -> M M): the M x M logits of one
    class-agnostic mask (MNC: 256-d, then 28 x 28 from 14 x 14 features). Training and inference
    are :class:`BaseMaskRCNNHead`'s (detectron2's mask loss and ``pred_masks``)."""

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, fc_dim: int, mask_side: int, **kwargs):
        """
        Args:
            input_shape: (C, P, P) of the pooled RoI features.
            fc_dim: width of the first FC.
            mask_side: M.
            kwargs: as for :class:`BaseMaskRCNNHead` (``loss_weight``, ``vis_period``).
        """
        super().__init__(**kwargs)
        if fc_dim < 1 or mask_side < 1:
            raise ValueError(
                f"MODEL.MNC.FC_MASK_HEAD_DIM and the mask side must be positive, got {fc_dim} "
                f"and {mask_side}"
            )
        in_dim = input_shape.channels * (input_shape.height or 1) * (input_shape.width or 1)
        self.mask_side = mask_side
        self.fc = nn.Linear(in_dim, fc_dim)
        self.predictor = nn.Linear(fc_dim, mask_side * mask_side)
        weight_init.c2_xavier_fill(self.fc)
        # Small initial logits, as detectron2's conv mask predictor: masks start near 0.5.
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.constant_(self.predictor.bias, 0.0)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.update(
            input_shape=input_shape,
            fc_dim=cfg.MODEL.MNC.FC_MASK_HEAD_DIM,
            mask_side=2 * input_shape.height,
        )
        return ret

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C, P, P) pooled features -> (R, 1, M, M) mask logits."""
        x = F.relu(self.fc(x.flatten(1)))
        return self.predictor(x).view(-1, 1, self.mask_side, self.mask_side)
