"""MNCROIHeads: the Multi-task Network Cascade (Dai, He, Sun, CVPR 2016) as detectron2 ROI heads.

Stage 1 is detectron2's RPN (class-agnostic boxes). Then, for every RoI:

- stage 2: one class-agnostic mask from its pooled features (the mask head, ``ROI_MASK_HEAD``);
- stage 3: its class and box regression (``FastRCNNOutputLayers``) from its box features (the
  box head) concatenated with its mask-pooled features (the RoI features times the stage-2 mask,
  :mod:`.mask_pooling`, through a second box head of their own);
- with 5 stages, stage 3's regression refines every RoI (:mod:`.refinement`) and stages 2-3 run
  again on the refined boxes, with the same weights (stages 4-5); at inference the candidates
  of stages 3 and 5 are merged before NMS (``MODEL.MNC.TEST_MERGE_STAGES``, the paper's).

RoIAlign stands in for the paper's RoI warping. Partial supervision, per instance as in the rest
of the project: the box losses come from every sampled RoI, the mask loss only from foreground
RoIs whose instance has a mask (:mod:`.mask_loss`); the classification stage sees the predicted
mask, never a ground-truth one, so box-only instances need none. Box-only classes get masks by
construction (the mask stage is class-agnostic).

Inference: detectron2's box inference (score threshold, class-wise NMS) on the last stage's
predictions, then the mask stage once more on the detections' final boxes, so that
``pred_masks`` (D, 1, M, M) are aligned with ``pred_boxes`` as in Mask R-CNN; that last step is
:meth:`forward_with_given_boxes`, unchanged, which the GT-box metrics call.

Shape letters: R RoIs of all images, C channels, P_b / P_m the box / mask poolers' sides, M mask
side, K foreground classes, D the box head's output width.
"""

from typing import Dict, List, Optional, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import (
    ROI_HEADS_REGISTRY,
    FastRCNNOutputLayers,
    StandardROIHeads,
    build_box_head,
)
from detectron2.structures import Instances
from detectron2.utils.events import get_event_storage
from torch import nn

from .config import MASK_HEADS, MASK_POOLING_FEATURES, MASK_POOLINGS, NUM_STAGES
from .mask_loss import mnc_mask_loss
from .mask_pooling import mask_pooled_features
from .refinement import merge_stages, refine_boxes, relabel_boxes

__all__ = ["MNCROIHeads", "check_mnc_config"]


def check_mnc_config(cfg) -> None:
    """Raise a ValueError naming the key of a config that MNCROIHeads cannot run."""
    mnc = cfg.MODEL.MNC
    choices = [
        ("NUM_STAGES", NUM_STAGES),
        ("MASK_POOLING", MASK_POOLINGS),
        ("MASK_POOLING_FEATURES", MASK_POOLING_FEATURES),
    ]
    for key, allowed in choices:
        if mnc.get(key) not in allowed:
            raise ValueError(f"MODEL.MNC.{key} must be one of {allowed}, got {mnc.get(key)!r}")
    for key in ("MASK_LOSS_WEIGHT", "CLS_LOSS_WEIGHT", "REFINED_LOSS_WEIGHT"):
        if mnc.get(key) < 0:
            raise ValueError(f"MODEL.MNC.{key} must not be negative, got {mnc.get(key)}")
    mask_head = cfg.MODEL.ROI_MASK_HEAD
    if not cfg.MODEL.MASK_ON or not mask_head.POOLER_TYPE:
        # Stage 3 classifies with the mask of stage 2: there is no MNC without it.
        raise ValueError(
            "MNCROIHeads needs its mask stage on pooled RoI features: MODEL.MASK_ON=True and a "
            f"MODEL.ROI_MASK_HEAD.POOLER_TYPE, got {cfg.MODEL.MASK_ON} and "
            f"{mask_head.POOLER_TYPE!r}"
        )
    if mask_head.NAME not in MASK_HEADS:
        raise ValueError(
            f"MNCROIHeads needs a class-agnostic mask head whose layers() give (R, 1, M, M) "
            f"logits: MODEL.ROI_MASK_HEAD.NAME must be one of {MASK_HEADS}, got "
            f"{mask_head.NAME!r}"
        )
    if mask_head.NAME == "MaskRCNNConvUpsampleHead" and not mask_head.CLS_AGNOSTIC_MASK:
        # The mask comes before the class: there is no class to pick a channel with.
        raise ValueError(
            "MNC's mask stage runs before classification, so it is class-agnostic: set "
            "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK=True"
        )
    if cfg.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES:
        raise ValueError(
            "MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES is not supported by MNCROIHeads (its "
            "5-stage cascade, MODEL.MNC.NUM_STAGES=5, trains on regressed boxes)"
        )


