"""Mask training on ground-truth boxes (MODEL.MASKX.MASK_TRAIN_BOXES, GT_BOX_JITTER) and boxes
as weak masks for box-only instances (MODEL.MASKX.BOX_SUPERVISION, BoxInst's projection loss)."""

import numpy as np
import pytest
import torch
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.modeling.roi_heads.mask_head import mask_rcnn_loss
from detectron2.structures import Boxes, ImageList
from detectron2.utils.events import EventStorage
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

from maskx_d2.modeling import mask_availability
from maskx_d2.modeling.box_supervision import (
    box_projection_loss,
    box_projection_targets,
    pairwise_affinity_loss,
    rgb_to_lab,
    roi_lab_colours,
    smooth_image,
)
from maskx_d2.modeling.mask_training_rois import jitter_boxes, mask_training_rois, pad_boxes

PREDICTORS = ["transfer", "class_agnostic", "class_specific"]


def _sampled(heads, targets, seed=0):
    torch.manual_seed(seed)
    with EventStorage():  # sampling logs its foreground share
        return heads.label_and_sample_proposals(jittered_proposals(targets), targets)


def _spy_on_mask_head(heads):
    """Record the RoIs the mask head trains on."""
    seen = []
    forward = heads.mask_head.forward

    def spy(x, instances, **kwargs):
        seen.append([i.proposal_boxes.tensor.clone() for i in instances])
        seen.append([i.gt_has_mask.clone() for i in instances])
        return forward(x, instances, **kwargs)

    heads.mask_head.forward = spy
    return seen


def test_gt_training_puts_exactly_the_masked_ground_truth_boxes_through_the_mask_head():
    heads = roi_heads(MASK_TRAIN_BOXES="gt")
    seen = _spy_on_mask_head(heads)
    targets = targets_with_partial_masks()
    roi_head_losses(heads, targets)
    boxes, has_mask = seen
    for b, h, t in zip(boxes, has_mask, targets):
        assert torch.equal(b, t.gt_boxes.tensor[t.gt_has_mask])
        assert h.all()


def test_both_is_the_masked_proposals_then_the_masked_ground_truth_boxes():
    heads = roi_heads(MASK_TRAIN_BOXES="both")
    targets = targets_with_partial_masks()
    sampled = _sampled(heads, targets)
    rois = mask_training_rois(sampled, targets, heads.num_classes, "both")
    default = mask_training_rois(sampled, targets, heads.num_classes, "proposals")
    for r, d, t in zip(rois, default, targets):
        n = len(d)
        assert n > 0 and len(r) == n + int(t.gt_has_mask.sum())
        assert torch.equal(r.proposal_boxes.tensor[:n], d.proposal_boxes.tensor)
        assert torch.equal(r.proposal_boxes.tensor[n:], t.gt_boxes.tensor[t.gt_has_mask])
        assert r.gt_has_mask.all()
        # Every RoI of a masked instance: its class and its mask come along.
        assert torch.equal(r.gt_classes[n:], t.gt_classes[t.gt_has_mask])
        (polygon,) = r.gt_masks.polygons[n]
        np.testing.assert_array_equal(polygon, t.gt_masks.polygons[0][0])


@pytest.mark.parametrize("train_boxes", ["proposals", "gt", "both"])
def test_box_only_rois_come_along_only_for_the_box_supervised_loss(train_boxes):
    heads = roi_heads()
    targets = targets_with_partial_masks()
    sampled = _sampled(heads, targets)
    without = mask_training_rois(sampled, targets, heads.num_classes, train_boxes)
    with_box_only = mask_training_rois(
        sampled, targets, heads.num_classes, train_boxes, include_box_only=True
    )
    for a, b in zip(without, with_box_only):
        assert len(a) > 0 and mask_availability(a).all()
        assert (~b.gt_has_mask).any() and int(b.gt_has_mask.sum()) == len(a)


