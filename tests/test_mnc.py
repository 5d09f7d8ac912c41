"""MNC as detectron2 ROI heads (maskx_d2/mnc): mask pooling, the cascade's stages and losses, the
5-stage refinement, partial supervision, export, and the whole pipeline through train_net.py."""

import copy

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.export import TracingAdapter
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.structures import Boxes, Instances, PolygonMasks, pairwise_iou
from detectron2.utils.events import EventStorage
from model_fixtures import (
    FEATURE_SHAPE,
    IMAGE,
    assert_zero_mask_loss_that_reaches_every_mask_parameter,
    box_only_targets,
    jittered_proposals,
    roi_head_losses,
    square,
    targets_with_partial_masks,
    tiny_cfg,
    triangle,
    with_box_only_masks,
)
from pipeline_fixtures import (
    assert_ab_and_gt_box_results,
    model_of_run,
    quick_schedule,
    train_then_evaluate,
)
from torch.nn import functional as F

from maskx_d2 import add_maskx_config
from maskx_d2.mnc import MNCROIHeads, mask_on_roi_grid, mask_pooled_features
from maskx_d2.mnc.refinement import merge_stages

K = 5  # classes of the tiny heads
MASK_SIDE = 14  # their masks: 2 x ROI_MASK_HEAD.POOLER_RESOLUTION (7)
INSTANT = quick_schedule("mnc_R_18_FPN_synthetic_instant_test")


def mnc_cfg(**options):
    """tiny_cfg() with MNCROIHeads: box head 2 FCs of 16 on 4 x 4 RoIs (and the mask pathway's,
    the same design), class-agnostic mask head of 2 convs of 8 on 7 x 7 RoIs. Keys without a dot
    are MODEL.MNC's."""
    cfg = tiny_cfg(K)
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    cfg.MODEL.ROI_HEADS.NAME = "MNCROIHeads"
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = True
    for key, value in options.items():
        cfg.merge_from_list([key if "." in key else f"MODEL.MNC.{key}", value])
    return cfg


def mnc_heads(**options):
    torch.manual_seed(0)
    return build_roi_heads(mnc_cfg(**options), FEATURE_SHAPE)


