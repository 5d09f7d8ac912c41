"""Masks predicted on ground-truth boxes, for measuring the mask branch without detection.

Three pieces, used by ``train_net.py`` when ``TEST.MASKX.GT_BOX_EVAL`` is on:

- :class:`GTBoxTestMapper` keeps, next to detectron2's usual test inputs, the box, class and
  annotation id of every ground-truth instance that has a mask (crowd regions and box-only
  instances are left out: there is no mask to compare with);
- :class:`GTBoxMaskModel` wraps a model for evaluation: its outputs are the model's own, plus
  ``"gt_box_instances"`` per image, the masks its mask branch predicts from each ground-truth box
  and class (scores 1). The backbone runs once for both;
- :func:`gt_box_eval_applies` says for which evaluation sets this is done.

The evaluator (:class:`~maskx_d2.evaluation.PartiallySupervisedCOCOEvaluator`) turns
``gt_box_instances`` into mean mask IoU and mask AP (see :mod:`.gt_box_metrics`).
"""

import logging
from typing import Dict, List

import torch
from detectron2.data import DatasetMapper, MetadataCatalog
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import Boxes, BoxMode, Instances
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from maskx_d2.data.mapper import has_usable_segmentation

__all__ = [
    "GT_BOX_KEY",
    "GTBoxMaskModel",
    "GTBoxTestMapper",
    "gt_box_eval_applies",
    "gt_box_instances",
]

logger = logging.getLogger("maskx_d2.evaluation")

# Key of the kept ground truth in a mapped test input, and of the predictions in an output.
GT_BOX_KEY = "gt_box_annotations"
OUTPUT_KEY = "gt_box_instances"


def gt_box_eval_applies(cfg, dataset_name: str) -> bool:
    """Whether ``dataset_name`` is evaluated on ground-truth boxes too: the key is on, the model
    has masks, and the set is partially supervised (``evaluator_type == "coco_partial"``).
    A set of that type without any mask is still mapped this way; it simply yields no
    ground-truth instance, and the evaluator says so."""
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
    return bool(
        cfg.TEST.MASKX.GT_BOX_EVAL and cfg.MODEL.MASK_ON and evaluator_type == "coco_partial"
    )


class GTBoxTestMapper(DatasetMapper):
    """detectron2's test-time :class:`DatasetMapper` that also keeps, under ``GT_BOX_KEY``,
    ``{"bbox": [x0, y0, x1, y1], "category_id", "id"}`` (original image coordinates, contiguous
    class) of each non-crowd annotation with a usable mask."""

    def __call__(self, dataset_dict):
        annotations = dataset_dict.get("annotations", [])
        kept = [
            {
                "bbox": BoxMode.convert(ann["bbox"], ann["bbox_mode"], BoxMode.XYXY_ABS),
                "category_id": ann["category_id"],
                "id": ann.get("id", -1),
            }
            for ann in annotations
            if not ann.get("iscrowd", 0) and has_usable_segmentation(ann.get("segmentation"))
        ]
        mapped = super().__call__(dataset_dict)  # drops "annotations" at test time
        mapped[GT_BOX_KEY] = kept
        return mapped


def gt_box_instances(batched_input: dict, image_size) -> Instances:
    """The kept ground truth of one mapped input as detections on the network's input.

    Args:
        batched_input: a :class:`GTBoxTestMapper` output (``height``, ``width``: original size).
        image_size: (H', W') of the resized image the network sees.
    Returns:
        Instances of size (H', W') with ``pred_boxes`` (N, 4) scaled from the original image
        (the inverse of detectron2's ``detector_postprocess``), ``pred_classes`` (N,),
        ``scores`` (N,) ones and ``gt_ann_ids`` (N,).
    """
    annotations = batched_input.get(GT_BOX_KEY, [])
    height = batched_input.get("height", image_size[0])
    width = batched_input.get("width", image_size[1])
    scale = torch.tensor([image_size[1] / width, image_size[0] / height] * 2, dtype=torch.float32)
    boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32).reshape(-1, 4)
    instances = Instances(tuple(image_size))
    instances.pred_boxes = Boxes(boxes * scale)
    instances.pred_classes = torch.tensor(
        [a["category_id"] for a in annotations], dtype=torch.int64
    )
    instances.scores = torch.ones(len(annotations))
    instances.gt_ann_ids = torch.tensor([a["id"] for a in annotations], dtype=torch.int64)
    return instances


class GTBoxMaskModel(nn.Module):
    """A model for evaluation whose outputs also hold masks predicted on ground-truth boxes.

    Inputs without ``GT_BOX_KEY`` go through the model unchanged. Otherwise, for a
    :class:`GeneralizedRCNN` (any ROI heads with a mask head): one backbone pass, then the usual
    detections and ``roi_heads.forward_with_given_boxes`` on the ground-truth boxes and
    classes, both post-processed to the original image size. Any other model must offer
    ``inference_with_given_boxes(batched_inputs, given)`` returning (its outputs, the outputs
    on the given boxes), as :class:`maskx_d2.blendmask.BlendMask` does. Each output dict gets
    ``"gt_box_instances"``: Instances with ``pred_masks`` (N, H, W), ``pred_boxes``,
    ``pred_classes``, ``scores`` (ones) and ``gt_ann_ids``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        inner = model.module if isinstance(model, DistributedDataParallel) else model
        if not isinstance(inner, GeneralizedRCNN) and not hasattr(
            inner, "inference_with_given_boxes"
        ):
            raise TypeError(
                f"TEST.MASKX.GT_BOX_EVAL supports GeneralizedRCNN models and models with an "
                f"inference_with_given_boxes method, not {type(inner).__name__}; set "
                "TEST.MASKX.GT_BOX_EVAL False to evaluate it."
            )
        self.inner = inner

    def forward(self, batched_inputs: List[Dict]):
        if self.model.training or not any(GT_BOX_KEY in x for x in batched_inputs):
            return self.model(batched_inputs)
        model = self.inner
        if not isinstance(model, GeneralizedRCNN):
            # Other systems (BlendMask): (H', W') of the resized image is the mapped tensor's.
            given = [
                gt_box_instances(x, tuple(x["image"].shape[-2:])).to(model.device)
                for x in batched_inputs
            ]
            outputs, gt_outputs = model.inference_with_given_boxes(batched_inputs, given)
            for output, gt_output in zip(outputs, gt_outputs):
                output[OUTPUT_KEY] = gt_output["instances"]
            return outputs
        images = model.preprocess_image(batched_inputs)
        features = model.backbone(images.tensor)
        if model.proposal_generator is not None:
            proposals, _ = model.proposal_generator(images, features, None)
        else:
            proposals = [x["proposals"].to(model.device) for x in batched_inputs]
        detections, _ = model.roi_heads(images, features, proposals, None)
        given = [
            gt_box_instances(x, size).to(model.device)
            for x, size in zip(batched_inputs, images.image_sizes)
        ]
        on_gt_boxes = model.roi_heads.forward_with_given_boxes(features, given)
        outputs = GeneralizedRCNN._postprocess(detections, batched_inputs, images.image_sizes)
        gt_outputs = GeneralizedRCNN._postprocess(on_gt_boxes, batched_inputs, images.image_sizes)
        for output, gt_output in zip(outputs, gt_outputs):
            output[OUTPUT_KEY] = gt_output["instances"]
        return outputs