def test_jitter_moves_boxes_within_the_fraction_and_keeps_them_in_the_image():
    torch.manual_seed(0)
    boxes = Boxes(torch.tensor([[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 63.0, 63.0]]).repeat(50, 1))
    moved = jitter_boxes(boxes, 0.1, (64, 64)).tensor
    size = (boxes.tensor[:, 2:] - boxes.tensor[:, :2]).repeat(1, 2)
    assert ((moved - boxes.tensor).abs() <= 0.1 * size + 1e-4).all()
    assert not torch.equal(moved, boxes.tensor)
    assert (moved >= 0).all() and (moved <= 64).all()
    assert ((moved[:, 2:] - moved[:, :2]) >= 1).all()
    assert torch.equal(jitter_boxes(boxes, 0.0, (64, 64)).tensor, boxes.tensor)


def test_pad_boxes_grows_each_side_by_the_fraction_and_clips_to_the_image():
    boxes = Boxes(torch.tensor([[10.0, 20.0, 50.0, 40.0], [0.0, 2.0, 20.0, 62.0]]))
    padded = pad_boxes(boxes, 0.1, (64, 64)).tensor
    expected = torch.tensor([[6.0, 18.0, 54.0, 42.0], [0.0, 0.0, 22.0, 64.0]])
    torch.testing.assert_close(padded, expected)


def test_gt_padding_grows_only_the_box_only_ground_truth_rois():
    heads = roi_heads()
    targets = targets_with_partial_masks()
    sampled = _sampled(heads, targets)
    rois = mask_training_rois(
        sampled, targets, heads.num_classes, "gt", include_box_only=True, box_only_padding=0.25
    )
    for r, t in zip(rois, targets):
        assert torch.equal(r.gt_boxes.tensor, t.gt_boxes.tensor)  # the losses' boxes: exact
        has = r.gt_has_mask
        assert (~has).any() and has.any()
        assert torch.equal(r.proposal_boxes.tensor[has], t.gt_boxes.tensor[has])
        expected = pad_boxes(t.gt_boxes[~has], 0.25, t.image_size).tensor
        assert torch.equal(r.proposal_boxes.tensor[~has], expected)
        assert not torch.equal(expected, t.gt_boxes.tensor[~has])


def test_gt_padding_is_checked_and_its_absence_warned_about(caplog):
    with pytest.raises(ValueError, match="GT_BOX_PADDING"):
        roi_heads(
            **{"BOX_SUPERVISION.PROJECTION_WEIGHT": 1.0, "BOX_SUPERVISION.GT_BOX_PADDING": -1}
        )
    with caplog.at_level("WARNING"):
        roi_heads(**{"BOX_SUPERVISION.PROJECTION_WEIGHT": 1.0, "MASK_TRAIN_BOXES": "gt"})
    assert "GT_BOX_PADDING=0" in caplog.text


def _direct_projection_loss(logits, proposal, gt):
    """Loops over cells, numpy only."""
    p = 1 / (1 + np.exp(-logits.numpy().astype(np.float64)))
    total = 0.0
    for k in range(len(p)):
        m = p.shape[-1]
        x0, y0, x1, y1 = proposal[k].tolist()
        g = gt[k].tolist()
        cx = [x0 + (i + 0.5) / m * (x1 - x0) for i in range(m)]
        cy = [y0 + (i + 0.5) / m * (y1 - y0) for i in range(m)]
        tx = np.array([1.0 if g[0] <= c <= g[2] else 0.0 for c in cx])
        ty = np.array([1.0 if g[1] <= c <= g[3] else 0.0 for c in cy])
        for pred, t in ((p[k].max(axis=0), tx), (p[k].max(axis=1), ty)):
            total += 1 - 2 * (pred * t).sum() / max((pred**2).sum() + (t**2).sum(), 1e-5)
    return total / len(p)


def test_projection_loss_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 14, 14, generator=g) * 3
    proposal = torch.tensor([[0.0, 0.0, 28.0, 28.0], [5.0, 3.0, 40.0, 20.0], [2, 2, 9, 30]])
    gt = torch.tensor([[4.0, 2.0, 20.0, 27.0], [8.0, 3.0, 44.0, 18.0], [0, 0, 9, 12]])
    ours = box_projection_loss(logits, proposal, gt).item()
    assert ours == pytest.approx(_direct_projection_loss(logits, proposal, gt), rel=1e-5)