def features():
    """The feature map roi_head_losses() uses."""
    g = torch.Generator().manual_seed(1)
    return {"p2": torch.rand(2, 8, IMAGE // 4, IMAGE // 4, generator=g)}


def gt_box_instances(targets):
    """The ground truth as given boxes (what the GT-box metrics feed forward_with_given_boxes)."""
    given = []
    for t in targets:
        g = Instances(t.image_size)
        g.pred_boxes = Boxes(t.gt_boxes.tensor.clone())
        g.pred_classes = t.gt_classes
        g.scores = torch.ones(len(t))
        given.append(g)
    return given


def record_stages(heads, monkeypatch):
    """Record every (RoIs, predictions) that mask_and_classify sees, in order."""
    calls = []
    original = heads.mask_and_classify

    def recording(features, rois):
        mask_logits, predictions = original(features, rois)
        calls.append((rois, predictions))
        return mask_logits, predictions

    monkeypatch.setattr(heads, "mask_and_classify", recording)
    return calls


# ------------------------------------------------------------------------------ mask pooling
def test_mask_pooled_features_equal_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    roi_features = torch.randn(2, 3, 4, 4, generator=g)
    logits = torch.randn(2, 1, 8, 8, generator=g) * 3
    soft = torch.zeros_like(roi_features)
    hard = torch.zeros_like(roi_features)
    for r in range(2):
        for i in range(4):
            for j in range(4):  # each bin of the 4 x 4 grid covers 2 x 2 mask cells
                covered = logits[r, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].sigmoid().mean()
                soft[r, :, i, j] = roi_features[r, :, i, j] * covered
                hard[r, :, i, j] = roi_features[r, :, i, j] * float(covered >= 0.5)
    assert torch.allclose(mask_pooled_features(roi_features, logits), soft, atol=1e-6)
    assert torch.equal(mask_pooled_features(roi_features, logits, hard=True), hard)
    assert not torch.equal(soft, hard)


def test_hard_mask_is_binary_on_the_roi_grid_and_soft_is_the_covered_fraction():
    logits = torch.full((1, 1, 14, 14), -20.0)
    logits[..., :, :5] = 20.0  # the left 5 of 14 columns: bins 0 and 1 of 4 are (partly) inside
    soft = mask_on_roi_grid(logits, 4)[0, 0, 0]
    hard = mask_on_roi_grid(logits, 4, hard=True)[0, 0, 0]
    # Adaptive bins of 14 / 4 cells: [0, 4), [3, 7), [7, 11), [10, 14).
    assert torch.allclose(soft, torch.tensor([1.0, 0.5, 0.0, 0.0]), atol=1e-6)
    assert torch.equal(hard, torch.tensor([1.0, 1.0, 0.0, 0.0]))


# ------------------------------------------------------------------------------ the cascade
def test_stage_outputs_have_the_documented_shapes():
    heads = mnc_heads().eval()
    proposals = jittered_proposals(targets_with_partial_masks())
    num_rois = sum(len(p) for p in proposals)
    with torch.no_grad():
        mask_logits, (scores, deltas) = heads.mask_and_classify(features(), proposals)
    assert mask_logits.shape == (num_rois, 1, MASK_SIDE, MASK_SIDE)
    assert scores.shape == (num_rois, K + 1) and deltas.shape == (num_rois, 4 * K)
    # The predictor reads the box head's 16 features and the mask pathway's 16.
    assert heads.box_predictor.cls_score.in_features == 32
    assert heads.mask_pathway_head.fcs[0].in_features == 8 * 4 * 4  # the 4 x 4 box RoIs
    without = mnc_heads(MASK_POOLING="none").eval()
    assert without.mask_pathway_head is None and without.box_predictor.cls_score.in_features == 16
    with torch.no_grad():
        assert without.mask_and_classify(features(), proposals)[0] is None  # nothing reads it
    from_mask_rois = mnc_heads(MASK_POOLING_FEATURES="mask")
    assert from_mask_rois.mask_pathway_head.fcs[0].in_features == 8 * 7 * 7  # 7 x 7 mask RoIs
    losses = roi_head_losses(from_mask_rois, targets_with_partial_masks())
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())


def test_classification_reads_the_predicted_mask_only_with_mask_pooling():
    proposals = jittered_proposals(targets_with_partial_masks())
    for pooling, depends in (("soft", True), ("hard", True), ("none", False)):
        heads = mnc_heads(MASK_POOLING=pooling).eval()
        with torch.no_grad():
            before = heads.mask_and_classify(features(), proposals)[1][0]
            heads.mask_head.predictor.bias.fill_(-3.0)  # masks near 0: background everywhere
            after = heads.mask_and_classify(features(), proposals)[1][0]
        assert torch.equal(before, after) != depends, pooling


def test_losses_equal_a_direct_computation():
    heads = mnc_heads()
    # Logits far from 0, so that the BCE depends on which targets it reads (log 2 at 0).
    torch.nn.init.normal_(heads.mask_head.predictor.weight, std=0.5)
    targets = targets_with_partial_masks()
    heads.train()
    torch.manual_seed(0)
    with EventStorage():
        rois, losses = heads(None, features(), jittered_proposals(targets), targets)
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    with torch.no_grad():
        mask_logits, (scores, _) = heads.mask_and_classify(features(), rois)
    classes = torch.cat([r.gt_classes for r in rois])
    assert torch.allclose(losses["loss_cls"], F.cross_entropy(scores, classes))
    # The mask loss: foreground RoIs of instances with masks only (instance 0 of each image).
    logits, crops = [], []
    start = 0
    for r in rois:
        keep = (r.gt_classes < K) & r.gt_has_mask
        assert keep.any() and ((r.gt_classes < K) & ~r.gt_has_mask).any()
        boxes = r.proposal_boxes.tensor[keep]
        crops.append(r.gt_masks[keep].crop_and_resize(boxes, MASK_SIDE).float())
        logits.append(mask_logits[start : start + len(r)][keep, 0])
        start += len(r)
    expected = F.binary_cross_entropy_with_logits(torch.cat(logits), torch.cat(crops))
    assert torch.allclose(losses["loss_mask"], expected)


@pytest.mark.parametrize("stages", [3, 5])
def test_loss_weights_scale_their_losses(stages):
    targets = targets_with_partial_masks()
    reference = roi_head_losses(mnc_heads(NUM_STAGES=stages), targets)
    weights = {"MASK_LOSS_WEIGHT": 2.0, "CLS_LOSS_WEIGHT": 3.0, "REFINED_LOSS_WEIGHT": 0.5}
    weighted = roi_head_losses(mnc_heads(NUM_STAGES=stages, **weights), targets)
    factors = {"loss_mask": 2.0, "loss_cls": 3.0, "loss_box_reg": 1.0}
    if stages == 5:
        factors.update(loss_mask_stage4=1.0, loss_cls_stage5=1.5, loss_box_reg_stage5=0.5)
    assert set(weighted) == set(factors)
    for key, factor in factors.items():
        assert torch.allclose(weighted[key], reference[key] * factor), key


def _stage_3_regression(heads, rois, predictions):
    """Stage 3's boxes for each RoI's top foreground class, computed here from the deltas."""
    scores, deltas = predictions
    top = scores.softmax(dim=1)[:, :K].argmax(dim=1)
    chosen = (
        deltas if deltas.shape[1] == 4 else deltas.view(-1, K, 4)[torch.arange(len(deltas)), top]
    )
    proposals = torch.cat([r.proposal_boxes.tensor for r in rois])
    boxes = Boxes(heads.box_predictor.box2box_transform.apply_deltas(chosen, proposals))
    boxes.clip((IMAGE, IMAGE))
    return boxes.tensor


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("class_agnostic_regression", [False, True])
def test_five_stages_refine_the_boxes_before_the_second_mask(
    training, class_agnostic_regression, monkeypatch
):
    agnostic = {"MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG": class_agnostic_regression}
    heads = mnc_heads(NUM_STAGES=5, **agnostic)
    # Deltas that differ per class and move the boxes by pixels, as a trained regressor does.
    with torch.no_grad():
        bias = heads.box_predictor.bbox_pred.bias
        bias.copy_(torch.linspace(-1.0, 1.0, len(bias)))
    calls = record_stages(heads, monkeypatch)
    targets = targets_with_partial_masks()
    proposals = jittered_proposals(targets)
    heads.train(training)
    with EventStorage(), torch.set_grad_enabled(training):
        losses = heads(None, features(), proposals, targets if training else None)[1]
    assert len(calls) == 2
    (first_rois, first_predictions), (second_rois, _) = calls
    stage_4_boxes = torch.cat([r.proposal_boxes.tensor for r in second_rois])
    first_boxes = torch.cat([r.proposal_boxes.tensor for r in first_rois])
    assert (stage_4_boxes - first_boxes).abs().max() > 1.0  # moved by pixels
    expected = _stage_3_regression(heads, first_rois, first_predictions)
    assert torch.allclose(stage_4_boxes, expected, atol=1e-4)
    if not training:
        return
    assert {"loss_mask_stage4", "loss_cls_stage5", "loss_box_reg_stage5"} <= set(losses)
    # The refined boxes are matched to the ground truth again (IoU 0.5), keeping its fields.
    for rois, t in zip(second_rois, targets):
        iou, matched = pairwise_iou(t.gt_boxes, rois.proposal_boxes).max(dim=0)
        foreground = iou >= 0.5
        assert torch.equal(rois.gt_classes[foreground], t.gt_classes[matched[foreground]])
        assert torch.all(rois.gt_classes[~foreground] == K)
        assert torch.equal(rois.gt_has_mask, t.gt_has_mask[matched])


# ------------------------------------------------------------------------------ partial supervision


@pytest.mark.parametrize("stages", [3, 5])
def test_masks_of_box_only_instances_change_no_loss(stages):
    targets = targets_with_partial_masks()
    reference = roi_head_losses(mnc_heads(NUM_STAGES=stages), targets)
    # Another shape, or the mapper's empty placeholder of a box-only instance.
    for polygons in (triangle(30, 28, 30), []):
        changed = with_box_only_masks(targets, polygons)
        losses = roi_head_losses(mnc_heads(NUM_STAGES=stages), changed)
        for key in reference:
            assert torch.equal(reference[key], losses[key]), key
    # ... while a mask that is used does change the mask losses (the test can fail).
    used = copy.deepcopy(targets)
    for t in used:
        t.gt_masks = PolygonMasks([square(4, 4, 26)] + list(t.gt_masks.polygons[1:]))
    losses = roi_head_losses(mnc_heads(NUM_STAGES=stages), used)
    mask_keys = ["loss_mask"] + (["loss_mask_stage4"] if stages == 5 else [])
    for key in mask_keys:
        assert losses[key] != reference[key], key
    assert torch.equal(losses["loss_cls"], reference["loss_cls"])  # predicted masks, not these


@pytest.mark.parametrize("stages", [3, 5])
def test_all_box_only_batch_gives_zero_mask_loss_and_zero_gradients(stages):
    heads = mnc_heads(NUM_STAGES=stages)
    losses = roi_head_losses(heads, box_only_targets())
    assert losses["loss_cls"] > 0  # the boxes still train classification
    if stages == 5:
        assert losses["loss_mask_stage4"].item() == 0.0
    assert_zero_mask_loss_that_reaches_every_mask_parameter(heads, losses)


@pytest.mark.parametrize(
    "pooling, detach, reaches_mask_stage",
    [("soft", True, False), ("soft", False, True), ("hard", False, False)],
)
def test_detach_mask_decides_whether_classification_trains_the_mask_stage(
    pooling, detach, reaches_mask_stage
):
    """No mask loss here (box-only batch): any gradient in the mask head is classification's.
    The hard mask has none to give (thresholding), detached or not."""
    heads = mnc_heads(MASK_POOLING=pooling, DETACH_MASK=detach)
    losses = roi_head_losses(heads, box_only_targets())
    if not reaches_mask_stage:
        assert_zero_mask_loss_that_reaches_every_mask_parameter(heads, losses)
        return
    sum(losses.values()).backward()
    assert all(torch.count_nonzero(p.grad) > 0 for p in heads.mask_head.parameters())


# ------------------------------------------------------------------------------ inference
@pytest.mark.parametrize("stages", [3, 5])
def test_inference_outputs_detectron2_instances_and_masks_on_given_boxes(stages):
    heads = mnc_heads(NUM_STAGES=stages).eval()
    targets = targets_with_partial_masks()
    with torch.no_grad():
        detections, _ = heads(None, features(), jittered_proposals(targets))
        on_gt_boxes = heads.forward_with_given_boxes(features(), gt_box_instances(targets))
        # The mask stage, by hand, on the ground-truth boxes.
        pooled = heads.mask_pooler([features()["p2"]], [t.gt_boxes for t in targets])
        expected = heads.mask_head.layers(pooled).sigmoid()
    for d in detections:
        assert set(d.get_fields()) == {"pred_boxes", "scores", "pred_classes", "pred_masks"}
        assert len(d) > 0 and d.pred_masks.shape == (len(d), 1, MASK_SIDE, MASK_SIDE)
        assert d.pred_masks.dtype == torch.float32
        assert d.pred_masks.min() >= 0 and d.pred_masks.max() <= 1
    assert torch.allclose(torch.cat([g.pred_masks for g in on_gt_boxes]), expected)


def test_merge_stages_keeps_each_images_rows_together():
    rois = [[], []]
    for stage, (n0, n1) in enumerate([(3, 2), (1, 4)]):
        for image, n in enumerate((n0, n1)):
            r = Instances((IMAGE, IMAGE))
            r.proposal_boxes = Boxes(torch.full((n, 4), 10.0 * stage + image))
            rois[stage].append(r)
    predictions = [
        (torch.arange(5.0)[:, None].expand(5, K + 1), torch.arange(5.0)[:, None].expand(5, 4)),
        (torch.arange(10.0, 15.0)[:, None].expand(5, K + 1), torch.zeros(5, 4)),
    ]
    (scores, deltas), merged = merge_stages(*zip(predictions, rois))
    # Image 0: rows 0-2 of stage 3, row 10 of stage 5; image 1: rows 3-4, then 11-14.
    assert scores[:, 0].tolist() == [0, 1, 2, 10, 3, 4, 11, 12, 13, 14]
    assert deltas[:, 0].tolist() == [0, 1, 2, 0, 3, 4, 0, 0, 0, 0]
    assert [len(m) for m in merged] == [4, 6]
    assert merged[0].proposal_boxes.tensor[:, 0].tolist() == [0, 0, 0, 10]
    assert merged[1].proposal_boxes.tensor[:, 0].tolist() == [1, 1, 11, 11, 11, 11]


@pytest.mark.parametrize("merge", [True, False])
def test_five_stage_inference_merges_the_two_stages_candidates(merge, monkeypatch):
    """Detections = detectron2's box inference on stage 3's and stage 5's candidates together
    (the paper), or on stage 5's alone."""
    heads = mnc_heads(NUM_STAGES=5, TEST_MERGE_STAGES=merge).eval()
    with torch.no_grad():
        bias = heads.box_predictor.bbox_pred.bias
        bias.copy_(torch.linspace(-1.0, 1.0, len(bias)))
    heads.box_predictor.test_score_thresh = 0.0
    calls = record_stages(heads, monkeypatch)
    proposals = jittered_proposals(targets_with_partial_masks())
    with torch.no_grad():
        detections, _ = heads(None, features(), proposals)
        (rois3, pred3), (rois5, pred5) = calls
        candidates = merge_stages((pred3, rois3), (pred5, rois5)) if merge else (pred5, rois5)
        expected, _ = heads.box_predictor.inference(*candidates)
    for d, e in zip(detections, expected):
        assert torch.equal(d.pred_boxes.tensor, e.pred_boxes.tensor)
        assert torch.equal(d.scores, e.scores)
    if merge:  # the merge is used: some detection comes from stage 3's boxes
        alone, _ = heads.box_predictor.inference(pred5, rois5)
        assert any(
            len(a) != len(d) or not torch.equal(a.scores, d.scores)
            for a, d in zip(alone, detections)
        )


def test_the_papers_fc_mask_stage():
    heads = mnc_heads(**{"MODEL.ROI_MASK_HEAD.NAME": "MNCFCMaskHead", "FC_MASK_HEAD_DIM": 12})
    assert heads.mask_head.fc.in_features == 8 * 7 * 7 and heads.mask_head.fc.out_features == 12
    assert heads.mask_head.predictor.out_features == MASK_SIDE * MASK_SIDE
    losses = roi_head_losses(heads, targets_with_partial_masks())
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_mask"] > 0
    heads.eval()
    with torch.no_grad():
        detections, _ = heads(None, features(), jittered_proposals(targets_with_partial_masks()))
    assert detections[0].pred_masks.shape[1:] == (1, MASK_SIDE, MASK_SIDE)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("MODEL.MNC.NUM_STAGES", "4", "MODEL.MNC.NUM_STAGES"),
        ("MODEL.MNC.MASK_POOLING", "max", "MODEL.MNC.MASK_POOLING"),
        ("MODEL.MNC.MASK_POOLING_FEATURES", "image", "MODEL.MNC.MASK_POOLING_FEATURES"),
        ("MODEL.MNC.MASK_LOSS_WEIGHT", "-1.0", "MODEL.MNC.MASK_LOSS_WEIGHT"),
        ("MODEL.MASK_ON", "False", "MODEL.MASK_ON"),
        ("MODEL.ROI_MASK_HEAD.POOLER_TYPE", "", "MODEL.ROI_MASK_HEAD.POOLER_TYPE"),
        ("MODEL.ROI_MASK_HEAD.NAME", "MaskXMaskHead", "MODEL.ROI_MASK_HEAD.NAME"),
        ("MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK", "False", "CLS_AGNOSTIC_MASK"),
        ("MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES", "True", "TRAIN_ON_PRED_BOXES"),
    ],
)
def test_config_errors_name_the_key(key, value, message):
    with pytest.raises(ValueError, match=message):
        mnc_heads(**{key: value})


