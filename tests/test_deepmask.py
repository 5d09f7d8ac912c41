"""DeepMask (maskx_d2/deepmask): window geometry, positives, partial supervision, dense inference
as convolutions against per-crop evaluation, outputs, masks on given boxes, and the whole
pipeline through train_net.py."""

import math

import pytest
import torch
from detectron2.config import get_cfg
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
    model_of_run,
    quick_schedule,
    train_then_evaluate,
)

from maskx_d2 import add_maskx_config
from maskx_d2.deepmask import (
    DeepMask,
    ScoreBranch,
    SegmentationBranch,
    choose_scale,
    fitting,
    label_windows,
    resize_and_pad,
    window_grid,
)
from maskx_d2.deepmask.outputs import mask_boxes, to_original_size

IMAGE = 64
STRIDE, PATCH, WINDOW = 8, 32, 4  # res3 of the tiny trunk; windows of 4 x 4 cells
RANK, MASK = 6, 8
INSTANT = quick_schedule("deepmask_R_18_synthetic_instant_test")


def tiny_deepmask_cfg():
    """One pyramid scale, 2^-0.5, where both objects of targets_with_partial_masks() fit: the
    masked triangle (larger side 26 -> 18.4 px) and the box-only square (34 -> 24 px)."""
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.META_ARCHITECTURE = "DeepMask"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3"]
    dm = cfg.MODEL.DEEPMASK
    dm.IN_FEATURE = "res3"
    dm.PATCH_SIZE = PATCH
    dm.OBJECT_SIZE = 20
    dm.CENTER_TOLERANCE = 8.0
    dm.SCALE_TOLERANCE = 0.5
    dm.SCALES_LOG2 = [-0.5]
    dm.MASK_CONV_DIM = 8
    dm.MASK_RANK = RANK
    dm.MASK_SIZE = MASK
    dm.SCORE_FC_DIMS = [8, 16]
    dm.WINDOWS_PER_IMAGE = 16
    dm.TOPK_TEST = 10
    return cfg


def tiny_model(seed=0, **overrides):
    cfg = tiny_deepmask_cfg()
    for key, value in overrides.items():
        cfg.merge_from_list([key, value])
    torch.manual_seed(seed)  # the weights, then the training windows drawn after them
    return build_model(cfg)


def batch(targets, size=IMAGE):
    g = torch.Generator().manual_seed(3)
    return [
        {"image": torch.randint(0, 255, (3, size, size), generator=g).float(), "instances": t}
        for t in targets
    ]


def training_losses(model, targets):
    model.train()
    with EventStorage():
        return model(batch(targets))


FIT = dict(patch=48.0, object_size=20.0, center_tolerance=8.0, scale_tolerance=0.25)


# ------------------------------------------------------------------------- positive windows
@pytest.mark.parametrize(
    "box, positive",
    [
        ([6.0, 6.0, 26.0, 26.0], True),  # a 20 px object centred on the window
        ([14.0, 6.0, 34.0, 26.0], True),  # 8 px to the right: at the tolerance
        ([15.0, 6.0, 35.0, 26.0], False),  # 9 px: not centred
        ([8.0, 8.0, 24.0, 24.0], False),  # 16 px: log2(16/20) = -0.32, too small
        ([7.0, 7.0, 25.0, 25.0], True),  # 18 px: log2(18/20) = -0.15, within 1/4
        ([3.0, 3.0, 29.0, 29.0], False),  # 26 px: log2(26/20) = 0.38, too large
        ([6.0, 14.0, 26.0, 18.0], True),  # flat: the larger side decides
    ],
)
def test_a_positive_is_centred_and_fits_the_scale(box, positive):
    centre = torch.tensor([[16.0, 16.0]])  # the window [-8, 40] x [-8, 40]
    assert fitting(centre, torch.tensor([box]), **FIT).item() is positive


