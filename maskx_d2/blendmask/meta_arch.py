"""BlendMask (Chen et al., CVPR 2020) on detectron2's FCOS, trained under partial supervision.

detectron2's :class:`FCOS` gives the detector (head, matching, focal / GIoU / centerness losses,
all reused unchanged); this module adds its missing ``from_config``, the bottom module
(:mod:`.bottom_module`), the top layer (:mod:`.head`) and the blender (:mod:`.blender`).

Partial supervision, per instance as in the rest of the project: every instance trains
detection; only the positive locations of instances with a mask (``gt_has_mask``) train the
blender, the bases and the attentions; a batch without masks gives a zero ``loss_mask`` that
keeps every mask parameter in the graph. The blender is class-agnostic, so box-only classes get
masks by construction.

Shape letters: N images, L locations of all FCOS levels, K bases, M attention side,
S = BOTTOM_RESOLUTION, D detections.
"""

from typing import Dict, List, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ROIAlign, ShapeSpec, batched_nms, cat
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.modeling.meta_arch.dense_detector import permute_to_N_HWA_K
from detectron2.modeling.meta_arch.fcos import FCOS
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from ..modeling.partial_supervision import mask_availability
from .blender import blend, blended_mask_loss, crop_bases
from .bottom_module import BasisModule
from .head import BlendMaskHead

__all__ = ["BlendMask"]


def _head_input_shapes(backbone_shapes: Dict[str, ShapeSpec], in_features: List[str]):
    missing = [f for f in in_features if f not in backbone_shapes]
    if not in_features or missing:
        raise ValueError(
            f"MODEL.FCOS.IN_FEATURES={list(in_features)}: the backbone has no "
            f"{missing or 'features listed'}; it gives {sorted(backbone_shapes)}"
        )
    shapes = [backbone_shapes[f] for f in in_features]
    if len({s.channels for s in shapes}) != 1:
        raise ValueError(f"MODEL.FCOS.IN_FEATURES={list(in_features)} differ in channels")
    return shapes


