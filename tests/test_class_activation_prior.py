"""OPMask's class activation prior: the CAM helpers, ConvGAPBoxHead, and the prior in the ROI heads
(training with every predictor and on ground-truth boxes, inference, GT-box inference, partial
supervision, config checks)."""

import copy
import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import build_box_head, build_roi_heads
from detectron2.structures import Boxes, Instances, PolygonMasks
from detectron2.utils.events import EventStorage
from model_fixtures import (
    FEATURE_SHAPE,
    IMAGE,
    assert_zero_mask_loss_that_reaches_every_mask_parameter,
    box_only_targets,
    cam_prior_cfg,
    cam_prior_roi_heads,
    jittered_proposals,
    roi_head_losses,
    roi_heads,
    square,
    targets_with_partial_masks,
    tiny_cfg,
)
from torch.testing import assert_close

from maskx_d2 import add_maskx_config
from maskx_d2.modeling.class_activation import (
    class_activation_maps,
    normalize_class_activation_maps,
    resize_class_activation_maps,
)
from maskx_d2.modeling.conv_gap_box_head import ConvGAPBoxHead
from maskx_d2.modeling.mask_head import box_head_output_dim

CONFIG = os.path.join(
    os.path.dirname(__file__), "..", "configs", "Synthetic", "opmask_prior_R_18_FPN_synthetic.yaml"
)


