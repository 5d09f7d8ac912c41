"""tools/mask_weight_substitution.py: swapping a class's mask weights for another's, and the
table (the per-instance IoUs come from the evaluator, tested elsewhere)."""

import os
import sys

import pytest
import torch
from model_fixtures import box_predictor
from test_mask_head import SHAPE, C, K, _pooled, _transfer_head

from maskx_d2.modeling import MaskXMaskHead

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import mask_weight_substitution as substitution  # noqa: E402


@pytest.mark.parametrize("mlp", [False, True])
def test_substituted_classes_get_the_donors_logits_and_the_head_is_restored(mlp):
    head = _transfer_head(mlp=mlp).eval()
    predictor = box_predictor()
    features = head.layers(_pooled(K))
    classes = torch.arange(K)
    with torch.no_grad():
        before = head.mask_logits(features, classes, predictor)
        donor_of = torch.arange(K)
        donor_of[[1, 3]] = 0  # classes 1 and 3 borrow class 0's weights
        with substitution.substituted_mask_weights(head, donor_of):
            swapped = head.mask_logits(features, classes, predictor)
            as_class_0 = head.mask_logits(features, torch.zeros(K, dtype=torch.int64), predictor)
        after = head.mask_logits(features, classes, predictor)
    for k in (1, 3):
        # Same RoI features, class 0's weights (T runs on another batch of classes: float noise).
        assert torch.allclose(swapped[k], as_class_0[k], rtol=1e-5, atol=1e-7)
        assert not torch.allclose(swapped[k], before[k], rtol=1e-2, atol=1e-5)
    for k in (0, 2, 4):
        assert torch.allclose(swapped[k], before[k], rtol=1e-5, atol=1e-7)
    assert torch.equal(after, before)  # the head's own method is back
    assert "per_roi_mask_weights" not in vars(head)


def test_class_agnostic_head_is_refused():
    head = MaskXMaskHead(
        SHAPE,
        num_classes=K,
        conv_dims=[C, C, C],
        mask_predictor="class_agnostic",
    )
    with pytest.raises(ValueError, match="class-agnostic"):
        with substitution.substituted_mask_weights(head, torch.arange(K)):
            pass  # not reached: entering the block raises


def test_class_means_and_table():
    ious = {10: 0.2, 11: 0.4, 12: 0.9, 13: 0.5}
    category_of = {10: 1, 11: 1, 12: 2, 13: 0}
    assert substitution.class_mean_ious(ious, category_of, [1, 2]) == pytest.approx(
        {1: 0.3, 2: 0.9}
    )
    names = {0: "red_circle", 1: "red_bar", 2: "blue_bar", 3: "blue_ring"}
    table = substitution.substitution_table(
        {1: 0.1, 2: 0.5}, [(0, {1: 0.7, 2: 0.2}), (3, {1: 0.3, 2: 0.6})], names
    )
    assert table.splitlines() == [
        "| box-only class | own weights | red_circle | blue_ring | best of A |",
        "|---|---|---|---|---|",
        "| red_bar | 10.0 | 70.0 | 30.0 | 70.0 |",
        "| blue_bar | 50.0 | 20.0 | 60.0 | 60.0 |",
        "| mean over B | 30.0 | 45.0 | 45.0 | 65.0 |",
    ]
