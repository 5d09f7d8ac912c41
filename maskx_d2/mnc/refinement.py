"""The 5-stage cascade's bridge: stage 3's box regression applied to every RoI, the refined
boxes matched to the ground truth again for the losses of stages 4-5, and, at inference, the
two classification stages' candidates merged before NMS.

Shape letters: R_i RoIs of image i, K foreground classes.
"""

from typing import List, Tuple

import torch
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances, pairwise_iou

__all__ = ["merge_stages", "refine_boxes", "relabel_boxes"]


@torch.no_grad()
def refine_boxes(
    box_predictor: FastRCNNOutputLayers,
    predictions: Tuple[torch.Tensor, torch.Tensor],
    rois: List[Instances],
) -> List[Instances]:
    """Each RoI moved by stage 3's regression for its most likely foreground class.

    The class is the predicted one in training too (not the ground truth's), so that stages 4-5
    train on the boxes they get at inference. No gradient: detectron2's RoIAlign has none with
    respect to the box coordinates, and Cascade R-CNN detaches its refined boxes too.

    Args:
        box_predictor: stage 3's predictor (its box transform, and softmax or sigmoid scores).
        predictions: its (scores (R, K+1), deltas (R, 4K) or (R, 4)) on ``rois``.
        rois: per image, Instances with ``proposal_boxes``.
    Returns:
        Per image, new Instances of the same length with only ``proposal_boxes``: the refined
        boxes clipped to the image (empty boxes are kept, so the RoIs of the two passes stay
        aligned; matched to nothing, they count as background).
    """
    boxes = box_predictor.predict_boxes(predictions, rois)  # per image (R_i, 4K) or (R_i, 4)
    probabilities = box_predictor.predict_probs(predictions, rois)  # per image (R_i, K+1)
    refined = []
    for boxes_i, probabilities_i, rois_i in zip(boxes, probabilities, rois):
        if boxes_i.shape[1] > 4:  # class-specific regression: the top foreground class's box
            per_class = boxes_i.view(-1, boxes_i.shape[1] // 4, 4)  # (R_i, K, 4)
            top_class = probabilities_i[:, :-1].argmax(dim=1)  # (R_i,)
            # gather, not Python lengths: a traced model must not bake in R_i (export).
            index = top_class.view(-1, 1, 1).expand(-1, 1, 4)
            boxes_i = per_class.gather(1, index).squeeze(1)
        instances = Instances(rois_i.image_size)
        instances.proposal_boxes = Boxes(boxes_i)
        instances.proposal_boxes.clip(rois_i.image_size)
        refined.append(instances)
    return refined


@torch.no_grad()
def relabel_boxes(
    rois: List[Instances], targets: List[Instances], matcher: Matcher, num_classes: int
) -> List[Instances]:
    """Match each RoI to the ground truth again, as ``label_and_sample_proposals`` does but
    without sampling (every refined RoI is kept, as in Cascade R-CNN).

    Args:
        rois: per image, Instances with ``proposal_boxes`` (modified in place).
        targets: per image, the ground truth (``gt_boxes``, ``gt_classes``, any other ``gt_*``
            field such as ``gt_masks`` and ``gt_has_mask``).
        matcher: the ROI heads' proposal matcher (ROI_HEADS.IOU_THRESHOLDS).
        num_classes: K; the background label.
    Returns:
        ``rois`` with ``gt_classes`` (R_i,) (K: background; a matcher's "ignore" label counts as
        background too, there is no sampling to leave it out) and, when the image has ground
        truth, every ``gt_*`` field of the matched instance.
    """
    for rois_i, targets_i in zip(rois, targets):
        matched, labels = matcher(pairwise_iou(targets_i.gt_boxes, rois_i.proposal_boxes))
        if len(targets_i) == 0:
            rois_i.gt_classes = torch.full_like(matched, num_classes)
            continue
        for name, value in targets_i.get_fields().items():
            if name.startswith("gt_"):
                rois_i.set(name, value[matched])
        rois_i.gt_classes = torch.where(
            labels == 1, rois_i.gt_classes, torch.full_like(rois_i.gt_classes, num_classes)
        )
    return rois


def merge_stages(
    *stages: Tuple[Tuple[torch.Tensor, torch.Tensor], List[Instances]]
) -> Tuple[Tuple[torch.Tensor, torch.Tensor], List[Instances]]:
    """Several classification stages' candidates as one set, image by image, for
    ``FastRCNNOutputLayers.inference`` (the 5-stage cascade's test-time merge of stages 3 and 5).

    Args:
        stages: each (predictions, rois): the box predictor's (scores (R, K+1), deltas (R, 4K)
            or (R, 4)) on ``rois``, per image Instances with ``proposal_boxes`` (R = the sum of
            their lengths, image after image, as the predictor returns them).
    Returns:
        The merged (scores, deltas) and rois: for each image the RoIs of the first stage, then
        those of the next, with their rows of the predictions in the same order.
    """
    lengths = [[len(r) for r in rois] for _, rois in stages]
    num_images = len(lengths[0])
    # Per stage, per image: the rows of scores and deltas.
    scores = [p[0].split(n) for (p, _), n in zip(stages, lengths)]
    deltas = [p[1].split(n) for (p, _), n in zip(stages, lengths)]
    merged_scores, merged_deltas, merged_rois = [], [], []
    for i in range(num_images):
        merged_scores += [s[i] for s in scores]
        merged_deltas += [d[i] for d in deltas]
        instances = Instances(stages[0][1][i].image_size)
        instances.proposal_boxes = Boxes.cat([rois[i].proposal_boxes for _, rois in stages])
        merged_rois.append(instances)
    return (torch.cat(merged_scores), torch.cat(merged_deltas)), merged_rois
