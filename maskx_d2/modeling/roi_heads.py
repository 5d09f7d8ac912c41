"""MaskXROIHeads: detectron2's StandardROIHeads with partially supervised mask training.

Box classification and regression use every ground-truth instance (sets A and B); the mask
branch trains only on foreground proposals whose ground truth has a mask (see
:mod:`.partial_supervision`), and receives the box predictor so T can read the detector's
class weights. At inference every detected class gets a mask, including classes never seen
with masks. Options (off by default): the mask branch trains on ground-truth boxes instead of
or beside the proposals, box-only instances train it through a box-supervised loss
(:mod:`.mask_training_rois`, :mod:`.box_supervision`), and the box head's class activation map
of each RoI's class is added to its mask features (OPMask, :mod:`.class_activation`).
"""

import logging
from typing import Dict, List, Optional, Tuple

import torch
from detectron2.config import configurable
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.structures import Boxes, Instances

from ..config import MASK_TRAIN_BOXES
from .box_supervision import roi_lab_colours
from .class_activation import (
    CAM_NORMALIZATIONS,
    class_activation_maps,
    normalize_class_activation_maps,
    resize_class_activation_maps,
)
from .conv_gap_box_head import ConvGAPBoxHead
from .mask_training_rois import mask_training_rois
from .norm_statistics import running_statistics_kept

__all__ = ["MaskXROIHeads"]


