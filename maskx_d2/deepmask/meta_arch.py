"""DeepMask (Pinheiro, Collobert, Dollár, NeurIPS 2015) on a detectron2 trunk, under partial
supervision: class-agnostic segment proposals.

A window of P x P pixels at one scale of an image pyramid is w x w cells of the trunk's map
(:mod:`.windows`). On it the segmentation branch predicts the mask of the object centred in the
window and the score branch whether such an object is there at a fitting scale
(:mod:`.branches`).

- Training: each image at one pyramid scale (:func:`.targets.choose_scale`); windows of its grid
  labelled (:func:`.targets.label_windows`), sampled, and cut from the trunk's map with RoIAlign
  (exactly their cells: the windows lie on the grid). Partial supervision as in the rest of the
  project: only positives of instances with a mask (``gt_has_mask``) train the segmentation
  branch; ``MODEL.DEEPMASK.SCORE_OBJECTS`` says which instances the score branch learns from.
- Inference: every scale, every window at once (the branches as convolutions), the TOPK_TEST
  best-scored windows of all scales decoded into masks; class-agnostic proposals with
  ``pred_classes`` 0 (:mod:`.outputs`).

Shape letters: N images, R sampled windows, C trunk channels, w window side, K mask rank,
M mask side, D proposals.
"""

from typing import List

import torch
from detectron2.config import configurable
from detectron2.layers import ROIAlign, cat
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.modeling.sampling import subsample_labels
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn
from torch.nn import functional as F

from ..modeling.partial_supervision import mask_availability
from .branches import ScoreBranch, SegmentationBranch
from .config import check_deepmask_config
from .outputs import to_original_size
from .targets import IGNORE, NEGATIVE, choose_scale, label_windows
from .windows import fitting_windows, resize_and_pad, window_grid

__all__ = ["DeepMask"]


