"""Deeper mask-head bodies (MODEL.MASKX.HEAD): every architecture with every predictor and the
MLP branch trains, infers and keeps the zero-loss-in-the-graph behaviour; cost stays
independent of the number of classes."""

import pytest
import torch
from detectron2.modeling.roi_heads import build_roi_heads
from model_fixtures import (
    FEATURE_SHAPE,
    IMAGE,
    assert_zero_mask_loss_that_reaches_every_mask_parameter,
    box_only_targets,
    jittered_proposals,
    roi_head_losses,
    roi_heads,
    targets_with_classes,
    targets_with_partial_masks,
    tiny_cfg,
)

from maskx_d2.modeling.mask_fcn import HourglassFCN, ResidualBlock, ResidualFCN
from maskx_d2.modeling.mask_head import build_mask_body

BODIES = {
    "residual": {"HEAD.ARCHITECTURE": "residual", "HEAD.NUM_BLOCKS": 2},
    "hourglass": {
        "HEAD.ARCHITECTURE": "hourglass",
        "HEAD.HOURGLASS_CHANNELS": [8, 8, 12],
        "HEAD.HOURGLASS_BLOCKS": [1, 1, 2],
    },
}
PREDICTORS = ["transfer", "class_agnostic", "class_specific"]


@pytest.mark.parametrize("side", [7, 14, 32])
def test_bodies_keep_the_side_and_give_the_head_width(side):
    x = torch.rand(3, 8, side, side)
    assert ResidualFCN(8, 16, 2)(x).shape == (3, 16, side, side)
    assert HourglassFCN(8, 16, [8, 8, 12, 12, 16], [1, 1, 1, 1, 2])(x).shape == (3, 16, side, side)


@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize("predictor", PREDICTORS)
@pytest.mark.parametrize("mlp", [False, True])
def test_every_body_predictor_and_mlp_trains_and_infers(body, predictor, mlp):
    heads = roi_heads(MASK_PREDICTOR=predictor, **{"MLP_BRANCH.ENABLED": mlp}, **BODIES[body])
    assert heads.mask_head.body is not None and not hasattr(heads.mask_head, "mask_fcn1")
    losses = roi_head_losses(heads, targets_with_partial_masks())
    assert losses["loss_mask"].item() > 0
    sum(losses.values()).backward()
    body_grads = [p.grad for p in heads.mask_head.body.parameters()]
    assert all(g is not None for g in body_grads) and any(g.abs().sum() > 0 for g in body_grads)
    heads.eval()
    heads.box_predictor.test_score_thresh = 0.0
    with torch.no_grad():
        targets = targets_with_partial_masks()
        features = {"p2": torch.rand(2, 8, IMAGE // 4, IMAGE // 4)}
        detections, _ = heads(None, features, jittered_proposals(targets))
    assert len(detections[0]) > 0 and detections[0].pred_masks.shape[1:] == (1, 14, 14)


@pytest.mark.parametrize("body", list(BODIES))
def test_batches_without_masks_keep_every_body_parameter_in_the_graph(body):
    heads = roi_heads(**BODIES[body])
    losses = roi_head_losses(heads, box_only_targets())
    assert_zero_mask_loss_that_reaches_every_mask_parameter(heads, losses)


def test_3000_classes_train_with_the_hourglass_head_on_cpu():
    heads = roi_heads(3000, **{"MLP_BRANCH.ENABLED": True}, **BODIES["hourglass"])
    losses = roi_head_losses(heads, targets_with_classes(2999, 1500))
    sum(losses.values()).backward()
    assert losses["loss_mask"].item() > 0


def test_body_parameters_do_not_depend_on_the_number_of_classes():
    def body_size(k):
        head = roi_heads(k, **BODIES["hourglass"]).mask_head
        return sum(p.numel() for p in head.parameters())

    assert body_size(5) == body_size(3000)  # transfer: T maps class weights, nothing per class


@pytest.mark.parametrize(
    "options, message",
    [
        ({"HEAD.ARCHITECTURE": "unet"}, "HEAD.ARCHITECTURE must be one of"),
    ],
)
def test_bad_architectures_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        build_roi_heads(tiny_cfg(**options), FEATURE_SHAPE)


def test_a_body_needs_a_conv_width():
    cfg = tiny_cfg(**BODIES["residual"])
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 0
    with pytest.raises(ValueError, match="NUM_CONV >= 1"):
        build_roi_heads(cfg, FEATURE_SHAPE)


def test_the_default_hourglass_is_deep_marcs_hourglass_52():
    cfg = tiny_cfg(**{"HEAD.ARCHITECTURE": "hourglass"})
    body = build_mask_body(cfg, 8, [16, 16])
    widths = [m.conv2.out_channels for m in body.modules() if isinstance(m, ResidualBlock)]
    assert max(widths) == 256 and sorted(set(widths)) == [128, 192, 256]
    blocks = sum(isinstance(m, ResidualBlock) for m in body.modules())
    # Per level: skip + down + up blocks; the bottom: 4 blocks. 5 levels of 2 blocks.
    assert blocks == 5 * 3 * 2 + 4
    assert body(torch.rand(2, 8, 32, 32)).shape == (2, 16, 32, 32)


def test_an_hourglass_needs_matching_widths_and_blocks():
    with pytest.raises(ValueError, match="one block count per width"):
        HourglassFCN(8, 16, [8, 16], [1])