# ------------------------------------------------------------------------------ the pipeline
def _instant_cfg(**options):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(INSTANT)
    for key, value in options.items():
        cfg.merge_from_list([key, value])
    return cfg


def _inference(model, inputs):
    return model.inference(inputs, do_postprocess=False)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_five_stage_model_traces_for_export():
    """As tests/test_export.py for Mask^X: the traced model gives the eager one's outputs on an
    image it was not traced with (the top class that picks each refined box is not baked in)."""
    torch.manual_seed(0)
    model = build_model(_instant_cfg(**{"MODEL.MNC.NUM_STAGES": 5})).eval()
    g = torch.Generator().manual_seed(0)
    first, second = (torch.rand(3, 96, 128, generator=g) * 255 for _ in range(2))
    with torch.no_grad():
        adapter = TracingAdapter(model, [{"image": first}], inference_func=_inference)
        traced = torch.jit.trace(adapter, adapter.flattened_inputs, strict=False)
        expected = _inference(model, [{"image": second}])[0]
        actual = adapter.outputs_schema(traced(second))[0]
    assert len(expected) > 0
    assert torch.equal(actual.pred_classes, expected.pred_classes)
    assert torch.allclose(actual.pred_boxes.tensor, expected.pred_boxes.tensor, atol=1e-4)
    assert torch.allclose(actual.pred_masks, expected.pred_masks, atol=1e-5)


def test_train_and_evaluate_through_train_net(tmp_path):
    results = train_then_evaluate(INSTANT, str(tmp_path))
    assert_ab_and_gt_box_results(results)
    model = model_of_run(str(tmp_path))
    assert isinstance(model, GeneralizedRCNN) and isinstance(model.roi_heads, MNCROIHeads)