def test_a_positive_lies_entirely_inside_its_window():
    fit = dict(FIT, patch=32.0)  # 20 px objects may be 8 px off-centre: 10 + 8 > 16
    centre = torch.tensor([[16.0, 16.0]])  # the window [0, 32] x [0, 32]
    assert fitting(centre, torch.tensor([[10.0, 6.0, 30.0, 26.0]]), **fit).item()  # 4 px off
    assert not fitting(centre, torch.tensor([[14.0, 6.0, 34.0, 26.0]]), **fit).item()  # 8 px


def test_labels_match_the_nearest_fitting_object_and_everything_else_is_negative():
    centres = torch.tensor([[16.0, 16.0], [24.0, 16.0], [48.0, 48.0], [80.0, 80.0]])
    boxes = torch.tensor(
        [[6.0, 6.0, 26.0, 26.0], [12.0, 6.0, 32.0, 26.0], [38.0, 38.0, 58.0, 58.0]]
    )
    every = torch.ones(3, dtype=torch.bool)
    labels, matched = label_windows(centres, boxes, every, ~every, **FIT)
    assert labels.tolist() == [1, 1, 1, 0]
    assert matched.tolist() == [0, 1, 2, -1]  # window 0 fits objects 0 and 1: 0 is nearer


@pytest.mark.parametrize("score_objects, label", [("all", 1), ("masked", 0), ("masked_ignore", -1)])
def test_windows_of_box_only_objects_per_score_objects(score_objects, label):
    model = tiny_model(**{"MODEL.DEEPMASK.SCORE_OBJECTS": score_objects})
    centres = torch.tensor([[16.0, 16.0], [48.0, 48.0], [80.0, 16.0]])
    boxes = torch.tensor([[6.0, 6.0, 26.0, 26.0], [38.0, 38.0, 58.0, 58.0]])
    has_mask = torch.tensor([True, False])
    labels, _ = label_windows(centres, boxes, *model._score_roles(has_mask), **FIT)
    assert labels.tolist() == [1, label, 0]