@META_ARCH_REGISTRY.register()
class DeepMask(nn.Module):
    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        in_feature: str,
        segmentation_branch: SegmentationBranch,
        score_branch: ScoreBranch,
        patch_size: int,
        object_size: float,
        center_tolerance: float,
        scale_tolerance: float,
        scales: List[float],
        windows_per_image: int,
        positive_fraction: float,
        score_objects: str = "all",
        mask_loss_weight: float = 1.0,
        score_loss_weight: float = 1.0,
        topk_test: int = 1000,
        mask_threshold: float = 0.5,
        pixel_mean: List[float],
        pixel_std: List[float],
    ):
        """
        Args:
            backbone: the trunk; ``in_feature`` names the map the branches read, of stride t.
            segmentation_branch, score_branch: on windows of ``patch_size`` / t cells.
            patch_size, object_size, center_tolerance, scale_tolerance: which windows are
                positives (:func:`.targets.fitting`), in pixels at the window's scale.
            scales: the image pyramid.
            windows_per_image, positive_fraction: the windows each image trains on.
            score_objects: "all", "masked" or "masked_ignore" (``MODEL.DEEPMASK.SCORE_OBJECTS``).
            topk_test, mask_threshold: proposals per image and their masks' threshold.
        """
        super().__init__()
        self.backbone = backbone
        self.in_feature = in_feature
        self.stride = backbone.output_shape()[in_feature].stride
        self.window = patch_size // self.stride
        self.segmentation_branch = segmentation_branch
        self.score_branch = score_branch
        # Exactly the w x w cells of a window on the grid: one sample at each bin's centre.
        self.pooler = ROIAlign(
            (self.window, self.window), 1.0 / self.stride, sampling_ratio=1, aligned=True
        )
        self.patch_size = patch_size
        self.fit = dict(
            patch=float(patch_size),
            object_size=float(object_size),
            center_tolerance=float(center_tolerance),
            scale_tolerance=float(scale_tolerance),
        )
        self.scales = list(scales)
        self.windows_per_image = windows_per_image
        self.positive_fraction = positive_fraction
        self.score_objects = score_objects
        self.mask_loss_weight = mask_loss_weight
        self.score_loss_weight = score_loss_weight
        self.topk_test = topk_test
        self.mask_threshold = mask_threshold
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        dm = cfg.MODEL.DEEPMASK
        feature = check_deepmask_config(dm, backbone.output_shape())
        stride, channels = feature.stride, feature.channels
        window = dm.PATCH_SIZE // stride
        return {
            "backbone": backbone,
            "in_feature": dm.IN_FEATURE,
            "segmentation_branch": SegmentationBranch(
                channels, window, dm.MASK_CONV_DIM, dm.MASK_RANK, dm.MASK_SIZE
            ),
            "score_branch": ScoreBranch(channels, window, list(dm.SCORE_FC_DIMS)),
            "patch_size": dm.PATCH_SIZE,
            "object_size": dm.OBJECT_SIZE,
            "center_tolerance": dm.CENTER_TOLERANCE,
            "scale_tolerance": dm.SCALE_TOLERANCE,
            "scales": [2.0**e for e in dm.SCALES_LOG2],
            "windows_per_image": dm.WINDOWS_PER_IMAGE,
            "positive_fraction": dm.POSITIVE_FRACTION,
            "score_objects": dm.SCORE_OBJECTS,
            "mask_loss_weight": dm.MASK_LOSS_WEIGHT,
            "score_loss_weight": dm.SCORE_LOSS_WEIGHT,
            "topk_test": dm.TOPK_TEST,
            "mask_threshold": dm.MASK_THRESHOLD,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs) -> ImageList:
        """Normalised images, batched with zero padding (the mean colour, like the pyramid's)."""
        images = [
            (x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs
        ]
        return ImageList.from_tensors(images)

    def forward(self, batched_inputs):
        """Training: {"loss_mask", "loss_score"}. Inference: per image {"instances"} at the
        original size with ``pred_masks`` (D, H, W) bool, ``pred_boxes`` (the masks' boxes),
        ``scores`` (the score's sigmoid) and ``pred_classes`` (all 0: one class, "object")."""
        images = self.preprocess_image(batched_inputs)
        if self.training:
            assert "instances" in batched_inputs[0], "Instance annotations are missing in training!"
            return self.losses(images, [x["instances"].to(self.device) for x in batched_inputs])
        levels = self.dense(images)
        proposals = self.proposals(levels, images.image_sizes)
        return to_original_size(proposals, batched_inputs, images.image_sizes, self.mask_threshold)

    def inference_with_given_boxes(self, batched_inputs, given: List[Instances]):
        """One pass for the proposals and for masks on given boxes (the GT-box metrics).

        Args:
            given: per image, Instances on the network input with ``pred_boxes`` (and any other
                fields, kept). Each box gets the mask of the window the model would propose for
                it: at the pyramid scale where its larger side is nearest OBJECT_SIZE, the window
                of the grid nearest its centre (:meth:`box_windows`).
        Returns:
            (proposals, masks on the given boxes), each a list of ``{"instances": ...}`` in the
            original image size; the second keeps the given boxes as ``pred_boxes``.
        """
        images = self.preprocess_image(batched_inputs)
        levels = self.dense(images)
        on_boxes = []
        for k, boxes in enumerate(given):
            windows, codes = self._gather(levels, k, self.box_windows(levels, boxes.pred_boxes))
            probs = self.segmentation_branch.decode(codes).sigmoid()
            on_boxes.append(
                Instances(boxes.image_size, windows=windows, mask_probs=probs, **boxes.get_fields())
            )
        sizes = images.image_sizes
        return (
            to_original_size(
                self.proposals(levels, sizes), batched_inputs, sizes, self.mask_threshold
            ),
            to_original_size(on_boxes, batched_inputs, sizes, self.mask_threshold),
        )

    def trunk(self, images: torch.Tensor, scale: float):
        """The trunk's map of (N, 3, H, W) normalised images at one pyramid scale: (its
        :class:`PyramidLevel`, features (N, C, H', W'))."""
        padded, scale_y, scale_x = resize_and_pad(images, scale, self.patch_size, self.stride)
        features = self.backbone(padded)[self.in_feature]
        grid = (features.shape, self.window, scale_y, scale_x, self.patch_size, self.stride)
        return window_grid(*grid), features

    # ---------------------------------------------------------------------------- training
    def _score_roles(self, has_mask: torch.Tensor):
        """(is_object, is_ignored), each (G,) bool, per ``score_objects``."""
        if self.score_objects == "all":
            return torch.ones_like(has_mask), torch.zeros_like(has_mask)
        if self.score_objects == "masked_ignore":
            return has_mask, ~has_mask
        return has_mask, torch.zeros_like(has_mask)  # "masked": box-only = background

    def losses(self, images: ImageList, gt_instances: List[Instances]):
        """Sum of binary logistic losses: per window for the score (``loss_score``), per pixel
        for the masks of positives with masks (``loss_mask``; zero, with every segmentation
        parameter in the graph, when there is none)."""
        has_mask = [mask_availability(inst).to(self.device) for inst in gt_instances]
        level_of = [
            choose_scale(
                inst.gt_boxes.tensor, self._score_roles(m)[0], self.scales, self.fit["object_size"]
            )
            for inst, m in zip(gt_instances, has_mask)
        ]
        crops, labels, mask_rows, mask_targets, num_windows = [], [], [], [], 0
        mask_size = self.segmentation_branch.mask_size
        for level_index in sorted(set(level_of)):  # one trunk pass per scale in use
            members = [k for k, level in enumerate(level_of) if level == level_index]
            level, features = self.trunk(images.tensor[members], self.scales[level_index])
            rois = []
            for b, k in enumerate(members):
                index, window_labels, matched = self._sample(
                    level, gt_instances[k], has_mask[k], images.image_sizes[k]
                )
                batch_index = torch.full((len(index), 1), float(b), device=self.device)
                rois.append(torch.cat([batch_index, level.padded_boxes(index)], dim=1))
                labels.append(window_labels)
                masked = (window_labels == 1).nonzero().squeeze(1)
                masked = masked[has_mask[k][matched[masked]]]  # positives with a mask
                if len(masked):  # the object alone, cropped to the window and resized to M x M
                    masks = gt_instances[k].gt_masks[matched[masked]]
                    boxes = level.input_boxes(index[masked])
                    mask_targets.append(masks.crop_and_resize(boxes, mask_size).to(self.device))
                    mask_rows.append(masked + num_windows)
                num_windows += len(index)
            crops.append(self.pooler(features, torch.cat(rois)))
        crops = cat(crops)
        score_logits = self.score_branch(crops)  # (R,)
        mask_logits = self.segmentation_branch(crops)  # (R, M, M)
        labels = cat(labels).to(score_logits.dtype)
        if len(labels):
            loss_score = F.binary_cross_entropy_with_logits(score_logits, labels)
        else:
            loss_score = score_logits.sum() * 0.0
        if mask_rows:
            loss_mask = F.binary_cross_entropy_with_logits(
                mask_logits[cat(mask_rows)], cat(mask_targets).to(mask_logits.dtype)
            )
        else:  # zero, but every segmentation parameter gets a (zero) gradient: DDP needs it
            loss_mask = mask_logits.sum() * 0.0
        return {
            "loss_mask": self.mask_loss_weight * loss_mask,
            "loss_score": self.score_loss_weight * loss_score,
        }

    def _sample(self, level, instances: Instances, has_mask: torch.Tensor, image_size):
        """The windows one image trains on: (index (R_i,), labels (R_i,) 1 or 0, matched
        instance (R_i,), -1 for negatives)."""
        centres = level.centres(self.device)
        scale = centres.new_tensor([level.scale_x, level.scale_y] * 2)
        is_object, is_ignored = self._score_roles(has_mask)
        labels, matched = label_windows(
            centres, instances.gt_boxes.tensor * scale, is_object, is_ignored, **self.fit
        )
        labels[~level.inside(image_size, self.device)] = IGNORE  # centred on the batch padding
        positive, negative = subsample_labels(
            labels, self.windows_per_image, self.positive_fraction, NEGATIVE
        )
        index = torch.cat([positive, negative])
        return index, labels[index], matched[index]

    # --------------------------------------------------------------------------- inference
    def dense(self, images: ImageList):
        """Every window of every scale: per scale (level, codes (N, K, rows, cols), score
        logits (N, rows, cols))."""
        levels = []
        for scale in self.scales:
            level, features = self.trunk(images.tensor, scale)
            codes = self.segmentation_branch.dense_codes(features)
            levels.append((level, codes, self.score_branch.dense(features)))
        return levels

    def proposals(self, levels, image_sizes) -> List[Instances]:
        """Per image, its TOPK_TEST best-scored windows of all scales (centred on the image):
        Instances with ``windows`` (D, 4), ``mask_probs`` (D, M, M), ``scores``, ``pred_classes``.
        """
        results = []
        for k, image_size in enumerate(image_sizes):
            scores, where = [], []
            for level_index, (level, _, logits) in enumerate(levels):
                index = level.inside(image_size, self.device).nonzero().squeeze(1)
                scores.append(logits[k].flatten()[index])
                where.append(torch.stack([torch.full_like(index, level_index), index], dim=1))
            scores, where = cat(scores), cat(where)
            top = scores.topk(min(self.topk_test, len(scores))).indices
            windows, codes = self._gather(levels, k, where[top])
            results.append(
                Instances(
                    image_size,
                    windows=windows,
                    mask_probs=self.segmentation_branch.decode(codes).sigmoid(),
                    scores=scores[top].sigmoid(),
                    pred_classes=torch.zeros(len(top), dtype=torch.long, device=self.device),
                )
            )
        return results

    def box_windows(self, levels, boxes: Boxes) -> torch.Tensor:
        """(B, 2) (scale index, window index) of the window fitting each box (B, on the network
        input) best (:func:`.windows.fitting_windows`)."""
        grids = [level for level, _, _ in levels]
        return fitting_windows(grids, boxes.tensor, self.fit["object_size"])

    def _gather(self, levels, k: int, where: torch.Tensor):
        """Windows (D, 4) on the network input and codes (D, K) of image ``k`` at ``where``
        (D, 2) (scale index, window index)."""
        rank = self.segmentation_branch.to_rank.out_features
        windows = torch.zeros((len(where), 4), device=self.device)
        codes = torch.zeros((len(where), rank), device=self.device)
        for level_index, (level, level_codes, _) in enumerate(levels):
            rows = (where[:, 0] == level_index).nonzero().squeeze(1)
            if len(rows):
                index = where[rows, 1]
                windows[rows] = level.input_boxes(index)
                codes[rows] = level_codes[k].flatten(1)[:, index].t()
        return windows, codes