@ROI_HEADS_REGISTRY.register()
class MaskXROIHeads(StandardROIHeads):
    @configurable
    def __init__(
        self,
        *,
        freeze_detector: bool = False,
        mask_train_boxes: str = "proposals",
        gt_box_jitter: float = 0.0,
        box_supervised_masks: bool = False,
        box_only_gt_padding: float = 0.0,
        colour_normalization: Optional[Tuple[List[float], List[float], str]] = None,
        pairwise_colour_smoothing: int = 1,
        class_activation_prior: bool = False,
        cam_normalization: str = "minmax",
        cam_detach_class_weights: bool = True,
        cam_detach_box_head: bool = False,
        **kwargs,
    ):
        """
        Args:
            freeze_detector (bool): stage-wise training; the box head and predictor are frozen
                and give no losses (the meta-architecture freezes backbone and RPN).
            mask_train_boxes (str): the boxes the mask branch trains on: "proposals", "gt" or
                "both" (see :func:`.mask_training_rois.mask_training_rois`).
            gt_box_jitter (float): random jitter of those ground-truth boxes, as a fraction of
                the box's size.
            box_supervised_masks (bool): the RoIs of box-only instances reach the mask head too,
                for its box-supervised loss (the mask head must have one: MaskXMaskHead with
                a positive projection or pairwise weight).
            box_only_gt_padding (float): the ground-truth-box RoIs of box-only instances grow by
                this fraction of their size on every side, so that the box-supervised losses see
                cells outside the box.
            colour_normalization: (pixel mean, pixel std, input format) of the images, given
                when the pairwise colour loss needs the RoIs' colours; None otherwise.
            pairwise_colour_smoothing (int): those colours are averaged over this odd window
                of image pixels first (:func:`.box_supervision.smooth_image`).
            class_activation_prior (bool): add each mask RoI's class activation map to its
                pooled mask features (OPMask); the box head must have ``feature_map`` (as
                :class:`ConvGAPBoxHead`) and the mask branch a pooler.
            cam_normalization (str): per-RoI scaling of the CAM: "minmax", "max" or "none".
            cam_detach_class_weights (bool): no mask-loss gradient into the classifier's rows.
            cam_detach_box_head (bool): no mask-loss gradient into the box head through the CAM.
            kwargs: as for :class:`StandardROIHeads`.
        """
        super().__init__(**kwargs)
        self.freeze_detector = freeze_detector
        self.mask_train_boxes = mask_train_boxes
        self.gt_box_jitter = gt_box_jitter
        self.box_supervised_masks = box_supervised_masks
        self.box_only_gt_padding = box_only_gt_padding
        self.colour_normalization = colour_normalization
        self.pairwise_colour_smoothing = pairwise_colour_smoothing
        if self.mask_on and hasattr(self.mask_head, "check_box_predictor"):
            self.mask_head.check_box_predictor(self.box_predictor)
        self.class_activation_prior = class_activation_prior and self.mask_on
        if self.class_activation_prior:
            if not hasattr(self.box_head, "feature_map") or self.mask_pooler is None:
                raise ValueError(
                    "the class activation prior needs a box head with feature_map() "
                    "(ConvGAPBoxHead) and a mask pooler"
                )
            if cam_normalization not in CAM_NORMALIZATIONS:
                raise ValueError(f"cam_normalization must be one of {CAM_NORMALIZATIONS}")
        self.cam_normalization = cam_normalization
        self.cam_detach_class_weights = cam_detach_class_weights
        self.cam_detach_box_head = cam_detach_box_head

    @classmethod
    def from_config(cls, cfg, input_shape):
        freeze = cfg.MODEL.MASKX.FREEZE_DETECTOR
        if freeze and cfg.MODEL.META_ARCHITECTURE != "MaskXRCNN":
            raise ValueError(
                "MODEL.MASKX.FREEZE_DETECTOR=True needs "
                "MODEL.META_ARCHITECTURE='MaskXRCNN' (it freezes backbone and RPN); "
                f"got {cfg.MODEL.META_ARCHITECTURE!r}"
            )
        mx = cfg.MODEL.MASKX
        if mx.MASK_TRAIN_BOXES not in MASK_TRAIN_BOXES:
            raise ValueError(
                f"MODEL.MASKX.MASK_TRAIN_BOXES must be one of {MASK_TRAIN_BOXES}, "
                f"got {mx.MASK_TRAIN_BOXES!r}"
            )
        if not 0 <= mx.GT_BOX_JITTER < 0.5:
            raise ValueError(
                f"MODEL.MASKX.GT_BOX_JITTER must be in [0, 0.5), got {mx.GT_BOX_JITTER}"
            )
        box = mx.BOX_SUPERVISION
        box_supervised = box.PROJECTION_WEIGHT > 0 or box.PAIRWISE_WEIGHT > 0
        if box_supervised and cfg.MODEL.ROI_MASK_HEAD.NAME != "MaskXMaskHead":
            # Any other head would put box-only RoIs through its ordinary mask loss.
            raise ValueError(
                "MODEL.MASKX.BOX_SUPERVISION needs MODEL.ROI_MASK_HEAD.NAME='MaskXMaskHead', "
                f"got {cfg.MODEL.ROI_MASK_HEAD.NAME!r}"
            )
        if not 0 <= box.GT_BOX_PADDING <= 1:
            raise ValueError(
                "MODEL.MASKX.BOX_SUPERVISION.GT_BOX_PADDING must be in [0, 1], "
                f"got {box.GT_BOX_PADDING}"
            )
        smoothing = box.PAIRWISE_COLOUR_SMOOTHING
        if smoothing < 1 or smoothing % 2 == 0:
            raise ValueError(
                "MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_COLOUR_SMOOTHING must be an odd window "
                f"side >= 1 (pixels), got {smoothing}"
            )
        if box_supervised and mx.MASK_TRAIN_BOXES == "gt" and box.GT_BOX_PADDING == 0:
            # Every RoI is its box: no cell outside it, so the losses never see its background.
            logging.getLogger(__name__).warning(
                "MODEL.MASKX.BOX_SUPERVISION with MASK_TRAIN_BOXES='gt' and GT_BOX_PADDING=0: "
                "the box-only RoIs are exactly their boxes, so a mask that fills the box "
                "satisfies the box-supervised losses; set GT_BOX_PADDING (e.g. 0.1)"
            )
        prior = mx.CLASS_ACTIVATION_PRIOR
        if prior.NORMALIZATION not in CAM_NORMALIZATIONS:
            raise ValueError(
                f"MODEL.MASKX.CLASS_ACTIVATION_PRIOR.NORMALIZATION must be one of "
                f"{CAM_NORMALIZATIONS}, got {prior.NORMALIZATION!r}"
            )
        if prior.ENABLED and cfg.MODEL.ROI_BOX_HEAD.NAME != ConvGAPBoxHead.__name__:
            # Any other box head flattens its map into FCs: there is no CAM to take.
            raise ValueError(
                "MODEL.MASKX.CLASS_ACTIVATION_PRIOR.ENABLED=True needs "
                f"MODEL.ROI_BOX_HEAD.NAME='{ConvGAPBoxHead.__name__}' (convs, then global "
                f"average pooling), got {cfg.MODEL.ROI_BOX_HEAD.NAME!r}"
            )
        if prior.ENABLED and cfg.MODEL.MASK_ON and not cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE:
            raise ValueError(
                "MODEL.MASKX.CLASS_ACTIVATION_PRIOR.ENABLED=True adds the CAM to pooled mask "
                "features: MODEL.ROI_MASK_HEAD.POOLER_TYPE must not be empty"
            )
        ret = super().from_config(cfg, input_shape)
        ret.update(
            freeze_detector=freeze,
            mask_train_boxes=mx.MASK_TRAIN_BOXES,
            gt_box_jitter=mx.GT_BOX_JITTER,
            box_supervised_masks=box_supervised,
            box_only_gt_padding=box.GT_BOX_PADDING,
            class_activation_prior=prior.ENABLED,
            cam_normalization=prior.NORMALIZATION,
            cam_detach_class_weights=prior.DETACH_CLASS_WEIGHTS,
            cam_detach_box_head=prior.DETACH_BOX_HEAD,
        )
        if box.PAIRWISE_WEIGHT > 0:
            ret["colour_normalization"] = (
                list(cfg.MODEL.PIXEL_MEAN),
                list(cfg.MODEL.PIXEL_STD),
                cfg.INPUT.FORMAT,
            )
            ret["pairwise_colour_smoothing"] = smoothing
        return ret

    def forward(self, images, features, proposals, targets=None):
        """As :meth:`StandardROIHeads.forward`, except that in training the mask branch gets its
        own RoIs (:func:`mask_training_rois`), which may be the ground-truth boxes."""
        if not self.training:
            return super().forward(images, features, proposals, targets)
        assert targets, "'targets' argument is required during training"
        proposals = self.label_and_sample_proposals(proposals, targets)
        losses = self._forward_box(features, proposals)
        if self.mask_on:
            mask_rois = mask_training_rois(
                proposals,
                targets,
                self.num_classes,
                self.mask_train_boxes,
                self.gt_box_jitter,
                self.box_supervised_masks,
                self.box_only_gt_padding,
            )
            if self.colour_normalization is not None:
                self._attach_lab_colours(images, mask_rois)
            losses.update(self._forward_mask(features, mask_rois))
        losses.update(self._forward_keypoint(features, proposals))
        return proposals, losses

    def _attach_lab_colours(self, images, rois: List[Instances]) -> None:
        """Set ``gt_lab`` (R_i, 3, M, M), the Lab colour of each RoI's mask cells, from the
        batch's normalized images (for the pairwise colour loss)."""
        mean, std, input_format = self.colour_normalization
        x = images.tensor
        pixels = x * torch.tensor(std, device=x.device)[:, None, None]
        pixels = pixels + torch.tensor(mean, device=x.device)[:, None, None]
        rgb = (pixels.flip(1) if input_format == "BGR" else pixels) / 255.0
        side = 2 * self.mask_pooler.output_size[0]  # the mask head's deconv doubles it
        boxes = [r.proposal_boxes.tensor for r in rois]
        for r, lab in zip(
            rois, roi_lab_colours(rgb.clamp(0, 1), boxes, side, self.pairwise_colour_smoothing)
        ):
            r.gt_lab = lab

    def _forward_box(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        if self.training and self.freeze_detector:
            return {}  # frozen detector: no box losses, and no box-head compute in training
        return super()._forward_box(features, proposals)

    def _forward_mask(self, features: Dict[str, torch.Tensor], instances: List[Instances]):
        """Like StandardROIHeads._forward_mask, but in training ``instances`` are already the
        mask branch's RoIs (see :meth:`forward`), the mask head gets the box predictor, and with
        the class activation prior each RoI's CAM is added to its pooled features."""
        if not self.mask_on:
            return {} if self.training else instances
        boxes = [x.proposal_boxes if self.training else x.pred_boxes for x in instances]
        if self.mask_pooler is not None:
            mask_features = self.mask_pooler([features[f] for f in self.mask_in_features], boxes)
            if self.class_activation_prior:
                cams = self._class_activation_prior(features, boxes, instances)
                mask_features = mask_features + cams[:, None].to(mask_features.dtype)
        else:
            mask_features = {f: features[f] for f in self.mask_in_features}
        return self.mask_head(mask_features, instances, box_predictor=self.box_predictor)

    def _class_activation_prior(
        self, features: Dict[str, torch.Tensor], boxes: List[Boxes], instances: List[Instances]
    ) -> torch.Tensor:
        """(R, P, P) each mask RoI's CAM for its class (training: ``gt_classes``, inference:
        ``pred_classes``), normalized and resized to the mask pooler's side P. The box head runs
        on the mask RoIs' own boxes: they may be ground-truth boxes, not the box branch's
        proposals."""
        box_features = self.box_pooler([features[f] for f in self.box_in_features], boxes)
        # Detached: no graph is built through the box head's convs at all. A BatchNorm box head
        # keeps the running statistics of the box branch's RoIs, not of these.
        with torch.set_grad_enabled(
            torch.is_grad_enabled() and not self.cam_detach_box_head
        ), running_statistics_kept(self.box_head):
            feature_map = self.box_head.feature_map(box_features)  # (R, D, S, S)
        weights = self.box_predictor.cls_score.weight  # (K + 1, D)
        if self.cam_detach_class_weights:
            weights = weights.detach()
        field = "gt_classes" if self.training else "pred_classes"
        classes = [x.get(field) for x in instances]
        classes = (
            torch.cat(classes).to(torch.int64)
            if classes
            else torch.zeros(0, dtype=torch.int64, device=feature_map.device)
        )
        cams = class_activation_maps(feature_map, weights, classes)
        cams = normalize_class_activation_maps(cams, self.cam_normalization)
        return resize_class_activation_maps(cams, self.mask_pooler.output_size[0])
