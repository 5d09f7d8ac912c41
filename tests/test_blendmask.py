"""BlendMask on detectron2's FCOS (maskx_d2/blendmask): the blender, shapes, partial supervision,
masks on given boxes, and the whole pipeline through train_net.py."""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ROIAlign
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from model_fixtures import (
    assert_box_only_masks_change_nothing,
    assert_zero_gradients_in_the_graph,
    box_only_targets,
    image_without_instances,
    targets_with_partial_masks,
)
from pipeline_fixtures import (
    assert_ab_and_gt_box_results,
    model_of_run,
    quick_schedule,
    train_then_evaluate,
)
from torch.nn import functional as F

from maskx_d2 import add_maskx_config
from maskx_d2.blendmask import BlendMask, blend, crop_bases

IMAGE = 64
K, M, S = 3, 4, 8  # bases, attention side, cropped side of the tiny model
INSTANT = quick_schedule("blendmask_R_18_FPN_synthetic_instant_test")


def tiny_blendmask_cfg(num_classes=5):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.META_ARCHITECTURE = "BlendMask"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"  # p3-p6, p6 parameter-free
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.FCOS.NUM_CLASSES = num_classes
    cfg.MODEL.FCOS.IN_FEATURES = ["p3", "p4", "p5"]
    cfg.MODEL.FCOS.NUM_CONVS = 1
    cfg.MODEL.FCOS.NORM = ""
    cfg.MODEL.FCOS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.BLENDMASK.NUM_BASES = K
    cfg.MODEL.BLENDMASK.ATTENTION_RESOLUTION = M
    cfg.MODEL.BLENDMASK.BOTTOM_RESOLUTION = S
    cfg.MODEL.BLENDMASK.BOTTOM_CONV_DIM = 8
    cfg.MODEL.BLENDMASK.BOTTOM_NUM_CONV = 1
    cfg.TEST.DETECTIONS_PER_IMAGE = 10
    return cfg


def tiny_model(seed=0, **overrides):
    cfg = tiny_blendmask_cfg()
    for key, value in overrides.items():
        cfg.merge_from_list([key, value])
    torch.manual_seed(seed)
    model = build_model(cfg)
    # Untrained box deltas are ~0, i.e. empty boxes that postprocessing drops: start from boxes
    # one stride to each side of the location instead.
    torch.nn.init.constant_(model.head.bbox_pred.bias, 1.0)
    return model


def batch(targets):
    g = torch.Generator().manual_seed(3)
    return [
        {"image": torch.randint(0, 255, (3, IMAGE, IMAGE), generator=g).float(), "instances": t}
        for t in targets
    ]


def training_losses(model, targets):
    model.train()
    with EventStorage():
        return model(batch(targets))


# ------------------------------------------------------------------------------ the blender
def test_blend_equals_a_loop_over_rois_and_bases():
    g = torch.Generator().manual_seed(0)
    cropped = torch.randn(3, K, S, S, generator=g)
    attentions = torch.randn(3, K, M, M, generator=g)
    expected = torch.zeros(3, S, S)
    for r in range(3):
        upsampled = [
            F.interpolate(attentions[r, k][None, None], size=(S, S), mode="bilinear")[0, 0]
            for k in range(K)
        ]
        total = sum(torch.exp(u) for u in upsampled)
        for k in range(K):
            expected[r] += cropped[r, k] * torch.exp(upsampled[k]) / total
    assert torch.allclose(blend(cropped, attentions), expected, atol=1e-6)


def test_blend_with_one_dominant_base_returns_that_base():
    cropped = torch.randn(2, K, S, S)
    attentions = torch.full((2, K, M, M), -50.0)
    attentions[:, 1] = 50.0
    assert torch.allclose(blend(cropped, attentions), cropped[:, 1], atol=1e-5)


def test_crop_bases_takes_each_box_from_its_own_image():
    bases = torch.zeros(2, K, 16, 16)
    bases[1, :, :8, :8] = 1.0  # image 1, top-left quarter at stride 4 = pixels 0-32
    pooler = ROIAlign((S, S), spatial_scale=0.25, sampling_ratio=1, aligned=True)
    boxes = torch.tensor([[4.0, 4.0, 28.0, 28.0]] * 2)
    cropped = crop_bases(pooler, bases, boxes, torch.tensor([0, 1]))
    assert cropped.shape == (2, K, S, S)
    assert torch.all(cropped[0] == 0) and torch.allclose(cropped[1], torch.ones(K, S, S))


