#!/usr/bin/env python
"""Would a ridge-regularised linear map from detector weights to mask weights, fitted after
training on the classes with masks (A) alone, give the box-only classes (B) better masks than the
trained T? And can the classes of A, each held out in turn, choose its strength?

    python tools/transfer_refit.py --run output/table1c_v2/seed42/transfer-mlp

For a trained transfer head: ``X`` (K, in) the detector weights T reads (its TRANSFER.INPUT),
``Y = T(X)`` (K, C) its mask weights. For each strength ``s`` a ridge regression from X to Y with
an unpenalised intercept is fitted on A's rows and predicts B's (``--strengths``; the penalty is
``s`` times the mean eigenvalue of the centred Gram matrix of the fitting rows, so ``s`` means the
same whatever the scale of the weights; ``s = 0`` is the minimum-norm interpolation, large ``s``
gives every class of B the mean of A's mask weights). The same fit without class i of A predicts
class i: its GT-box IoU with those weights, over A, is the held-out score that picks ``s`` with
A's masks only. Everything else (features, MLP branch) stays as trained; the head's T is not
changed on disk. One GT-box evaluation per strength, plus one of the trained T (about 45 s each on
200 images, one CPU thread). Prints a markdown table (``--output`` writes it to a file too).
"""

import argparse
import contextlib
import os
import sys

import numpy as np
import torch
from detectron2.utils.logger import setup_logger

from maskx_d2.modeling.weight_transfer import gather_detector_weights

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gt_box_breakdown import load_run_model, model_instance_ious  # noqa: E402
from mask_weight_substitution import class_mean_ious, split_classes  # noqa: E402

DEFAULT_STRENGTHS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


def ridge_predict(x_fit: np.ndarray, y_fit: np.ndarray, x_new: np.ndarray, strength: float):
    """Ridge regression with an unpenalised intercept, in its dual (kernel) form.

    Args:
        x_fit: (N, D) inputs, y_fit: (N, C) targets, x_new: (Q, D) inputs to predict.
        strength: the penalty in units of the mean eigenvalue of the centred Gram matrix
            ``Xc Xc^T / N`` (0: minimum-norm least squares).
    Returns:
        (Q, C) predictions ``mean(y) + (x_new - mean(x)) Xc^T (Xc Xc^T + lam I)^+ (Y - mean(y))``.
    """
    x_mean, y_mean = x_fit.mean(0, keepdims=True), y_fit.mean(0, keepdims=True)
    xc, yc = x_fit - x_mean, y_fit - y_mean
    gram = xc @ xc.T
    lam = strength * np.trace(gram) / len(x_fit)
    # pinv: with the intercept the centred Gram matrix is singular (rank <= N - 1).
    alpha = np.linalg.pinv(gram + lam * np.eye(len(x_fit)), hermitian=True) @ yc
    return y_mean + (x_new - x_mean) @ xc.T @ alpha


def principal_components(x: np.ndarray, k: int) -> np.ndarray:
    """(K, k): the rows of ``x`` (K, D) centred and projected on their top-k principal axes."""
    xc = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return xc @ vt[:k].T


def refit_weights(x: np.ndarray, y: np.ndarray, mask_classes, box_only, strength: float):
    """(K, C) mask weights: B's rows predicted from all of A's, each A row from the other A rows.

    ``x``: (K, D) detector weights, ``y``: (K, C) trained mask weights, class index lists."""
    out = y.copy()
    a = np.asarray(mask_classes)
    out[box_only] = ridge_predict(x[a], y[a], x[box_only], strength)
    for i, held_out in enumerate(a):
        rest = np.delete(a, i)
        out[held_out] = ridge_predict(x[rest], y[rest], x[[held_out]], strength)[0]
    return out


@contextlib.contextmanager
def fixed_mask_weights(mask_head, weights: torch.Tensor):
    """Within the block, the RoIs of class k get the bias-free mask weight ``weights[k]``
    ((K, C)); everything else is unchanged. The head's own method is restored on exit."""

    def per_roi_mask_weights(classes, box_predictor):
        return weights.to(classes.device)[classes], None

    mask_head.per_roi_mask_weights = per_roi_mask_weights  # instance attribute shadows the method
    try:
        yield
    finally:
        del mask_head.per_roi_mask_weights


def trained_weights(model):
    """(X (K, D), Y (K, C)) numpy: the detector weights T reads and T's mask weights."""
    head = model.roi_heads.mask_head
    if head.mask_predictor != "transfer" or head.transfer_input == "embedding":
        raise ValueError("--run must be a transfer head reading the detector's weights")
    num_classes = head.num_classes
    with torch.no_grad():
        x = gather_detector_weights(
            model.roi_heads.box_predictor, head.transfer_input, torch.arange(num_classes)
        )
        y = head.transfer(x)
    return x.double().numpy(), y.double().numpy()


def refit_table(rows) -> str:
    """Markdown; ``rows``: [(label, mean IoU over A, mean IoU over B)]; the A column of the
    trained T is its own (not held out)."""
    lines = ["| mask weights of B | A, held out (trained T: own) | B |", "|---|---|---|"]
    lines += [f"| {label} | {100 * a:.1f} | {100 * b:.1f} |" for label, a, b in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="train_net.py output folder")
    parser.add_argument(
        "--dataset", default=None, help="evaluation set (default: the run's DATASETS.TEST[0])"
    )
    parser.add_argument("--strengths", type=float, nargs="+", default=list(DEFAULT_STRENGTHS))
    parser.add_argument(
        "--components",
        type=int,
        nargs="*",
        default=[],
        help="also: least squares on the top-k principal components of all classes' detector "
        "weights, for each k",
    )
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args()
    setup_logger(name="maskx_d2")
    cfg, model = load_run_model(args.run)
    dataset = args.dataset or cfg.DATASETS.TEST[0]
    category_of, names, mask_classes, box_only = split_classes(dataset)

    def set_means(ious):
        """(mean over A's classes, mean over B's) of the per-class mean IoU."""
        per_class = class_mean_ious(ious, category_of, names)
        return (
            float(np.mean([per_class[c] for c in mask_classes if c in per_class])),
            float(np.mean([per_class[c] for c in box_only if c in per_class])),
        )

    x, y = trained_weights(model)
    refits = [
        (f"ridge, strength {s:g}", refit_weights(x, y, mask_classes, box_only, s))
        for s in args.strengths
    ] + [
        (
            f"{k} principal components",
            refit_weights(principal_components(x, k), y, mask_classes, box_only, 0.0),
        )
        for k in args.components
    ]
    head = model.roi_heads.mask_head
    rows = [("trained T", *set_means(model_instance_ious(cfg, model, dataset)))]
    for label, weights in refits:
        with fixed_mask_weights(head, torch.from_numpy(weights).float()):
            rows.append((label, *set_means(model_instance_ious(cfg, model, dataset))))
    best = max(rows[1:], key=lambda r: r[1])
    table = refit_table(rows) + f"\n\nChosen by A held out: {best[0]}: B {100 * best[2]:.1f}"
    print(table)
    if args.output:
        with open(args.output, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