def _flat_width(shape: ShapeSpec) -> int:
    return shape.channels * (shape.height or 1) * (shape.width or 1)


def _refined_loss_name(name: str) -> str:
    """loss_mask -> loss_mask_stage4, loss_cls -> loss_cls_stage5, ..."""
    return f"{name}_stage4" if name == "loss_mask" else f"{name}_stage5"


@ROI_HEADS_REGISTRY.register()
class MNCROIHeads(StandardROIHeads):
    @configurable
    def __init__(
        self,
        *,
        mask_pathway_head: Optional[nn.Module],
        num_stages: int = 3,
        mask_pooling: str = "soft",
        mask_pooling_features: str = "box",
        detach_mask: bool = True,
        mask_loss_weight: float = 1.0,
        refined_loss_weight: float = 1.0,
        test_merge_stages: bool = True,
        **kwargs,
    ):
        """
        Args:
            mask_pathway_head: the head on the mask-pooled (R, C, P, P) features, whose output
                the box predictor reads after the box head's; None without mask pooling.
            num_stages: 3 or 5.
            mask_pooling: "soft", "hard" or "none" (see ``MODEL.MNC.MASK_POOLING``).
            mask_pooling_features: "box" or "mask": which pooled RoI features are mask-pooled.
            detach_mask: no gradient from the classification stage into the mask stage.
            mask_loss_weight: weight of the mask loss of stages 2 (and 4).
            refined_loss_weight: extra weight of every loss of stages 4-5.
            test_merge_stages: 5 stages, inference: stage 3's and stage 5's candidates together
                into the box inference (the paper), else stage 5's only.
            kwargs: as for :class:`StandardROIHeads`; the mask head (``layers`` giving
                (R, 1, M, M) logits) and its pooler are required, and the box predictor must
                read the box head's and the mask pathway's outputs concatenated.
        """
        super().__init__(**kwargs)
        if not self.mask_on or self.mask_pooler is None:
            raise ValueError("MNCROIHeads needs a mask head and a mask pooler (its stage 2)")
        if (mask_pathway_head is None) != (mask_pooling == "none"):
            raise ValueError(
                f"mask_pooling={mask_pooling!r} needs a mask pathway head exactly when it is not "
                "'none'"
            )
        self.mask_pathway_head = mask_pathway_head
        self.num_stages = num_stages
        self.mask_pooling = mask_pooling
        self.mask_pooling_features = mask_pooling_features
        self.detach_mask = detach_mask
        self.mask_loss_weight = mask_loss_weight
        self.refined_loss_weight = refined_loss_weight
        self.test_merge_stages = test_merge_stages

    @classmethod
    def from_config(cls, cfg, input_shape):
        check_mnc_config(cfg)
        ret = super().from_config(cfg, input_shape)
        mnc = cfg.MODEL.MNC
        ret.update(
            num_stages=mnc.NUM_STAGES,
            mask_pooling=mnc.MASK_POOLING,
            mask_pooling_features=mnc.MASK_POOLING_FEATURES,
            detach_mask=mnc.DETACH_MASK,
            mask_loss_weight=mnc.MASK_LOSS_WEIGHT,
            refined_loss_weight=mnc.REFINED_LOSS_WEIGHT,
            test_merge_stages=mnc.TEST_MERGE_STAGES,
        )
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        """StandardROIHeads' box pooler and head, the mask pathway's head (a second box head, on
        the mask-pooled features) and a box predictor on both heads' outputs."""
        ret = super()._init_box_head(cfg, input_shape)
        mnc = cfg.MODEL.MNC
        width = _flat_width(ret["box_head"].output_shape)
        pathway = None
        if mnc.MASK_POOLING != "none":
            box, mask = cfg.MODEL.ROI_BOX_HEAD, cfg.MODEL.ROI_MASK_HEAD
            side = (box if mnc.MASK_POOLING_FEATURES == "box" else mask).POOLER_RESOLUTION
            channels = input_shape[cfg.MODEL.ROI_HEADS.IN_FEATURES[0]].channels
            pathway = build_box_head(cfg, ShapeSpec(channels=channels, height=side, width=side))
            width += _flat_width(pathway.output_shape)
        loss_weight = {
            "loss_cls": mnc.CLS_LOSS_WEIGHT,
            "loss_box_reg": cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT,
        }
        ret["box_predictor"] = FastRCNNOutputLayers(
            cfg, ShapeSpec(channels=width), loss_weight=loss_weight
        )
        ret["mask_pathway_head"] = pathway
        return ret

    def forward(self, images, features, proposals, targets=None):
        """As :meth:`StandardROIHeads.forward`. In training the whole cascade runs here: the
        5-stage form needs ``targets`` to label its refined boxes."""
        if not self.training:
            return super().forward(images, features, proposals, targets)
        assert targets, "'targets' argument is required during training"
        proposals = self.label_and_sample_proposals(proposals, targets)
        mask_logits, predictions = self.mask_and_classify(features, proposals)
        losses = self.stage_losses(mask_logits, predictions, proposals)
        if self.num_stages == 5:
            refined = refine_boxes(self.box_predictor, predictions, proposals)
            refined = relabel_boxes(refined, targets, self.proposal_matcher, self.num_classes)
            # Stages 4-5 log their accuracies under their own prefix, not over those of 2-3.
            with get_event_storage().name_scope("mnc_stages_4_5"):
                mask_logits, predictions = self.mask_and_classify(features, refined)
                refined_losses = self.stage_losses(mask_logits, predictions, refined)
            for name, loss in refined_losses.items():
                losses[_refined_loss_name(name)] = loss * self.refined_loss_weight
        losses.update(self._forward_keypoint(features, proposals))
        return proposals, losses

    def mask_and_classify(
        self, features: Dict[str, torch.Tensor], rois: List[Instances]
    ) -> Tuple[Optional[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]:
        """Stages 2 and 3 (or 4 and 5) on the RoIs' ``proposal_boxes``.

        Returns:
            (R, 1, M, M) mask logits (None at inference without mask pooling: nothing reads
            them), and the box predictor's (scores (R, K+1), deltas (R, 4K) or (R, 4)).
        """
        boxes = [r.proposal_boxes for r in rois]
        box_features = self.box_pooler([features[f] for f in self.box_in_features], boxes)
        x = self.box_head(box_features).flatten(1)  # (R, D)
        mask_logits = None
        if self.training or self.mask_pathway_head is not None:
            mask_in = [features[f] for f in self.mask_in_features]
            mask_features = self.mask_pooler(mask_in, boxes)  # (R, C, P_m, P_m)
            mask_logits = self.mask_head.layers(mask_features)  # (R, 1, M, M)
        if self.mask_pathway_head is not None:
            mask = mask_logits.detach() if self.detach_mask else mask_logits
            roi_features = box_features if self.mask_pooling_features == "box" else mask_features
            pooled = mask_pooled_features(roi_features, mask, hard=self.mask_pooling == "hard")
            x = torch.cat([x, self.mask_pathway_head(pooled).flatten(1)], dim=1)
        return mask_logits, self.box_predictor(x)

    def stage_losses(
        self,
        mask_logits: torch.Tensor,
        predictions: Tuple[torch.Tensor, torch.Tensor],
        rois: List[Instances],
    ) -> Dict[str, torch.Tensor]:
        """loss_cls and loss_box_reg of every RoI (detectron2's, weighted by the predictor) and
        loss_mask of the foreground RoIs whose instance has a mask."""
        losses = self.box_predictor.losses(predictions, rois)
        vis_period = getattr(self.mask_head, "vis_period", 0)
        loss_mask = mnc_mask_loss(mask_logits, rois, self.num_classes, vis_period)
        losses["loss_mask"] = loss_mask * self.mask_loss_weight
        return losses

    def _forward_box(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        """Inference only (training runs in :meth:`forward`): the cascade on the proposals, then
        detectron2's box inference on the last classification stage's predictions. Returns the
        detections, per image Instances with ``pred_boxes``, ``scores``, ``pred_classes``."""
        assert not self.training, "MNCROIHeads trains through forward()"
        _, predictions = self.mask_and_classify(features, proposals)
        if self.num_stages == 5:
            refined = refine_boxes(self.box_predictor, predictions, proposals)
            _, refined_predictions = self.mask_and_classify(features, refined)
            if self.test_merge_stages:
                predictions, proposals = merge_stages(
                    (predictions, proposals), (refined_predictions, refined)
                )
            else:
                predictions, proposals = refined_predictions, refined
        detections, _ = self.box_predictor.inference(predictions, proposals)
        return detections