# ------------------------------------------------------------------------------ the model
def test_shapes_of_bases_attentions_and_masks():
    model = tiny_model().eval()
    inputs = batch(targets_with_partial_masks())
    with torch.no_grad():
        images, features, bases, predictions = model._run(inputs)
        outputs = model(inputs)
    assert bases.shape == (2, K, IMAGE // 4, IMAGE // 4)  # stride of p3 / 2
    for feature, attention in zip(features, predictions[3]):
        assert attention.shape == (2, K * M * M) + feature.shape[-2:]
    for output in outputs:
        instances = output["instances"]
        assert 0 < len(instances) <= 10
        assert instances.pred_masks.shape == (len(instances), IMAGE, IMAGE)
        assert instances.pred_masks.dtype == torch.bool
        assert not instances.has("attentions")


def test_losses_and_every_parameter_trains():
    model = tiny_model()
    losses = training_losses(model, targets_with_partial_masks())
    assert set(losses) == {"loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr", "loss_mask"}
    assert losses["loss_mask"].item() > 0
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None or not p.requires_grad, name  # the stem is frozen
    for name, p in model.basis_module.named_parameters():
        assert torch.count_nonzero(p.grad) > 0, name


def test_masks_of_box_only_instances_change_nothing():
    assert_box_only_masks_change_nothing(lambda targets: training_losses(tiny_model(), targets))


def test_all_box_only_batch_gives_zero_mask_loss_and_zero_gradients():
    targets = box_only_targets()
    model = tiny_model()
    losses = training_losses(model, targets)
    assert losses["loss_mask"].item() == 0.0
    assert losses["loss_fcos_cls"].item() > 0  # detection still trains on the boxes
    sum(losses.values()).backward()
    mask_parameters = list(model.basis_module.named_parameters())
    mask_parameters += list(model.head.top_layer.named_parameters())
    assert_zero_gradients_in_the_graph(mask_parameters)


def test_images_without_instances_train():
    losses = training_losses(
        tiny_model(), [image_without_instances(), targets_with_partial_masks()[0]]
    )
    assert all(torch.isfinite(v) for v in losses.values())


def test_max_train_masks_caps_the_blended_positives(monkeypatch):
    model = tiny_model(**{"MODEL.BLENDMASK.MAX_TRAIN_MASKS": 2})
    seen = []
    monkeypatch.setattr(
        "maskx_d2.blendmask.meta_arch.blended_mask_loss",
        lambda logits, targets: seen.append(len(logits)) or logits.mean(),
    )
    training_losses(model, targets_with_partial_masks())
    assert seen == [2]


def test_masks_on_given_boxes_use_a_positive_location_of_each_box():
    model = tiny_model().eval()
    inputs = batch(targets_with_partial_masks())
    given = []
    for t in targets_with_partial_masks():
        g = Instances((IMAGE, IMAGE))
        g.pred_boxes = Boxes(t.gt_boxes.tensor.clone())
        g.pred_classes = t.gt_classes
        g.scores = torch.ones(len(t))
        given.append(g)
    with torch.no_grad():
        _, features, _, _ = model._run(inputs)
        anchors = model.anchor_generator(features)
        locations = model.box_locations(anchors, given[0].pred_boxes)
        is_positive = model._match_anchors(given[0].pred_boxes, anchors) > 0
        assert all(is_positive[b, loc] for b, loc in enumerate(locations.tolist()))
        detections, on_boxes = model.inference_with_given_boxes(inputs, given)
    assert len(detections) == len(on_boxes) == 2
    for output in on_boxes:
        instances = output["instances"]
        assert len(instances) == 2
        assert instances.pred_masks.shape == (2, IMAGE, IMAGE)
        assert torch.equal(instances.scores, torch.ones(2))


def test_a_box_smaller_than_every_stride_still_gets_a_location():
    model = tiny_model().eval()
    with torch.no_grad():
        _, features, _, _ = model._run(batch(targets_with_partial_masks()))
    anchors = model.anchor_generator(features)
    tiny = Boxes(torch.tensor([[40.0, 40.0, 41.0, 41.0]]))
    assert (model._match_anchors(tiny, anchors) > 0).sum() == 0
    location = model.box_locations(anchors, tiny).item()
    centre = Boxes.cat(anchors).get_centers()[location]
    assert torch.allclose(centre, torch.tensor([40.0, 40.0]))  # p4's (40, 40): 0.7 px away


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("MODEL.FCOS.IN_FEATURES", "['p2']", "MODEL.FCOS.IN_FEATURES"),
        ("MODEL.BLENDMASK.BOTTOM_IN_FEATURES", "['p9']", "MODEL.BLENDMASK.BOTTOM_IN_FEATURES"),
        ("MODEL.BLENDMASK.NUM_BASES", "0", "NUM_BASES"),
    ],
)
def test_config_errors_name_the_key(key, value, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(**{key: value})


# ------------------------------------------------------------------------------ the pipeline
def test_train_and_evaluate_through_train_net(tmp_path):
    results = train_then_evaluate(INSTANT, str(tmp_path))
    assert_ab_and_gt_box_results(results)
    assert isinstance(model_of_run(str(tmp_path)), BlendMask)