def test_an_image_trains_at_the_scale_of_one_of_its_objects():
    scales = [2.0**e for e in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    boxes = torch.tensor([[0.0, 0.0, 40.0, 20.0], [0.0, 0.0, 10.0, 10.0]])
    # 40 px to 20: 2^-1; 10 px to 20: 2^1. Only the first is an object here.
    assert choose_scale(boxes, torch.tensor([True, False]), scales, 20.0) == 0
    assert choose_scale(boxes, torch.tensor([False, True]), scales, 20.0) == 4
    torch.manual_seed(0)
    drawn = {choose_scale(boxes, torch.tensor([False, False]), scales, 20.0) for _ in range(50)}
    assert drawn == set(range(5))  # no object: any scale


# ----------------------------------------------------------------------------- geometry
def test_the_grid_of_windows_covers_the_image_at_each_scale():
    images = torch.zeros(2, 3, 64, 48)
    for scale in (0.5, 2**-0.5, 1.0, 2.0):
        padded, scale_y, scale_x = resize_and_pad(images, scale, PATCH, STRIDE)
        assert padded.shape[-2] % STRIDE == 0 and padded.shape[-1] % STRIDE == 0
        level = window_grid(
            (padded.shape[-2] // STRIDE, padded.shape[-1] // STRIDE),
            WINDOW,
            scale_y,
            scale_x,
            PATCH,
            STRIDE,
        )
        centres = level.centres()
        assert centres[:, 0].max() >= 48 * scale_x and centres[:, 1].max() >= 64 * scale_y
        # A window is P x P pixels of the padded tensor, centred on its grid point + P/2.
        index = torch.arange(level.rows * level.cols)
        padded_boxes = level.padded_boxes(index)
        assert torch.allclose(padded_boxes[:, 2:] - padded_boxes[:, :2], torch.tensor(32.0))
        assert torch.allclose((padded_boxes[:, :2] + padded_boxes[:, 2:]) / 2, centres + 16)
        # On the network input: the same window divided by the scale.
        input_boxes = level.input_boxes(index)
        expected_centres = centres / torch.tensor([scale_x, scale_y])
        assert torch.allclose((input_boxes[:, :2] + input_boxes[:, 2:]) / 2, expected_centres)


# ------------------------------------------------------------------------------ branches
def test_low_rank_segmentation_branch_and_score_branch_shapes():
    segmentation = SegmentationBranch(16, WINDOW, conv_dim=8, rank=RANK, mask_size=MASK)
    assert segmentation.conv.weight.shape == (8, 16, 1, 1)
    assert segmentation.to_rank.weight.shape == (RANK, 8 * WINDOW * WINDOW)
    assert segmentation.to_mask.weight.shape == (MASK * MASK, RANK)  # no ReLU in between
    windows = torch.randn(5, 16, WINDOW, WINDOW)
    assert segmentation(windows).shape == (5, MASK, MASK)
    assert segmentation.dense_codes(torch.randn(2, 16, 9, 7)).shape == (2, RANK, 6, 4)
    score = ScoreBranch(16, WINDOW, [8, 12])
    assert [fc.in_features for fc in score.fcs] == [16 * 2 * 2, 8, 12]
    assert score.fcs[-1].out_features == 1
    assert score(windows).shape == (5,)
    assert score.dense(torch.randn(2, 16, 9, 7)).shape == (2, 6, 4)


def test_dense_convolutions_equal_the_branches_on_each_window():
    """The conv form over a whole map gives, for every window on the grid, what RoIAlign's crop
    of that window through the FC branches gives (and RoIAlign reads exactly its cells)."""
    model = tiny_model(**{"MODEL.DEEPMASK.SCALES_LOG2": "[-1.0, 0.0, 0.5]"}).eval()
    inputs = batch(targets_with_partial_masks())
    with torch.no_grad():
        images = model.preprocess_image(inputs)
        levels = model.dense(images)
        for scale, (level, codes, logits) in zip(model.scales, levels):
            padded, _, _ = resize_and_pad(images.tensor, scale, PATCH, STRIDE)
            features = model.backbone(padded)["res3"]
            index = torch.arange(level.rows * level.cols)
            for k in range(2):
                rois = torch.cat(
                    [torch.full((len(index), 1), float(k)), level.padded_boxes(index)], 1
                )
                crops = model.pooler(features, rois)
                i, j = 1, level.cols - 1
                cells = features[k, :, i : i + WINDOW, j : j + WINDOW]
                assert torch.allclose(crops[i * level.cols + j], cells, atol=1e-6)
                # The codes reach hundreds; a conv and a linear layer sum in other orders (and
                # with other thread counts), so the tolerance is relative.
                expected_codes = model.segmentation_branch.codes(crops)
                close = dict(rtol=1e-4, atol=1e-3)
                assert torch.allclose(codes[k].flatten(1).t(), expected_codes, **close)
                expected_logits = model.score_branch(crops)
                assert torch.allclose(logits[k].flatten(), expected_logits, **close)


# ------------------------------------------------------------------- training, partial masks
def test_losses_and_every_parameter_trains():
    model = tiny_model()
    losses = training_losses(model, targets_with_partial_masks())
    assert set(losses) == {"loss_mask", "loss_score"}
    assert losses["loss_mask"].item() > 0 and losses["loss_score"].item() > 0
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None or not p.requires_grad, name  # the stem is frozen
    for name, p in model.segmentation_branch.named_parameters():
        assert torch.count_nonzero(p.grad) > 0, name


def test_masks_of_box_only_instances_change_nothing():
    assert_box_only_masks_change_nothing(lambda targets: training_losses(tiny_model(), targets))


def test_box_only_objects_are_score_positives_by_default():
    """Every instance box-only: with SCORE_OBJECTS "all" their windows are still positives."""
    targets = box_only_targets()
    model = tiny_model()
    with torch.no_grad():
        level = window_grid((10, 10), WINDOW, 45 / 64, 45 / 64, PATCH, STRIDE)
        labels, _, _ = model._sample(level, targets[0], targets[0].gt_has_mask, (IMAGE, IMAGE))
    assert (labels == 1).any()


def test_all_box_only_batch_gives_zero_mask_loss_and_zero_gradients():
    targets = box_only_targets()
    model = tiny_model()
    losses = training_losses(model, targets)
    assert losses["loss_mask"].item() == 0.0
    assert losses["loss_score"].item() > 0  # objectness still trains on the boxes
    sum(losses.values()).backward()
    assert_zero_gradients_in_the_graph(model.segmentation_branch.named_parameters())


def test_images_without_instances_train():
    losses = training_losses(
        tiny_model(), [image_without_instances(), targets_with_partial_masks()[0]]
    )
    assert all(torch.isfinite(v) for v in losses.values())


# ------------------------------------------------------------------------------ inference
def test_proposals_are_class_agnostic_masks_with_their_boxes():
    model = tiny_model(**{"MODEL.DEEPMASK.SCALES_LOG2": "[-1.0, 0.0, 0.5]"}).eval()
    inputs = batch(targets_with_partial_masks())
    inputs[1] = dict(inputs[1], height=128, width=96)  # the original image was larger
    with torch.no_grad():
        outputs = model(inputs)
    for output, size in zip(outputs, [(IMAGE, IMAGE), (128, 96)]):
        instances = output["instances"]
        assert len(instances) == 10 and instances.image_size == size
        assert (
            instances.pred_masks.shape == (10, *size) and instances.pred_masks.dtype == torch.bool
        )
        assert torch.all(instances.pred_classes == 0)
        assert torch.all((instances.scores > 0) & (instances.scores < 1))
        assert torch.all(instances.scores[:-1] >= instances.scores[1:])  # best first
        assert torch.equal(instances.pred_boxes.tensor, mask_boxes(instances.pred_masks))
        assert not instances.has("windows") and not instances.has("mask_probs")


def test_a_window_reaching_outside_the_image_is_pasted_unclipped():
    r = Instances((40, 40))
    r.windows = torch.tensor([[-20.0, 10.0, 20.0, 50.0]])  # half outside, left and bottom
    r.mask_probs = torch.zeros(1, 8, 8)
    r.mask_probs[0, :, 4:] = 1.0  # the window's right half
    r.scores = torch.ones(1)
    (output,) = to_original_size([r], [{}], [(40, 40)], threshold=0.5)
    masks = output["instances"].pred_masks[0]
    # The window's right half, not squeezed into the clipped box [0, 10, 20, 40] (bilinear
    # blends the edges with the zeros around the window).
    assert masks[12:, 2:18].all() and masks[20:, 0].all() and masks[10, 10]
    assert not masks[:10].any() and not masks[:, 20:].any()
    assert output["instances"].pred_boxes.tensor.tolist() == [[0.0, 10.0, 20.0, 40.0]]


def test_mask_boxes_are_tight_and_empty_masks_get_zero_boxes():
    masks = torch.zeros(2, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    assert mask_boxes(masks).tolist() == [[3.0, 2.0, 9.0, 5.0], [0.0, 0.0, 0.0, 0.0]]


def test_masks_on_given_boxes_use_the_fitting_scale_and_the_nearest_window():
    model = tiny_model(**{"MODEL.DEEPMASK.SCALES_LOG2": "[-1.0, 0.0, 1.0]"}).eval()
    inputs = batch(targets_with_partial_masks())
    given = []
    for t in targets_with_partial_masks():
        g = Instances((IMAGE, IMAGE))
        g.pred_boxes = Boxes(torch.tensor([[4.0, 4.0, 44.0, 24.0], [50.0, 50.0, 60.0, 60.0]]))
        g.pred_classes = t.gt_classes
        g.scores = torch.ones(len(t))
        given.append(g)
    with torch.no_grad():
        levels = model.dense(model.preprocess_image(inputs))
        where = model.box_windows(levels, given[0].pred_boxes)
        # 40 px at 2^-1 = 20 = OBJECT_SIZE; 10 px at 2^1 = 20.
        assert where[:, 0].tolist() == [0, 2]
        for (level_index, index), box in zip(where.tolist(), given[0].pred_boxes.tensor):
            level = levels[level_index][0]
            window = level.input_boxes(torch.tensor([index]))[0]
            centre_offset = (window[:2] + window[2:]) / 2 - (box[:2] + box[2:]) / 2
            assert torch.all(centre_offset.abs() <= STRIDE / 2 / level.scale_x + 1e-4)
        proposals, on_boxes = model.inference_with_given_boxes(inputs, given)
    assert len(proposals) == len(on_boxes) == 2
    for output, g in zip(on_boxes, given):
        instances = output["instances"]
        assert instances.pred_masks.shape == (2, IMAGE, IMAGE)
        assert torch.equal(instances.pred_boxes.tensor, g.pred_boxes.tensor)
        assert torch.equal(instances.pred_classes, g.pred_classes)
        assert torch.equal(instances.scores, torch.ones(2))


def test_images_without_given_boxes_and_with_few_windows():
    model = tiny_model(**{"MODEL.DEEPMASK.TOPK_TEST": 1000}).eval()
    inputs = batch(targets_with_partial_masks())
    none = Instances((IMAGE, IMAGE))
    none.pred_boxes = Boxes(torch.zeros(0, 4))
    none.pred_classes = torch.zeros(0, dtype=torch.long)
    with torch.no_grad():
        proposals, on_boxes = model.inference_with_given_boxes(inputs, [none, none])
    # 45 x 45 pixels at the one scale 2^-0.5: 6 x 6 windows centred on the image.
    assert [len(p["instances"]) for p in proposals] == [36, 36]
    assert on_boxes[0]["instances"].pred_masks.shape == (0, IMAGE, IMAGE)


# ------------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    "key, value, message",
    [
        ("MODEL.DEEPMASK.IN_FEATURE", "res5", "MODEL.DEEPMASK.IN_FEATURE"),
        ("MODEL.DEEPMASK.PATCH_SIZE", "24", "MODEL.DEEPMASK.PATCH_SIZE"),
        ("MODEL.DEEPMASK.OBJECT_SIZE", "40", "MODEL.DEEPMASK.OBJECT_SIZE"),
        ("MODEL.DEEPMASK.SCORE_OBJECTS", "A", "MODEL.DEEPMASK.SCORE_OBJECTS"),
        ("MODEL.DEEPMASK.SCALES_LOG2", "[]", "MODEL.DEEPMASK.SCALES_LOG2"),
        ("MODEL.DEEPMASK.POSITIVE_FRACTION", "0.0", "MODEL.DEEPMASK.POSITIVE_FRACTION"),
        ("MODEL.DEEPMASK.MASK_RANK", "0", "MODEL.DEEPMASK.MASK_RANK"),
    ],
)
def test_config_errors_name_the_key(key, value, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(**{key: value})


def test_the_synthetic_geometry_matches_the_papers_proportions():
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(INSTANT)
    dm = cfg.MODEL.DEEPMASK
    assert dm.PATCH_SIZE // 8 == 8  # res3: 8 x 8 windows
    assert math.isclose(dm.OBJECT_SIZE / dm.PATCH_SIZE, 128 / 224, rel_tol=0.02)
    assert dm.CENTER_TOLERANCE == 8  # one stride, as the paper's 16 at stride 16
    assert cfg.TEST.MASKX.PROPOSAL_RECALL


# ------------------------------------------------------------------------------ the pipeline
def test_train_and_evaluate_through_train_net(tmp_path):
    results = train_then_evaluate(INSTANT, str(tmp_path))
    for key in ("segm_gtbox_A", "segm_gtbox_B", "proposals_box_B", "proposals_segm_A"):
        assert key in results, key
    for key in ("AR@10", "AR@100"):
        assert 0.0 <= results["proposals_segm_B"][key] <= 100.0
    assert results["proposals_box_B"]["AR@100"] > 0.0
    assert 0.0 < results["segm_gtbox_B"]["mIoU"] <= 100.0
    assert isinstance(model_of_run(str(tmp_path)), DeepMask)
