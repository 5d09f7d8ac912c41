"""BatchNorm running statistics that training must not move: a frozen detector's (stage-wise
training) and the box head's during the class activation prior's second pass."""

import copy
import os

import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.structures import Boxes
from detectron2.utils.events import EventStorage
from model_fixtures import FEATURE_SHAPE, IMAGE, cam_prior_cfg, targets_with_partial_masks
from torch.nn.modules.batchnorm import _BatchNorm
from torch.testing import assert_close

from maskx_d2 import add_maskx_config
from maskx_d2.modeling.norm_statistics import running_statistics_kept

MASKX = os.path.join(
    os.path.dirname(__file__), "..", "configs", "Synthetic", "maskx_R_18_FPN_synthetic.yaml"
)


def _model(freeze_detector: bool):
    """The synthetic Mask^X model (BatchNorm in the backbone), narrow, random weights."""
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(MASKX)
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.ROI_BOX_HEAD.CONV_DIM = 16
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    cfg.MODEL.MASKX.FREEZE_DETECTOR = freeze_detector
    torch.manual_seed(0)
    return build_model(cfg)


def _norm_buffers(model):
    return {
        name: b.clone()
        for name, b in model.named_buffers()
        if "norm" in name or "bn" in name or "running" in name
    }


def _train_step_inputs():
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.randint(0, 256, (3, IMAGE, IMAGE), generator=g, dtype=torch.uint8),
            "instances": t,
        }
        for t in targets_with_partial_masks()
    ]


def _forward_in_training(model):
    with EventStorage():
        losses = model(_train_step_inputs())
    sum(losses.values()).backward()
    return losses


def test_frozen_detector_keeps_its_batch_norm_statistics():
    model = _model(freeze_detector=True)
    named_norms = {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, _BatchNorm) and not n.startswith("roi_heads.mask_head")
    }
    detector_norms = list(named_norms.values())
    assert len(detector_norms) >= 10  # the backbone's, the FPN's and the box head's
    assert any(n.startswith("backbone.fpn_") for n in named_norms)  # the synthetic recipe's
    assert any(n.startswith("roi_heads.box_head.") for n in named_norms)
    for step in ("built", "train()", "eval() then train()"):
        if step == "train()":
            model.train()
        elif step != "built":
            model.eval()
            model.train()
        assert model.training and model.roi_heads.mask_head.training, step
        assert not any(m.training for m in detector_norms), step
    before = _norm_buffers(model)
    losses = _forward_in_training(model)
    assert set(losses) == {"loss_mask"}
    after = _norm_buffers(model)
    assert before.keys() == after.keys() and before
    for name in before:
        assert torch.equal(before[name], after[name]), name


def test_end_to_end_training_still_moves_batch_norm_statistics():
    """The control: without a frozen detector the same step updates the backbone's averages."""
    model = _model(freeze_detector=False)
    before = _norm_buffers(model)
    _forward_in_training(model)
    after = _norm_buffers(model)
    moved = [
        n for n in before if n.endswith("running_mean") and not torch.equal(before[n], after[n])
    ]
    assert len(moved) >= 10


def test_running_statistics_kept_restores_and_still_normalizes_with_the_batch():
    norm = torch.nn.BatchNorm2d(4).train()
    x = torch.randn(8, 4, 3, 3) * 3 + 2
    reference = copy.deepcopy(norm)
    with running_statistics_kept(norm):
        y = norm(x)
    assert_close(y, reference(x))  # batch statistics, as in training mode
    assert torch.equal(norm.running_mean, torch.zeros(4))
    assert torch.equal(norm.running_var, torch.ones(4))
    assert norm.num_batches_tracked.item() == 0
    assert not torch.equal(reference.running_mean, torch.zeros(4))  # the pass would move them
    assert norm.track_running_stats  # as before the block


def test_running_statistics_kept_lets_an_earlier_pass_through_the_layer_backpropagate():
    """The box branch's pass, then the kept pass (the CAM's), then one backward through both:
    the kept pass must not write the buffers that the first pass saved for its backward."""
    layer = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train()
    x = torch.randn(6, 3, 5, 5)
    first = layer(x)
    mean, var = layer[1].running_mean.clone(), layer[1].running_var.clone()
    with running_statistics_kept(layer):
        second = layer(x[:2] * 2)
    (first.square().sum() + second.square().sum()).backward()
    assert layer[0].weight.grad is not None and torch.isfinite(layer[0].weight.grad).all()
    assert torch.equal(layer[1].running_mean, mean) and torch.equal(layer[1].running_var, var)
    assert layer[1].num_batches_tracked.item() == 1  # the first pass's only


def test_running_statistics_kept_restores_a_sync_batch_norm_across_processes(monkeypatch):
    """detectron2's NaiveSyncBatchNorm with several processes writes its running statistics
    whatever ``track_running_stats`` says; they are copied back on exit, and the earlier pass
    still backpropagates: that path normalizes with the batch's statistics only, so autograd
    saved no running buffer that the copy could invalidate. (Two processes are simulated: the
    all-reduce is the identity, as if both held the same batch.)"""
    from detectron2.layers import batch_norm

    monkeypatch.setattr(batch_norm.comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(batch_norm.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(batch_norm, "differentiable_all_reduce", lambda vec: vec * 2)
    layer = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), batch_norm.NaiveSyncBatchNorm(4))
    layer.train()
    x = torch.randn(6, 3, 5, 5)
    first = layer(x)
    mean, var = layer[1].running_mean.clone(), layer[1].running_var.clone()
    assert not torch.equal(mean, torch.zeros(4))  # the simulated sync path did update them
    with running_statistics_kept(layer):
        second = layer(x[:2] * 2)
        assert not torch.equal(layer[1].running_mean, mean)  # written despite the flag
    (first.square().sum() + second.square().sum()).backward()
    assert layer[0].weight.grad is not None and torch.isfinite(layer[0].weight.grad).all()
    assert torch.equal(layer[1].running_mean, mean) and torch.equal(layer[1].running_var, var)


def test_running_statistics_kept_in_eval_mode_uses_the_running_statistics():
    norm = torch.nn.BatchNorm2d(4)
    norm.running_mean.fill_(1.0)
    norm.running_var.fill_(4.0)
    norm.eval()
    x = torch.randn(3, 4, 2, 2)
    expected = norm(x)
    with running_statistics_kept(norm):
        assert_close(norm(x), expected)


def test_class_activation_prior_keeps_the_box_heads_statistics():
    """With a BatchNorm box head, its pass for the CAM must not move the averages, which
    belong to the box branch's sampled RoIs."""
    cfg = cam_prior_cfg()
    cfg.MODEL.ROI_BOX_HEAD.NORM = "BN"
    torch.manual_seed(0)
    heads = build_roi_heads(cfg, FEATURE_SHAPE).train()
    norms = [m for m in heads.box_head.modules() if isinstance(m, _BatchNorm)]
    assert len(norms) == 2
    features = {"p2": torch.rand(2, 8, IMAGE // 4, IMAGE // 4)}
    targets = targets_with_partial_masks()
    boxes = [Boxes(t.gt_boxes.tensor.clone()) for t in targets]
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    cams = heads._class_activation_prior(features, boxes, targets)
    assert cams.shape == (4, 7, 7) and torch.isfinite(cams).all()
    for m, (mean, var) in zip(norms, before):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
    # The control: the box head's own forward in training mode moves them.
    heads.box_head(heads.box_pooler([features["p2"]], boxes))
    assert not torch.equal(norms[0].running_mean, before[0][0])
