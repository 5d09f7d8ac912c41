"""MaskXROIHeads: detectron2's StandardROIHeads with partially supervised mask training.

Box classification and regression use every ground-truth instance (sets A and B); the mask
branch trains only on foreground proposals whose ground truth has a mask (see
:mod:`.partial_supervision`), and receives the box predictor so T can read the detector's
class weights. At inference every detected class gets a mask, including classes never seen
with masks.
"""

from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.modeling.roi_heads.roi_heads import select_foreground_proposals
from detectron2.structures import Instances

from .partial_supervision import select_mask_supervised

__all__ = ["MaskXROIHeads"]


@ROI_HEADS_REGISTRY.register()
class MaskXROIHeads(StandardROIHeads):
    @configurable
    def __init__(self, *, freeze_detector: bool = False, **kwargs):
        """
        Args:
            freeze_detector (bool): stage-wise training; the box head and predictor are frozen
                and give no losses (the meta-architecture freezes backbone and RPN).
            kwargs: as for :class:`StandardROIHeads`.
        """
        super().__init__(**kwargs)
        self.freeze_detector = freeze_detector
        if self.mask_on and hasattr(self.mask_head, "check_box_predictor"):
            self.mask_head.check_box_predictor(self.box_predictor)

    @classmethod
    def from_config(cls, cfg, input_shape):
        freeze = cfg.MODEL.MASKX.FREEZE_DETECTOR
        if freeze and cfg.MODEL.META_ARCHITECTURE != "MaskXRCNN":
            raise ValueError(
                "MODEL.MASKX.FREEZE_DETECTOR=True needs "
                "MODEL.META_ARCHITECTURE='MaskXRCNN' (it freezes backbone and RPN); "
                f"got {cfg.MODEL.META_ARCHITECTURE!r}"
            )
        ret = super().from_config(cfg, input_shape)
        ret["freeze_detector"] = freeze
        return ret

    def _forward_box(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        if self.training and self.freeze_detector:
            return {}  # frozen detector: no box losses, and no box-head compute in training
        return super()._forward_box(features, proposals)

    def _forward_mask(self, features: Dict[str, torch.Tensor], instances: List[Instances]):
        """Like StandardROIHeads._forward_mask, but trains only on RoIs whose GT has a mask and
        hands the box predictor to the mask head."""
        if not self.mask_on:
            return {} if self.training else instances
        if self.training:
            foreground, _ = select_foreground_proposals(instances, self.num_classes)
            instances = select_mask_supervised(foreground)
        boxes = [x.proposal_boxes if self.training else x.pred_boxes for x in instances]
        if self.mask_pooler is not None:
            features = self.mask_pooler([features[f] for f in self.mask_in_features], boxes)
        else:
            features = {f: features[f] for f in self.mask_in_features}
        return self.mask_head(features, instances, box_predictor=self.box_predictor)
