"""The ROI heads under autocast (AMP), in every mask-predictor mode.

On a GPU detectron2's AMPTrainer runs the model under ``torch.autocast("cuda", float16)``; the
same casting rules apply on the CPU with bfloat16/float16, so dtype mismatches between the
features, T's predicted weights and the MLP branch show up here without a GPU.
"""

import pytest
import torch
from detectron2.utils.events import EventStorage
from model_fixtures import IMAGE, jittered_proposals, roi_heads, targets_with_partial_masks

import maskx_d2  # noqa: F401  (registers the datasets and model parts)

MODES = [
    {"MASK_PREDICTOR": "transfer", "MLP_BRANCH.ENABLED": True},
    {"MASK_PREDICTOR": "transfer", "TRANSFER.INPUT": "cls"},
    {"MASK_PREDICTOR": "class_agnostic"},
    {"MASK_PREDICTOR": "class_specific"},
]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("maskx", MODES, ids=lambda m: "-".join(map(str, m.values())))
def test_train_and_infer_under_autocast(maskx, dtype):
    heads = roi_heads(**maskx)
    targets = targets_with_partial_masks()
    features = {"p2": torch.rand(2, 8, IMAGE // 4, IMAGE // 4)}
    torch.manual_seed(0)
    with EventStorage(), torch.autocast("cpu", dtype=dtype):
        _, losses = heads(None, features, jittered_proposals(targets), targets)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    assert losses["loss_mask"].item() > 0
    sum(losses.values()).backward()
    mask_params = [p for p in heads.mask_head.parameters() if p.requires_grad]
    assert mask_params and all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in mask_params
    )

    heads.eval()
    heads.box_predictor.test_score_thresh = 0.0
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        detections, _ = heads(None, features, jittered_proposals(targets))
    masks = detections[0].pred_masks
    assert len(masks) > 0 and masks.shape[1:] == (1, 14, 14)
    assert torch.isfinite(masks.float()).all() and 0 <= masks.min() and masks.max() <= 1
