"""Tiny models and inputs for fast CPU tests of the Mask^X heads.

The ROI-head helpers (``IMAGE``, ``FEATURE_SHAPE``, :func:`roi_heads`, :func:`jittered_proposals`)
are shared by tests/test_partial_supervision.py and tests/test_autocast.py.
"""

import copy

import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.roi_heads import FastRCNNOutputLayers, build_roi_heads
from detectron2.structures import Boxes, Instances, PolygonMasks
from detectron2.utils.events import EventStorage

from maskx_d2 import add_maskx_config

# Side of the images of targets_with_partial_masks(), and the one feature map the ROI heads of
# tiny_cfg() read (IN_FEATURES ["p2"], stride 4, 8 channels).
IMAGE = 64
FEATURE_SHAPE = {"p2": ShapeSpec(channels=8, stride=4)}


def tiny_cfg(num_classes=5, **maskx):
    """A small FPN Mask^X R-CNN config on CPU (R18-sized widths shrunk further)."""
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.META_ARCHITECTURE = "MaskXRCNN"
    cfg.MODEL.ROI_HEADS.NAME = "MaskXROIHeads"
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskXMaskHead"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2"]
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 16
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 4
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 2
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.MASKX.TRANSFER.HIDDEN_DIM = 8
    for key, value in maskx.items():
        cfg.merge_from_list([f"MODEL.MASKX.{key}", value])
    return cfg


def box_predictor(num_classes=5, dim=16, cls_agnostic_bbox_reg=False):
    """A FastRCNNOutputLayers with D = dim: cls_score (K+1, D), bbox_pred (4K or 4, D)."""
    return FastRCNNOutputLayers(
        ShapeSpec(channels=dim),
        box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=num_classes,
        cls_agnostic_bbox_reg=cls_agnostic_bbox_reg,
    )


def square(x0, y0, s):
    return [[x0, y0, x0 + s, y0, x0 + s, y0 + s, x0, y0 + s]]


def triangle(x0, y0, s):
    return [[x0, y0, x0 + s, y0, x0, y0 + s]]


def mask_proposals(num_classes=5, image_size=32, seed=0):
    """Two images of foreground proposals with gt_classes/gt_masks, as the mask head sees them."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in (3, 2):
        inst = Instances((image_size, image_size))
        xy = torch.randint(0, image_size // 2, (n, 2), generator=g).float()
        inst.proposal_boxes = Boxes(torch.cat([xy, xy + image_size // 2 - 1], dim=1))
        inst.gt_classes = torch.randint(0, num_classes, (n,), generator=g)
        inst.gt_masks = PolygonMasks([(square if i % 2 else triangle)(4, 4, 20) for i in range(n)])
        out.append(inst)
    return out


def targets_with_partial_masks(image_size=IMAGE):
    """Ground truth of two images; the second instance of each is box-only."""
    targets = []
    for k in range(2):
        t = Instances((image_size, image_size))
        t.gt_boxes = Boxes(torch.tensor([[4.0, 4.0, 30.0, 30.0], [30.0, 28.0, 60.0, 62.0]]))
        t.gt_classes = torch.tensor([1, 3 + k])
        t.gt_masks = PolygonMasks([triangle(4, 4, 26), square(30, 28, 30)])
        t.gt_has_mask = torch.tensor([True, False])
        targets.append(t)
    return targets


def roi_heads(num_classes=5, **maskx):
    """MaskXROIHeads of tiny_cfg(num_classes, **maskx) on FEATURE_SHAPE, seeded weights."""
    torch.manual_seed(0)
    return build_roi_heads(tiny_cfg(num_classes, **maskx), FEATURE_SHAPE)


def jittered_proposals(targets, extra=20, seed=0):
    """Proposals = jittered copies of the GT boxes plus random boxes, per image."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in targets:
        gt = t.gt_boxes.tensor.repeat(4, 1) + torch.randn(4 * len(t), 4, generator=g)
        rand = torch.rand(extra, 2, generator=g) * IMAGE / 2
        boxes = torch.cat([gt, torch.cat([rand, rand + IMAGE / 3], 1)]).clamp(0, IMAGE - 1)
        p = Instances((IMAGE, IMAGE))
        p.proposal_boxes = Boxes(boxes)
        p.objectness_logits = torch.zeros(len(boxes))
        out.append(p)
    return out