@META_ARCH_REGISTRY.register()
class BlendMask(FCOS):
    @configurable
    def __init__(
        self,
        *,
        basis_module: BasisModule,
        num_bases: int,
        bottom_resolution: int,
        attention_resolution: int,
        mask_loss_weight: float = 1.0,
        max_train_masks: int = -1,
        mask_threshold: float = 0.5,
        **kwargs,
    ):
        """
        Args:
            basis_module: predicts the K bases from the backbone's features.
            num_bases, bottom_resolution, attention_resolution: K, S and M.
            mask_loss_weight: weight of ``loss_mask``.
            max_train_masks: at most this many positives train the blender per batch (-1: all).
            mask_threshold: probability threshold of the pasted masks.
            kwargs: as for :class:`FCOS`; ``head`` must be a :class:`BlendMaskHead` whose top
                layer predicts K M M channels.
        """
        super().__init__(**kwargs)
        self.basis_module = basis_module
        self.num_bases = num_bases
        self.attention_resolution = attention_resolution
        self.attention_dim = num_bases * attention_resolution**2
        if self.head.top_layer.out_channels != self.attention_dim:
            raise ValueError(
                f"the head's top layer predicts {self.head.top_layer.out_channels} channels per "
                f"location, not K x M x M = {self.attention_dim}"
            )
        self.bases_pooler = ROIAlign(
            (bottom_resolution, bottom_resolution),
            spatial_scale=1.0 / basis_module.stride,
            sampling_ratio=1,
            aligned=True,
        )
        self.bottom_resolution = bottom_resolution
        self.mask_loss_weight = mask_loss_weight
        self.max_train_masks = max_train_masks
        self.mask_threshold = mask_threshold

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        fcos, blendmask = cfg.MODEL.FCOS, cfg.MODEL.BLENDMASK
        head_shapes = _head_input_shapes(backbone.output_shape(), list(fcos.IN_FEATURES))
        num_bases, side = blendmask.NUM_BASES, blendmask.ATTENTION_RESOLUTION
        if num_bases < 1 or side < 1 or blendmask.BOTTOM_RESOLUTION < 1:
            raise ValueError(
                "MODEL.BLENDMASK.NUM_BASES, ATTENTION_RESOLUTION and BOTTOM_RESOLUTION must be "
                f"positive, got {num_bases}, {side}, {blendmask.BOTTOM_RESOLUTION}"
            )
        head = BlendMaskHead(
            input_shape=head_shapes,
            conv_dims=[head_shapes[0].channels] * fcos.NUM_CONVS,
            num_classes=fcos.NUM_CLASSES,
            norm=fcos.NORM,
            prior_prob=fcos.PRIOR_PROB,
            attention_channels=num_bases * side * side,
        )
        basis_module = BasisModule(
            backbone.output_shape(),
            in_features=list(blendmask.BOTTOM_IN_FEATURES),
            conv_dim=blendmask.BOTTOM_CONV_DIM,
            num_conv=blendmask.BOTTOM_NUM_CONV,
            num_bases=num_bases,
            norm=blendmask.BOTTOM_NORM,
        )
        return {
            "backbone": backbone,
            "head": head,
            "head_in_features": list(fcos.IN_FEATURES),
            "num_classes": fcos.NUM_CLASSES,
            "center_sampling_radius": fcos.CENTER_SAMPLING_RADIUS,
            "focal_loss_alpha": fcos.FOCAL_LOSS_ALPHA,
            "focal_loss_gamma": fcos.FOCAL_LOSS_GAMMA,
            "test_score_thresh": fcos.SCORE_THRESH_TEST,
            "test_topk_candidates": fcos.TOPK_CANDIDATES_TEST,
            "test_nms_thresh": fcos.NMS_THRESH_TEST,
            "max_detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "basis_module": basis_module,
            "num_bases": num_bases,
            "bottom_resolution": blendmask.BOTTOM_RESOLUTION,
            "attention_resolution": side,
            "mask_loss_weight": blendmask.MASK_LOSS_WEIGHT,
            "max_train_masks": blendmask.MAX_TRAIN_MASKS,
            "mask_threshold": blendmask.MASK_THRESHOLD,
        }

    # ---------------------------------------------------------------- the shared forward pass
    def _run(self, batched_inputs):
        """Backbone, bases and head once: (images, head features, bases (N, K, H, W),
        [class logits, box deltas, centerness, attentions] per level)."""
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        bases = self.basis_module(features)
        head_features = [features[f] for f in self.head_in_features]
        return images, head_features, bases, list(self.head(head_features))

    def forward(self, batched_inputs):
        """As :meth:`DenseDetector.forward`; inference outputs also hold ``pred_masks``."""
        images, features, bases, predictions = self._run(batched_inputs)
        if self.training:
            assert "instances" in batched_inputs[0], "Instance annotations are missing in training!"
            gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
            losses = super().forward_training(images, features, predictions[:3], gt_instances)
            mask_loss = self.mask_loss(features, predictions[3], bases, gt_instances)
            losses["loss_mask"] = self.mask_loss_weight * mask_loss
            return losses
        detections = self.forward_inference(images, features, predictions)
        self.attach_masks(detections, bases)
        return self._postprocess(detections, batched_inputs, images.image_sizes)

    def inference_with_given_boxes(
        self, batched_inputs, given: List[Instances]
    ) -> Tuple[List[dict], List[dict]]:
        """One pass for the detections and for masks on given boxes (the GT-box metrics).

        Args:
            given: per image, Instances on the network's input with ``pred_boxes`` (and any
                other fields, kept). Each box takes the attention of the location that FCOS
                would make a positive of it closest to its centre (:meth:`box_locations`).
        Returns:
            (detections, masks on the given boxes), each a list of ``{"instances": ...}`` in
            the original image size.
        """
        images, features, bases, predictions = self._run(batched_inputs)
        detections = self.forward_inference(images, features, predictions)
        self.attach_masks(detections, bases)
        anchors = self.anchor_generator(features)
        attentions = self._flat_attentions(predictions[3])
        for i, boxes in enumerate(given):
            boxes.attentions = attentions[i, self.box_locations(anchors, boxes.pred_boxes)]
        self.attach_masks(given, bases)
        return (
            self._postprocess(detections, batched_inputs, images.image_sizes),
            self._postprocess(given, batched_inputs, images.image_sizes),
        )

    # ---------------------------------------------------------------------------- training
    def _flat_attentions(self, attentions: List[torch.Tensor]) -> torch.Tensor:
        """(N, L, K M M): the per-level (N, K M M, H_l, W_l) maps in FCOS's location order."""
        return cat([permute_to_N_HWA_K(a, self.attention_dim) for a in attentions], dim=1)

    @torch.no_grad()
    def matched_gt(self, anchors: List[Boxes], instances: Instances) -> torch.Tensor:
        """(L,) the ground-truth index each location is a positive of, -1 for background:
        FCOS's own rule (``label_anchors`` applies it too, but does not return the indices)."""
        if len(instances) == 0:
            return torch.full((sum(len(a) for a in anchors),), -1, device=self.device)
        quality, matched = self._match_anchors(instances.gt_boxes, anchors).max(dim=0)
        matched[quality < 1e-5] = -1
        return matched

    def mask_loss(self, features, attentions, bases, gt_instances) -> torch.Tensor:
        """Mean BCE of the blended masks of the positive locations of instances with masks.

        Bases are cropped with the ground-truth box of the instance (as AdelaiDet trains), once
        per instance; each positive blends them with its own attention.
        """
        anchors = self.anchor_generator(features)
        flat_attentions = self._flat_attentions(attentions)
        gt_boxes, image_index, targets, attention_rows, crop_rows = [], [], [], [], []
        num_masked = 0
        for i, instances in enumerate(gt_instances):
            has_mask = mask_availability(instances) if len(instances) else None
            if has_mask is None or not has_mask.any():
                continue
            masked = has_mask.nonzero().squeeze(1)  # (G_i,)
            boxes = instances.gt_boxes.tensor[masked]
            gt_boxes.append(boxes)
            image_index.append(torch.full((len(masked),), i, device=boxes.device))
            masks = instances.gt_masks[masked].crop_and_resize(boxes, self.bottom_resolution)
            targets.append(masks.to(device=boxes.device))
            row_of_gt = torch.full((len(instances),), -1, dtype=torch.long, device=boxes.device)
            row_of_gt[masked] = torch.arange(len(masked), device=boxes.device) + num_masked
            num_masked += len(masked)
            matched = self.matched_gt(anchors, instances)
            rows = torch.where(matched >= 0, row_of_gt[matched.clamp(min=0)], -1)
            locations = (rows >= 0).nonzero().squeeze(1)
            attention_rows.append(flat_attentions[i, locations])
            crop_rows.append(rows[locations])
        attention_rows = cat(attention_rows) if attention_rows else flat_attentions[:0, 0]
        if len(attention_rows) == 0:
            # Zero, with every mask parameter in the graph (their gradients are 0, not None).
            return bases.sum() * 0.0 + sum(a.sum() for a in attentions) * 0.0
        crop_rows = cat(crop_rows)
        if 0 < self.max_train_masks < len(crop_rows):
            keep = torch.randperm(len(crop_rows), device=crop_rows.device)[: self.max_train_masks]
            attention_rows, crop_rows = attention_rows[keep], crop_rows[keep]
        cropped = crop_bases(self.bases_pooler, bases, cat(gt_boxes), cat(image_index))
        side = self.attention_resolution
        logits = blend(cropped[crop_rows], attention_rows.view(-1, self.num_bases, side, side))
        return blended_mask_loss(logits, cat(targets)[crop_rows])

    # --------------------------------------------------------------------------- inference
    def forward_inference(self, images, features, predictions) -> List[Instances]:
        """FCOS's inference (score sqrt(class prob x centerness), per-level top-k, class-wise
        NMS), keeping each detection's attention (``attentions`` (D, K M M)), which
        detectron2's decoder drops with the location index."""
        logits, deltas, centerness, attentions = self._transpose_dense_predictions(
            predictions, [self.num_classes, 4, 1, self.attention_dim]
        )
        anchors = self.anchor_generator(features)
        results = []
        for i, image_size in enumerate(images.image_sizes):
            per_level = [
                self._decode_level(
                    level_anchors,
                    torch.sqrt(cls[i].sigmoid() * ctr[i].sigmoid()),
                    reg[i],
                    att[i],
                    image_size,
                )
                for level_anchors, cls, reg, ctr, att in zip(
                    anchors, logits, deltas, centerness, attentions
                )
            ]
            detections = Instances.cat(per_level)
            keep = batched_nms(
                detections.pred_boxes.tensor,
                detections.scores,
                detections.pred_classes,
                self.test_nms_thresh,
            )
            results.append(detections[keep[: self.max_detections_per_image]])
        return results

    def _decode_level(self, anchors: Boxes, scores, deltas, attentions, image_size) -> Instances:
        """One level of one image: scores (L_l, C), deltas (L_l, 4), attentions (L_l, K M M)
        -> Instances with pred_boxes, scores, pred_classes, attentions (threshold, top-k)."""
        candidates = (scores > self.test_score_thresh).nonzero()  # (P, 2): location, class
        top_scores, order = scores[candidates[:, 0], candidates[:, 1]].topk(
            min(len(candidates), self.test_topk_candidates)
        )
        locations, classes = candidates[order].unbind(dim=1)
        boxes = self.box2box_transform.apply_deltas(deltas[locations], anchors.tensor[locations])
        return Instances(
            image_size,
            pred_boxes=Boxes(boxes),
            scores=top_scores,
            pred_classes=classes,
            attentions=attentions[locations],
        )

    def box_locations(self, anchors: List[Boxes], boxes: Boxes) -> torch.Tensor:
        """(B,) for each box, the location whose attention segments it: among those FCOS would
        make positives of it, the one nearest its centre; if none (a box smaller than every
        level's stride), the nearest location of any level."""
        if len(boxes) == 0:
            return torch.zeros(0, dtype=torch.long, device=boxes.tensor.device)
        is_positive = self._match_anchors(boxes, anchors) > 0  # (B, L)
        centers = Boxes.cat(anchors).get_centers()  # (L, 2)
        distance = torch.cdist(boxes.get_centers(), centers)  # (B, L) pixels
        has_positive = is_positive.any(dim=1, keepdim=True)
        return distance.masked_fill(has_positive & ~is_positive, float("inf")).argmin(dim=1)

    def attach_masks(self, results: List[Instances], bases: torch.Tensor) -> None:
        """Replace each Instances' ``attentions`` (D, K M M) by ``pred_masks`` (D, 1, S, S),
        the blended mask probabilities on its ``pred_boxes``."""
        boxes = cat([r.pred_boxes.tensor for r in results])
        image_index = cat(
            [torch.full((len(r),), i, device=boxes.device) for i, r in enumerate(results)]
        )
        side = self.attention_resolution
        attentions = cat([r.attentions for r in results]).view(-1, self.num_bases, side, side)
        if len(boxes):
            cropped = crop_bases(self.bases_pooler, bases, boxes, image_index)
            probabilities = blend(cropped, attentions).sigmoid()[:, None]
        else:
            probabilities = bases.new_zeros((0, 1, self.bottom_resolution, self.bottom_resolution))
        for r, masks in zip(results, probabilities.split([len(r) for r in results])):
            r.remove("attentions")
            r.pred_masks = masks

    def _postprocess(self, results, batched_inputs, image_sizes) -> List[dict]:
        return [
            {
                "instances": detector_postprocess(
                    r,
                    x.get("height", size[0]),
                    x.get("width", size[1]),
                    mask_threshold=self.mask_threshold,
                )
            }
            for r, x, size in zip(results, batched_inputs, image_sizes)
        ]
