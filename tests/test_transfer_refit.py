"""tools/transfer_refit.py: the ridge map refitted from A's detector weights to A's mask weights,
its held-out predictions, and the fixed-weights context (the per-instance IoUs come from the
evaluator, tested elsewhere)."""

import os
import sys

import numpy as np
import pytest
import torch
from model_fixtures import box_predictor
from test_mask_head import K, _pooled, _transfer_head

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import transfer_refit  # noqa: E402


def _affine_data(n=6, d=20, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w, b = rng.normal(size=(d, c)), rng.normal(size=(1, c))
    return x, x @ w + b, w, b, rng


def test_ridge_without_penalty_interpolates_and_is_exact_in_the_span():
    x, y, w, b, rng = _affine_data()
    assert np.allclose(transfer_refit.ridge_predict(x, y, x, 0.0), y)
    # A point in the affine hull of the fitting rows is predicted as the affine map gives it.
    mix = rng.dirichlet(np.ones(len(x)))[None]
    assert np.allclose(transfer_refit.ridge_predict(x, y, mix @ x, 0.0), mix @ x @ w + b)
    # Another direction (orthogonal to the centred rows) adds nothing: minimum-norm solution.
    xc = x - x.mean(0)
    orth = rng.normal(size=(1, x.shape[1]))
    orth -= orth @ np.linalg.pinv(xc) @ xc
    at_mean = transfer_refit.ridge_predict(x, y, x.mean(0, keepdims=True), 0.0)
    assert np.allclose(transfer_refit.ridge_predict(x, y, x.mean(0) + orth, 0.0), at_mean)


def test_strong_ridge_gives_the_mean_of_the_targets():
    x, y, *_ = _affine_data()
    weak = transfer_refit.ridge_predict(x, y, x, 0.1)
    strong = transfer_refit.ridge_predict(x, y, x, 1e6)
    assert np.allclose(strong, y.mean(0), atol=1e-4)
    # In between: shrunk towards the mean, more with a larger penalty.
    assert 0 < np.abs(weak - y).max() and np.abs(weak - y).max() < np.abs(strong - y).max()


def test_refit_weights_keeps_a_predicts_b_and_holds_each_a_out():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(8, 30)), rng.normal(size=(8, 3))  # unrelated targets
    mask_classes, box_only = [0, 2, 3, 5, 6], [1, 4, 7]
    out = transfer_refit.refit_weights(x, y + 0.0, mask_classes, box_only, 0.0)
    fit = transfer_refit.ridge_predict(x[mask_classes], y[mask_classes], x[box_only], 0.0)
    assert np.allclose(out[box_only], fit)
    for i, c in enumerate(mask_classes):
        rest = [a for a in mask_classes if a != c]
        expected = transfer_refit.ridge_predict(x[rest], y[rest], x[[c]], 0.0)[0]
        assert np.allclose(out[c], expected)
        # Held out, class c is not predicted from itself: not its own weight in general.
        assert not np.allclose(out[c], y[c])


def test_principal_components_are_centred_and_ordered():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 4)) * np.array([10.0, 3.0, 1.0, 0.1]) + 5.0
    pcs = transfer_refit.principal_components(x, 2)
    assert pcs.shape == (10, 2) and np.allclose(pcs.mean(0), 0)
    assert pcs[:, 0].var() > pcs[:, 1].var() > 0


def test_fixed_mask_weights_replace_every_class_and_are_restored():
    head = _transfer_head(mlp=False).eval()
    predictor = box_predictor()
    features = head.layers(_pooled(K))
    classes = torch.arange(K)
    weights = torch.randn(K, features.shape[1])
    with torch.no_grad():
        before = head.mask_logits(features, classes, predictor)
        with transfer_refit.fixed_mask_weights(head, weights):
            fixed = head.mask_logits(features, classes, predictor)
        after = head.mask_logits(features, classes, predictor)
    expected = torch.einsum("rchw,rc->rhw", features, weights)[:, None]
    assert torch.allclose(fixed, expected, atol=1e-5)
    assert torch.equal(after, before) and "per_roi_mask_weights" not in vars(head)


def test_trained_weights_are_t_of_the_detector_weights():
    head = _transfer_head(mlp=False).eval()

    class Model(torch.nn.Module):
        pass

    model = Model()
    model.roi_heads = torch.nn.Module()
    model.roi_heads.mask_head, model.roi_heads.box_predictor = head, box_predictor()
    x, y = transfer_refit.trained_weights(model)
    assert x.shape[0] == y.shape[0] == K
    with torch.no_grad():
        assert np.allclose(
            y, head.transfer(torch.from_numpy(x).float()).double().numpy(), atol=1e-5
        )
    with pytest.raises(ValueError, match="transfer head"):
        transfer_refit.trained_weights(
            type("M", (), {"roi_heads": type("R", (), {"mask_head": _transfer_head("embedding")})})
        )