def test_projection_loss_is_zero_for_a_mask_that_exactly_fills_its_box():
    proposal = torch.tensor([[0.0, 0.0, 28.0, 28.0]])
    gt = torch.tensor([[6.0, 8.0, 20.0, 26.0]])
    columns, rows = box_projection_targets(proposal, gt, 14)
    inside = rows[0][:, None] * columns[0][None, :]  # the box on the 14 x 14 grid
    logits = (inside * 2 - 1)[None] * 50.0
    assert box_projection_loss(logits, proposal, gt).item() == pytest.approx(0.0, abs=1e-6)
    # ... and not for one that covers only the left half of the box's columns.
    half = inside.clone()
    half[:, 7:] = 0
    assert box_projection_loss(((half * 2 - 1) * 50.0)[None], proposal, gt).item() > 0.1


def test_box_only_rois_never_reach_the_ordinary_mask_loss():
    heads = roi_heads(**{"BOX_SUPERVISION.PROJECTION_WEIGHT": 2.0})
    targets = targets_with_partial_masks()
    rois = mask_training_rois(
        _sampled(heads, targets), targets, heads.num_classes, include_box_only=True
    )
    head = heads.mask_head.train()
    features = heads.mask_pooler(
        [torch.rand(2, 8, IMAGE // 4, IMAGE // 4)], [r.proposal_boxes for r in rois]
    )
    torch.manual_seed(0)
    classes = torch.cat([r.gt_classes for r in rois])
    logits = head.mask_logits(head.layers(features), classes, heads.box_predictor)
    with EventStorage():
        losses = head.losses(logits, rois)
    has = torch.cat([r.gt_has_mask for r in rois])
    masked = [r[r.gt_has_mask] for r in rois]
    with EventStorage():
        expected_mask_loss = mask_rcnn_loss(logits[has], masked).item()
    assert losses["loss_mask"].item() == pytest.approx(expected_mask_loss)
    box_only = [r[~r.gt_has_mask] for r in rois]
    expected = box_projection_loss(
        logits[~has][:, 0],
        torch.cat([r.proposal_boxes.tensor for r in box_only]),
        torch.cat([r.gt_boxes.tensor for r in box_only]),
    )
    assert losses["loss_mask_projection"].item() == pytest.approx(2.0 * expected.item())


@pytest.mark.parametrize("predictor", PREDICTORS)
@pytest.mark.parametrize("mlp", [False, True])
def test_every_head_trains_and_infers_with_the_options(predictor, mlp):
    options = {
        "MASK_PREDICTOR": predictor,
        "MLP_BRANCH.ENABLED": mlp,
        "MASK_TRAIN_BOXES": "both",
        "GT_BOX_JITTER": 0.05,
        "BOX_SUPERVISION.PROJECTION_WEIGHT": 1.0,
    }
    heads = roi_heads(**options)
    losses = roi_head_losses(heads, targets_with_partial_masks())
    assert losses["loss_mask"].item() > 0 and losses["loss_mask_projection"].item() > 0
    sum(losses.values()).backward()
    grads = [p.grad for p in heads.mask_head.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    heads.eval()
    heads.box_predictor.test_score_thresh = 0.0
    with torch.no_grad():
        targets = targets_with_partial_masks()
        detections, _ = heads(None, {"p2": torch.rand(2, 8, 16, 16)}, jittered_proposals(targets))
    assert len(detections[0]) > 0 and detections[0].pred_masks.shape[1:] == (1, 14, 14)


@pytest.mark.parametrize("predictor", PREDICTORS)
@pytest.mark.parametrize("train_boxes", ["gt", "both"])
def test_batches_without_masks_give_a_zero_mask_loss_in_the_graph(predictor, train_boxes):
    heads = roi_heads(MASK_PREDICTOR=predictor, MASK_TRAIN_BOXES=train_boxes)
    losses = roi_head_losses(heads, box_only_targets())
    assert_zero_mask_loss_that_reaches_every_mask_parameter(heads, losses)


def test_with_the_projection_loss_box_only_batches_still_train_the_mask_branch():
    heads = roi_heads(**{"BOX_SUPERVISION.PROJECTION_WEIGHT": 1.0})
    losses = roi_head_losses(heads, box_only_targets())
    assert losses["loss_mask"].item() == 0.0 and losses["loss_mask_projection"].item() > 0
    sum(losses.values()).backward()
    assert heads.mask_head.transfer.parameters().__next__().grad.abs().sum() > 0


def test_the_default_is_the_paper_rule():
    heads = roi_heads()
    assert (heads.mask_train_boxes, heads.box_supervised_masks) == ("proposals", False)
    assert set(roi_head_losses(heads, targets_with_partial_masks())) == {
        "loss_cls",
        "loss_box_reg",
        "loss_mask",
    }


@pytest.mark.parametrize(
    "options, message",
    [
        ({"MASK_TRAIN_BOXES": "random"}, "MASK_TRAIN_BOXES must be one of"),
        ({"GT_BOX_JITTER": 0.7}, "GT_BOX_JITTER must be in"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        build_roi_heads(tiny_cfg(**options), FEATURE_SHAPE)


def test_box_supervision_refuses_a_head_without_it():
    cfg = tiny_cfg(**{"BOX_SUPERVISION.PROJECTION_WEIGHT": 1.0})
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    with pytest.raises(ValueError, match="BOX_SUPERVISION needs"):
        build_roi_heads(cfg, FEATURE_SHAPE)


def test_3000_classes_train_with_the_options_on_cpu():
    options = {"MASK_TRAIN_BOXES": "both", "BOX_SUPERVISION.PROJECTION_WEIGHT": 1.0}
    heads = roi_heads(3000, **{"MLP_BRANCH.ENABLED": True}, **options)
    losses = roi_head_losses(heads, targets_with_classes(2999, 1500))
    sum(losses.values()).backward()
    assert losses["loss_mask"].item() > 0 and losses["loss_mask_projection"].item() > 0


def test_rgb_to_lab_matches_reference_values():
    # skimage.color.rgb2lab of pure red, white, black and pure blue (D65).
    rgb = torch.tensor([[1, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 1]], dtype=torch.float64)
    lab = rgb_to_lab(rgb.T[:, :, None])[..., 0].T
    expected = [[53.2406, 80.0942, 67.2015], [100, 0, 0], [0, 0, 0], [32.2957, 79.1870, -107.8617]]
    torch.testing.assert_close(lab, torch.tensor(expected, dtype=torch.float64), atol=1e-3, rtol=0)


def test_roi_lab_colours_read_the_colour_at_each_cell_centre():
    rgb = torch.zeros(1, 3, 32, 32)
    rgb[0, 0, :, :16] = 1.0  # left half red, right half blue
    rgb[0, 2, :, 16:] = 1.0
    (lab,) = roi_lab_colours(rgb, [torch.tensor([[8.0, 0.0, 24.0, 32.0]])], 4)
    red, blue = rgb_to_lab(torch.eye(3)[[0, 2]][:, :, None, None])[..., 0, 0]
    torch.testing.assert_close(lab[0, :, :, :2], red[:, None, None].expand(3, 4, 2))
    torch.testing.assert_close(lab[0, :, :, 2:], blue[:, None, None].expand(3, 4, 2))


def test_smooth_image_averages_the_window_cut_at_the_image_edge():
    rgb = torch.arange(3 * 5 * 6, dtype=torch.float64).reshape(1, 3, 5, 6)
    smooth = smooth_image(rgb, 3)
    assert torch.equal(smooth_image(rgb, 1), rgb)
    for y, x in ((2, 3), (0, 0), (4, 5), (0, 3)):
        window = rgb[0, :, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
        torch.testing.assert_close(smooth[0, :, y, x], window.mean(dim=(1, 2)))
    for bad in (0, 2):
        with pytest.raises(ValueError, match="odd"):
            smooth_image(rgb, bad)


def test_smoothed_colours_let_neighbours_on_a_noisy_surface_pass_the_threshold():
    # One flat grey with pixel noise of std 4 (of 255), as the synthetic images: about half of
    # the neighbouring cells fail BoxInst's threshold (similarity 0.3) unless the colour is
    # averaged over a window.
    torch.manual_seed(0)
    rgb = (0.5 + torch.randn(1, 3, 64, 64) * 4 / 255).clamp(0, 1)
    box = [torch.tensor([[8.0, 8.0, 56.0, 56.0]])]
    passed = {}
    for smoothing in (1, 3):
        (lab,) = roi_lab_colours(rgb, box, 24, smoothing)
        similarity = torch.exp(-(lab[..., 1:] - lab[..., :-1]).norm(dim=1) / 2)
        passed[smoothing] = float((similarity >= 0.3).float().mean())
    assert passed[1] < 0.6 and passed[3] > 0.9


def test_colour_smoothing_is_checked():
    with pytest.raises(ValueError, match="PAIRWISE_COLOUR_SMOOTHING"):
        roi_heads(**{"BOX_SUPERVISION.PAIRWISE_COLOUR_SMOOTHING": 4})


def _direct_pairwise_loss(logits, lab, proposal, gt, threshold, dilation):
    p = 1 / (1 + np.exp(-logits.numpy().astype(np.float64)))
    lab = lab.numpy().astype(np.float64)
    total, count = 0.0, 0
    r_count, m = p.shape[0], p.shape[-1]
    for r in range(r_count):
        x0, y0, x1, y1 = proposal[r].tolist()
        g = gt[r].tolist()
        cx = [x0 + (i + 0.5) / m * (x1 - x0) for i in range(m)]
        cy = [y0 + (i + 0.5) / m * (y1 - y0) for i in range(m)]

        def inside(y, x):
            return g[0] <= cx[x] <= g[2] and g[1] <= cy[y] <= g[3]

        for y in range(m):
            for x in range(m):
                for dy, dx in (
                    (0, dilation),
                    (dilation, 0),
                    (dilation, dilation),
                    (dilation, -dilation),
                ):
                    yy, xx = y + dy, x + dx
                    if not (0 <= yy < m and 0 <= xx < m):
                        continue
                    # BoxInst: every cell in the box with each neighbour, so an undirected
                    # pair counts once per cell of it that lies in the box.
                    times = int(inside(y, x)) + int(inside(yy, xx))
                    similarity = np.exp(-np.linalg.norm(lab[r, :, y, x] - lab[r, :, yy, xx]) * 0.5)
                    if similarity < threshold or times == 0:
                        continue
                    a, b = p[r, y, x], p[r, yy, xx]
                    total -= times * np.log(a * b + (1 - a) * (1 - b))
                    count += times
    return total / max(count, 1)


def test_pairwise_loss_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 8, 8, generator=g) * 2
    lab = torch.randn(2, 3, 8, 8, generator=g) * 2  # similarities spread around the threshold
    proposal = torch.tensor([[0.0, 0.0, 16.0, 16.0], [4.0, 2.0, 20.0, 30.0]])
    gt = torch.tensor([[2.0, 3.0, 14.0, 12.0], [4.0, 2.0, 20.0, 30.0]])
    for dilation in (1, 2):
        ours = pairwise_affinity_loss(logits, lab, proposal, gt, 0.3, dilation).item()
        direct = _direct_pairwise_loss(logits, lab, proposal, gt, 0.3, dilation)
        assert ours == pytest.approx(direct, rel=1e-5)


def test_pairwise_loss_prefers_a_mask_that_follows_the_colour_edge():
    lab = torch.zeros(1, 3, 8, 8)
    lab[0, 1, :, 4:] = 60.0  # two flat colours, left and right
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
    follows = torch.full((1, 8, 8), -20.0)
    follows[0, :, :4] = 20.0
    cuts = torch.full((1, 8, 8), -20.0)
    cuts[0, :4] = 20.0  # top half: splits both flat regions
    loss_follows = pairwise_affinity_loss(follows, lab, boxes, boxes).item()
    assert loss_follows == pytest.approx(0.0, abs=1e-6)
    assert pairwise_affinity_loss(cuts, lab, boxes, boxes).item() > 1.0


def test_pairwise_loss_ties_the_box_background_to_the_outside():
    """A disc on a flat background, its box inside a larger RoI: the mask that follows the disc
    scores lower than the one that fills the box (with pairs inside the box only, as this
    module had until 2026-12-02, the filled box scored 0 and won)."""
    side = 16
    yy, xx = torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")
    disc = (yy - 8) ** 2 + (xx - 8) ** 2 <= 16  # radius 4: box [4, 12] x [4, 12]
    lab = torch.zeros(1, 3, side, side)
    lab[0, 1][disc] = 60.0
    roi = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    box = torch.tensor([[4.0, 4.0, 12.0, 12.0]])
    follows = torch.where(disc, 20.0, -20.0)[None]
    inside = (yy > 4) & (yy < 12) & (xx > 4) & (xx < 12)
    fills = torch.where(inside, 20.0, -20.0)[None]
    assert pairwise_affinity_loss(follows, lab, roi, box).item() == pytest.approx(0.0, abs=1e-6)
    assert pairwise_affinity_loss(fills, lab, roi, box).item() > 1.0
    # Both satisfy the projection loss: it alone cannot tell them apart.
    for logits in (follows, fills):
        assert box_projection_loss(logits, roi, box).item() < 0.05


def test_pairwise_loss_trains_the_mask_branch_through_the_roi_heads():
    heads = roi_heads(**{"BOX_SUPERVISION.PAIRWISE_WEIGHT": 1.0})
    targets = targets_with_partial_masks()
    images = ImageList(torch.rand(2, 3, IMAGE, IMAGE) * 100, [(IMAGE, IMAGE)] * 2)
    features = {"p2": torch.rand(2, 8, IMAGE // 4, IMAGE // 4)}
    heads.train()
    torch.manual_seed(0)
    with EventStorage():
        _, losses = heads(images, features, jittered_proposals(targets), targets)
    assert losses["loss_mask_pairwise"].item() > 0 and "loss_mask_projection" not in losses
    sum(losses.values()).backward()
    assert next(heads.mask_head.transfer.parameters()).grad.abs().sum() > 0


def test_colour_smoothing_reaches_the_pairwise_loss_through_the_roi_heads():
    targets = targets_with_partial_masks()
    torch.manual_seed(1)
    images = ImageList(torch.rand(2, 3, IMAGE, IMAGE) * 100, [(IMAGE, IMAGE)] * 2)
    features = {"p2": torch.rand(2, 8, IMAGE // 4, IMAGE // 4)}
    losses = []
    for smoothing in (1, 5):
        torch.manual_seed(0)
        heads = roi_heads(
            **{
                "BOX_SUPERVISION.PAIRWISE_WEIGHT": 1.0,
                "BOX_SUPERVISION.PAIRWISE_COLOUR_SMOOTHING": smoothing,
            }
        )
        assert heads.pairwise_colour_smoothing == smoothing
        heads.train()
        torch.manual_seed(0)
        with EventStorage():
            _, out = heads(images, features, jittered_proposals(targets), targets)
        losses.append(out["loss_mask_pairwise"].item())
    # Same weights and RoIs: only the colours differ, so more pairs pass on smoothed noise.
    assert losses[0] != pytest.approx(losses[1])


def test_pairwise_weight_warms_up_linearly():
    heads = roi_heads(
        **{
            "BOX_SUPERVISION.PAIRWISE_WEIGHT": 2.0,
            "BOX_SUPERVISION.PAIRWISE_WARMUP_ITERS": 100,
        }
    )
    targets = targets_with_partial_masks()
    images = ImageList(torch.rand(2, 3, IMAGE, IMAGE) * 100, [(IMAGE, IMAGE)] * 2)
    features = {"p2": torch.rand(2, 8, IMAGE // 4, IMAGE // 4)}
    heads.train()
    losses = {}
    for iteration in (0, 25, 100, 400):
        torch.manual_seed(0)
        with EventStorage(start_iter=iteration):
            _, out = heads(images, features, jittered_proposals(targets), targets)
        losses[iteration] = out["loss_mask_pairwise"].item()
    assert losses[0] == 0.0 and losses[100] > 0
    assert losses[25] == pytest.approx(losses[100] / 4, rel=1e-5)
    assert losses[400] == pytest.approx(losses[100], rel=1e-5)