def _features(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"p2": torch.rand(2, 8, IMAGE // 4, IMAGE // 4, generator=g)}


def _given_boxes(classes=(1, 4)):
    """Two images, each with the two ground-truth boxes of targets_with_partial_masks() and the
    given classes (4 is box-only in the second image), as forward_with_given_boxes takes them."""
    out = []
    for t in targets_with_partial_masks():
        inst = Instances(t.image_size)
        inst.pred_boxes = t.gt_boxes.clone()
        inst.pred_classes = torch.tensor(classes)
        out.append(inst)
    return out


# --- the helpers -------------------------------------------------------------------------------


def test_cam_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    feature_map = torch.randn(5, 6, 4, 4, generator=g)  # R, D, S, S
    weights = torch.randn(4, 6, generator=g)  # K + 1, D
    classes = torch.tensor([0, 2, 2, 1, 3])
    expected = torch.zeros(5, 4, 4)
    for r in range(5):
        for d in range(6):
            expected[r] += weights[classes[r], d] * feature_map[r, d]
    assert_close(class_activation_maps(feature_map, weights, classes), expected)
    empty = class_activation_maps(feature_map[:0], weights, classes[:0])
    assert empty.shape == (0, 4, 4)


def test_normalizations():
    g = torch.Generator().manual_seed(0)
    cams = torch.randn(3, 4, 4, generator=g) * 5
    cams[2] = 0.7  # flat: no NaN
    minmax = normalize_class_activation_maps(cams, "minmax")
    assert_close(minmax[:2].flatten(1).amin(1), torch.zeros(2))
    assert_close(minmax[:2].flatten(1).amax(1), torch.ones(2))
    assert torch.equal(minmax[2], torch.zeros(4, 4))
    scaled = normalize_class_activation_maps(cams, "max")
    assert_close(scaled[:2].abs().flatten(1).amax(1), torch.ones(2))
    assert torch.equal(torch.sign(scaled), torch.sign(cams))
    assert normalize_class_activation_maps(cams, "none") is cams
    assert normalize_class_activation_maps(cams[:0], "minmax").shape == (0, 4, 4)
    with pytest.raises(ValueError, match="NORMALIZATION"):
        normalize_class_activation_maps(cams, "softmax")


def test_resize_is_bilinear_over_the_same_box():
    cams = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 4, 4)
    resized = resize_class_activation_maps(cams, 7)
    assert resized.shape == (2, 7, 7)
    # A constant map stays constant, a ramp stays monotone; the same side is left alone.
    assert_close(
        resize_class_activation_maps(torch.full((1, 4, 4), 3.0), 7), torch.full((1, 7, 7), 3.0)
    )
    assert (resized[:, :, 1:] >= resized[:, :, :-1]).all()
    assert resize_class_activation_maps(cams, 4) is cams
    assert resize_class_activation_maps(cams[:0], 7).shape == (0, 7, 7)


# --- the box head ------------------------------------------------------------------------------


def test_cam_mean_plus_bias_is_the_class_logit():
    """What makes it a CAM: for every class k (background too) the spatial mean of CAM_k plus
    the bias of k is the box predictor's logit of k."""
    heads = cam_prior_roi_heads()
    assert isinstance(heads.box_head, ConvGAPBoxHead)
    boxes = [t.gt_boxes for t in targets_with_partial_masks()]
    x = heads.box_pooler([_features()["p2"]], boxes)  # (4, 8, 4, 4)
    with torch.no_grad():
        feature_map = heads.box_head.feature_map(x)
        assert_close(heads.box_head(x), feature_map.mean(dim=(2, 3)))
        scores, _ = heads.box_predictor(heads.box_head(x))  # (4, K + 1)
        cls = heads.box_predictor.cls_score
        for k in range(scores.shape[1]):
            classes = torch.full((len(x),), k, dtype=torch.int64)
            cam = class_activation_maps(feature_map, cls.weight, classes)
            assert_close(cam.mean(dim=(1, 2)) + cls.bias[k], scores[:, k])


def test_box_head_shape_feeds_transfer():
    cfg = cam_prior_cfg()
    head = build_box_head(cfg, ShapeSpec(channels=8, height=4, width=4))
    assert head.output_shape == ShapeSpec(channels=16)
    assert box_head_output_dim(cfg) == 16
    heads = cam_prior_roi_heads()
    assert heads.box_predictor.cls_score.weight.shape == (6, 16)
    assert heads.mask_head.transfer.in_dim == 5 * 16  # cls+box reads D = CONV_DIM


def test_box_head_config_errors():
    cfg = cam_prior_cfg()
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    with pytest.raises(ValueError, match="NUM_FC=0"):
        build_box_head(cfg, ShapeSpec(channels=8, height=4, width=4))
    cfg = cam_prior_cfg()
    cfg.MODEL.ROI_BOX_HEAD.NUM_CONV = 0
    with pytest.raises(ValueError, match="NUM_CONV >= 1"):
        build_box_head(cfg, ShapeSpec(channels=8, height=4, width=4))


# --- the prior in the ROI heads ----------------------------------------------------------------


def _masks_on_given_boxes(heads, classes=(1, 4)):
    heads.eval()
    with torch.no_grad():
        return [
            i.pred_masks for i in heads.forward_with_given_boxes(_features(), _given_boxes(classes))
        ]


def _masks_without_prior(heads, classes=(1, 4)):
    """Today's mask branch, written out: the mask head on the pooled mask features alone."""
    heads.eval()
    given = _given_boxes(classes)
    with torch.no_grad():
        x = heads.mask_pooler([_features()["p2"]], [i.pred_boxes for i in given])
        return [i.pred_masks for i in heads.mask_head(x, given, box_predictor=heads.box_predictor)]


def test_prior_changes_the_mask_logits_by_the_resized_cam():
    heads = cam_prior_roi_heads()
    with_prior = _masks_on_given_boxes(heads)
    given = _given_boxes()
    with torch.no_grad():
        boxes = [i.pred_boxes for i in given]
        feature_map = heads.box_head.feature_map(heads.box_pooler([_features()["p2"]], boxes))
        cam = class_activation_maps(
            feature_map, heads.box_predictor.cls_score.weight, torch.tensor([1, 4, 1, 4])
        )
        cam = resize_class_activation_maps(normalize_class_activation_maps(cam, "minmax"), 7)
        x = heads.mask_pooler([_features()["p2"]], boxes) + cam[:, None]
        expected = heads.mask_head(x, given, box_predictor=heads.box_predictor)
    for got, want in zip(with_prior, expected):
        assert_close(got, want.pred_masks)
    heads.class_activation_prior = False
    without = _masks_on_given_boxes(heads)
    for a, b, c in zip(with_prior, without, _masks_without_prior(heads)):
        assert a.shape == (2, 1, 14, 14) and not torch.allclose(a, b)
        assert torch.equal(b, c)


def test_disabled_by_default_and_unchanged():
    cfg = tiny_cfg()
    assert cfg.MODEL.MASKX.CLASS_ACTIVATION_PRIOR.ENABLED is False
    heads = roi_heads()
    assert heads.class_activation_prior is False
    for got, want in zip(_masks_on_given_boxes(heads), _masks_without_prior(heads)):
        assert torch.equal(got, want)


TRAINING = [
    {"MASK_PREDICTOR": "transfer", "MLP_BRANCH.ENABLED": True},
    {"MASK_PREDICTOR": "class_agnostic"},
    {"MASK_PREDICTOR": "class_specific"},
    {"MASK_PREDICTOR": "transfer", "MASK_TRAIN_BOXES": "gt", "GT_BOX_JITTER": 0.1},
    {"MASK_PREDICTOR": "transfer", "MASK_TRAIN_BOXES": "both"},
    # Box-only RoIs (BoxInst's loss) get the CAM of their class too; a deeper body reads the sum.
    {"MASK_PREDICTOR": "class_agnostic", "BOX_SUPERVISION.PROJECTION_WEIGHT": 1.0},
    {"MASK_PREDICTOR": "transfer", "HEAD.ARCHITECTURE": "residual", "HEAD.NUM_BLOCKS": 1},
]


@pytest.mark.parametrize("maskx", TRAINING, ids=lambda m: "-".join(map(str, m.values())))
def test_trains_a_few_iterations(maskx):
    heads = cam_prior_roi_heads(**maskx)
    optimizer = torch.optim.SGD(heads.parameters(), lr=0.01)
    targets = targets_with_partial_masks()
    for it in range(2):
        losses = roi_head_losses(heads, targets, seed=it)
        assert all(torch.isfinite(v) for v in losses.values()), losses
        assert losses["loss_mask"].item() > 0
        optimizer.zero_grad()
        losses["loss_mask"].backward(retain_graph=True)
        # Defaults: the mask loss reaches the box head's convs through the CAM, not the
        # classifier's class rows.
        assert heads.box_head.conv1.weight.grad.abs().sum() > 0
        cls_grad = heads.box_predictor.cls_score.weight.grad
        assert cls_grad is None or torch.count_nonzero(cls_grad) == 0
        sum(v for k, v in losses.items() if k != "loss_mask").backward()
        optimizer.step()


def test_gradient_switches():
    heads = cam_prior_roi_heads(
        MASK_PREDICTOR="class_specific",
        **{
            "CLASS_ACTIVATION_PRIOR.DETACH_BOX_HEAD": True,
            "CLASS_ACTIVATION_PRIOR.DETACH_CLASS_WEIGHTS": False,
        },
    )
    roi_head_losses(heads, targets_with_partial_masks())["loss_mask"].backward()
    assert heads.box_head.conv1.weight.grad is None
    assert heads.box_predictor.cls_score.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("train_boxes", ["proposals", "gt"])
def test_box_only_instances_never_reach_the_mask_loss(train_boxes):
    heads = cam_prior_roi_heads(MASK_TRAIN_BOXES=train_boxes)
    base = roi_head_losses(heads, targets_with_partial_masks())
    changed = targets_with_partial_masks()
    for t in changed:  # a different (wrong) mask for the box-only instance
        t.gt_masks = PolygonMasks([t.gt_masks.polygons[0], square(0, 0, 10)])
    assert roi_head_losses(heads, changed)["loss_mask"].item() == base["loss_mask"].item()
    heads.zero_grad()
    losses = roi_head_losses(heads, box_only_targets())
    assert_zero_mask_loss_that_reaches_every_mask_parameter(heads, losses)


def test_inference_and_given_boxes():
    heads = cam_prior_roi_heads()
    heads.eval()
    heads.box_predictor.test_score_thresh = 0.0
    targets = targets_with_partial_masks()
    with torch.no_grad():
        detections, _ = heads(None, _features(), jittered_proposals(targets))
    masks = detections[0].pred_masks
    assert len(masks) > 0 and masks.shape[1:] == (1, 14, 14)
    assert torch.isfinite(masks).all() and 0 <= masks.min() and masks.max() <= 1
    # Ground-truth boxes (the GT-box evaluation), a box-only class among them, and an image
    # without any box.
    given = _given_boxes((1, 4))
    given[1] = given[1][:0]
    with torch.no_grad():
        out = heads.forward_with_given_boxes(_features(), given)
    assert out[0].pred_masks.shape == (2, 1, 14, 14) and out[1].pred_masks.shape[0] == 0


def test_under_autocast():
    heads = cam_prior_roi_heads()
    targets = targets_with_partial_masks()
    with EventStorage(), torch.autocast("cpu", dtype=torch.bfloat16):
        heads.train()
        _, losses = heads(None, _features(), jittered_proposals(targets), targets)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    heads.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = heads.forward_with_given_boxes(_features(), _given_boxes())
    assert torch.isfinite(out[0].pred_masks.float()).all()


def test_config_validation():
    cfg = cam_prior_cfg()
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    with pytest.raises(ValueError) as error:
        _build(cfg)
    assert "MODEL.MASKX.CLASS_ACTIVATION_PRIOR.ENABLED" in str(error.value)
    assert "MODEL.ROI_BOX_HEAD.NAME" in str(error.value)
    cfg = cam_prior_cfg(**{"CLASS_ACTIVATION_PRIOR.NORMALIZATION": "softmax"})
    with pytest.raises(ValueError, match="NORMALIZATION"):
        _build(cfg)
    cfg = cam_prior_cfg()
    cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE = ""
    with pytest.raises(ValueError, match="POOLER_TYPE"):
        _build(cfg)


def _build(cfg):
    return build_roi_heads(cfg, FEATURE_SHAPE)


def test_synthetic_config():
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(CONFIG)
    assert cfg.MODEL.MASKX.CLASS_ACTIVATION_PRIOR.ENABLED
    box = cfg.MODEL.ROI_BOX_HEAD
    assert (box.NAME, box.NUM_CONV, box.CONV_DIM, box.NUM_FC) == ("ConvGAPBoxHead", 2, 64, 0)
    assert box_head_output_dim(cfg) == 64
    assert cfg.MODEL.MASKX.MLP_BRANCH.ENABLED  # on top of the main job's transfer+MLP


def test_empty_boxes_list():
    heads = cam_prior_roi_heads()
    empty = Instances((IMAGE, IMAGE))
    empty.gt_boxes = Boxes(torch.zeros(0, 4))
    empty.gt_classes = torch.zeros(0, dtype=torch.int64)
    losses = roi_head_losses(heads, [empty, copy.deepcopy(empty)])
    assert losses["loss_mask"].item() == 0.0