def roi_head_losses(heads, targets, seed=0):
    """One training forward of ``heads`` on targets_with_partial_masks()-like ``targets``, with
    seeded features and jittered_proposals(); returns the loss dict."""
    features = {
        "p2": torch.rand(2, 8, IMAGE // 4, IMAGE // 4, generator=torch.Generator().manual_seed(1))
    }
    heads.train()
    torch.manual_seed(seed)  # proposal sampling is random
    with EventStorage():
        _, losses = heads(None, features, jittered_proposals(targets), targets)
    return losses


def box_only_targets():
    """targets_with_partial_masks() with every instance box-only (gt_has_mask all False)."""
    targets = targets_with_partial_masks()
    for t in targets:
        t.gt_has_mask = torch.zeros(len(t), dtype=torch.bool)
    return targets


def assert_zero_mask_loss_that_reaches_every_mask_parameter(heads, losses):
    """A batch without masks: loss_mask is 0, and after backward every mask-head parameter has
    a gradient (in the graph, so DDP sees no unused parameter) that is all zeros."""
    assert losses["loss_mask"].item() == 0.0
    sum(losses.values()).backward()
    for name, p in heads.mask_head.named_parameters():
        assert p.grad is not None, f"{name} left out of the graph"
        assert torch.count_nonzero(p.grad) == 0, name


def targets_with_classes(*classes):
    """targets_with_partial_masks() whose two instances have the given classes (e.g. 2999)."""
    targets = targets_with_partial_masks()
    for t in targets:
        t.gt_classes = torch.tensor(classes)
    return targets


def cam_prior_cfg(num_classes=5, **maskx):
    """tiny_cfg() with OPMask's class activation prior on: a ConvGAPBoxHead of 2 convs of 16
    (D = 16) on the 4 x 4 box features, its CAM resized to the 7 x 7 mask features."""
    cfg = tiny_cfg(num_classes, **{"CLASS_ACTIVATION_PRIOR.ENABLED": True, **maskx})
    cfg.MODEL.ROI_BOX_HEAD.NAME = "ConvGAPBoxHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_CONV = 2
    cfg.MODEL.ROI_BOX_HEAD.CONV_DIM = 16
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 0
    return cfg


def cam_prior_roi_heads(num_classes=5, **maskx):
    """MaskXROIHeads of cam_prior_cfg(num_classes, **maskx) on FEATURE_SHAPE, seeded weights."""
    torch.manual_seed(0)
    return build_roi_heads(cam_prior_cfg(num_classes, **maskx), FEATURE_SHAPE)


def with_box_only_masks(targets, polygons):
    """A copy of targets_with_partial_masks()-like ``targets`` whose box-only instance (the
    second, ``gt_has_mask`` False) has ``polygons`` as its (unused) mask."""
    targets = copy.deepcopy(targets)
    for t in targets:
        masks = list(t.gt_masks.polygons)
        masks[1] = polygons
        t.gt_masks = PolygonMasks(masks)
    return targets


def assert_box_only_masks_change_nothing(losses_of):
    """``losses_of(targets)`` -> loss dict of a freshly seeded model on targets_with_partial_masks()
    -like targets. Another mask on the box-only instance, or the mapper's empty placeholder (its
    mask removed), changes no loss, while another mask on an instance with a mask changes
    ``loss_mask`` (so the check can fail)."""
    targets = targets_with_partial_masks()
    reference = losses_of(targets)
    for polygons in (triangle(30, 28, 30), []):
        changed = losses_of(with_box_only_masks(targets, polygons))
        for key in reference:
            assert torch.equal(reference[key], changed[key]), key
    used = copy.deepcopy(targets)
    for t in used:
        t.gt_masks = PolygonMasks([square(4, 4, 26)] + list(t.gt_masks.polygons[1:]))
    assert losses_of(used)["loss_mask"] != reference["loss_mask"]


def assert_zero_gradients_in_the_graph(named_parameters):
    """After backward of a batch without masks: every listed parameter has a gradient (it stayed
    in the graph, so DDP sees no unused parameter), and it is all zeros."""
    for name, p in named_parameters:
        assert p.grad is not None, f"{name} left out of the graph"
        assert torch.count_nonzero(p.grad) == 0, name


def image_without_instances(image_size=IMAGE):
    """Ground truth of an image with no object (empty gt_boxes / gt_classes)."""
    empty = Instances((image_size, image_size))
    empty.gt_boxes = Boxes(torch.zeros(0, 4))
    empty.gt_classes = torch.zeros(0, dtype=torch.long)
    return empty
