"""Per-instance partial supervision through MaskXROIHeads, and scaling to 3000 classes."""

import copy

import pytest
import torch
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.structures import Boxes, Instances, PolygonMasks
from model_fixtures import (
    FEATURE_SHAPE,
    IMAGE,
    assert_zero_mask_loss_that_reaches_every_mask_parameter,
    box_only_targets,
    jittered_proposals,
    roi_head_losses,
    roi_heads,
    square,
    targets_with_classes,
    targets_with_partial_masks,
    tiny_cfg,
)

from maskx_d2.modeling import mask_availability, select_mask_supervised


def test_mask_availability_rules():
    t = targets_with_partial_masks()[0]
    assert mask_availability(t).tolist() == [True, False]
    t.remove("gt_has_mask")  # detectron2's own mapper: every instance with gt_masks has one
    assert mask_availability(t).tolist() == [True, True]
    t.remove("gt_masks")  # box-only data
    assert mask_availability(t).tolist() == [False, False]
    assert [len(x) for x in select_mask_supervised(targets_with_partial_masks())] == [1, 1]


@pytest.mark.parametrize("predictor", ["transfer", "class_agnostic", "class_specific"])
def test_box_only_masks_change_nothing(predictor):
    heads = roi_heads(MASK_PREDICTOR=predictor, **{"MLP_BRANCH.ENABLED": True})
    base = roi_head_losses(heads, targets_with_partial_masks())
    changed = targets_with_partial_masks()
    for t in changed:  # a different (wrong) mask for the box-only instance
        t.gt_masks = PolygonMasks([t.gt_masks.polygons[0], square(0, 0, 10)])
    removed = targets_with_partial_masks()
    for t in removed:  # no mask at all for it
        t.gt_masks = PolygonMasks([t.gt_masks.polygons[0], []])
    for other in (changed, removed):
        losses = roi_head_losses(heads, other)
        assert losses["loss_mask"].item() == base["loss_mask"].item()
        assert losses["loss_cls"].item() == base["loss_cls"].item()
    assert base["loss_mask"].item() > 0
    # Sanity: the masked instance's mask does matter.
    flipped = targets_with_partial_masks()
    for t in flipped:
        t.gt_masks = PolygonMasks([square(4, 4, 26), t.gt_masks.polygons[1]])
    assert roi_head_losses(heads, flipped)["loss_mask"].item() != base["loss_mask"].item()


@pytest.mark.parametrize("predictor", ["transfer", "class_agnostic", "class_specific"])
def test_all_box_only_batch_gives_zero_loss_and_zero_gradients(predictor):
    heads = roi_heads(MASK_PREDICTOR=predictor, **{"MLP_BRANCH.ENABLED": True})
    losses = roi_head_losses(heads, box_only_targets())
    assert_zero_mask_loss_that_reaches_every_mask_parameter(heads, losses)
    # The box branch still trains on every instance.
    assert heads.box_predictor.cls_score.weight.grad.abs().sum() > 0


def test_images_without_any_ground_truth():
    heads = roi_heads()
    empty = Instances((IMAGE, IMAGE))
    empty.gt_boxes = Boxes(torch.zeros(0, 4))
    empty.gt_classes = torch.zeros(0, dtype=torch.int64)
    losses = roi_head_losses(heads, [empty, copy.deepcopy(empty)])
    assert losses["loss_mask"].item() == 0.0
    losses["loss_mask"].backward()
    assert all(p.grad is not None for p in heads.mask_head.parameters())


def test_freeze_detector_requires_maskx_meta_arch():
    cfg = tiny_cfg(FREEZE_DETECTOR=True)
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    with pytest.raises(ValueError, match="MaskXRCNN"):
        build_roi_heads(cfg, FEATURE_SHAPE)


def test_frozen_roi_heads_give_only_theroi_head_losses():
    heads = roi_heads(FREEZE_DETECTOR=True)
    assert set(roi_head_losses(heads, targets_with_partial_masks())) == {"loss_mask"}


@pytest.mark.parametrize("num_classes", [3000])
def test_3000_class_heads_train_and_infer_on_cpu(num_classes):
    heads = roi_heads(num_classes, **{"MLP_BRANCH.ENABLED": True})
    targets = targets_with_classes(2999, 1500)
    losses = roi_head_losses(heads, targets)
    sum(losses.values()).backward()
    assert losses["loss_mask"].item() > 0
    heads.eval()
    features = {"p2": torch.rand(2, 8, IMAGE // 4, IMAGE // 4)}
    with torch.no_grad():
        heads.box_predictor.test_score_thresh = 0.0
        detections, _ = heads(None, features, jittered_proposals(targets))
    assert len(detections[0]) > 0
    assert detections[0].pred_masks.shape[1:] == (1, 14, 14)
    assert detections[0].pred_classes.max() < num_classes
