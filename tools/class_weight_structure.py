#!/usr/bin/env python
"""What the detector's class weights hold, and what weight transfer makes of them, on the
synthetic shapes v2 (16 classes = 4 shapes x 4 colours): does a box-only class's transferred
mask weight know its colour, its shape, or neither?

    python tools/class_weight_structure.py --run transfer-mlp=output/table1c_v2/seed42/transfer-mlp

Each ``--run NAME=DIR`` is a train_net.py output folder of a model with the "transfer"
predictor (``config.yaml`` and ``model_final.pth``). For each it prints:

- the share of the variance of the box classifier's class rows (K, D) explained by the class's
  shape alone, its colour alone, and shape + colour additively (``w = u_shape + v_colour``,
  least squares over the 16 classes);
- the mean cosine similarity between each class of B and the classes of A that share its
  colour, that share its shape, and that share neither: for the classifier's rows and for the
  transferred mask weights ``T(w)`` (the (C,) 1x1-conv weight each class's masks are predicted
  with). Stacks pair two objects of one shape in two colours, so a B class whose ``T(w)`` is
  closest to same-shape A classes has lost the cue that decides its stacks;
- how well A's classifier rows predict B's under the additive model (mean cosine), with the
  run's split and with the "band" split (:func:`band_split`);
- the same two measures for the transferred mask weights: the share of their variance that
  shape + colour explain, and how well A's ``T(w)`` predict B's additively. They say whether T
  keeps the compositional structure of its input, which is what lets a B class's mask weight be
  assembled from what A's classes taught.
"""

import argparse
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model

from maskx_d2 import add_maskx_config
from maskx_d2.checkpoint import MaskXCheckpointer
from maskx_d2.data.datasets.synthetic import CLASS_PARTS, SYNTHETIC_CLASSES

__all__ = ["additive_prediction_cosine", "explained_variance", "mean_cosine_by_relation"]


def _indicators(labels: Sequence[str]) -> np.ndarray:
    """(K, L) one-hot rows of ``labels`` (L distinct values, in first-seen order)."""
    values = list(dict.fromkeys(labels))
    out = np.zeros((len(labels), len(values)))
    out[np.arange(len(labels)), [values.index(v) for v in labels]] = 1.0
    return out


def explained_variance(weights: np.ndarray, *factors: Sequence[str]) -> float:
    """Share of the variance of ``weights`` (K, D) (around their mean row) that a least-squares
    fit on the one-hot ``factors`` (each K labels; several = additive) explains, in [0, 1]."""
    centred = weights - weights.mean(0, keepdims=True)
    design = np.concatenate([_indicators(f) for f in factors], axis=1)
    coef, *_ = np.linalg.lstsq(design, centred, rcond=None)
    residual = centred - design @ coef
    return float(1.0 - (residual**2).sum() / (centred**2).sum())


def mean_cosine_by_relation(
    weights: np.ndarray, parts: Sequence[Tuple[str, str]], set_a: Sequence[int]
) -> Dict[str, float]:
    """Mean cosine similarity of the rows of B (every index not in ``set_a``) with the rows of A
    that share their colour, their shape, or neither.

    Args:
        weights: (K, D) one row per class.
        parts: K (shape, colour) pairs.
        set_a: indices of the classes of A.
    """
    unit = weights / np.linalg.norm(weights, axis=1, keepdims=True).clip(min=1e-12)
    cos = unit @ unit.T
    groups: Dict[str, List[float]] = {"same colour": [], "same shape": [], "neither": []}
    for b in range(len(parts)):
        if b in set_a:
            continue
        for a in set_a:
            same_shape, same_colour = parts[a][0] == parts[b][0], parts[a][1] == parts[b][1]
            key = "same colour" if same_colour else "same shape" if same_shape else "neither"
            groups[key].append(float(cos[b, a]))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in groups.items()}


def additive_prediction_cosine(
    weights: np.ndarray, parts: Sequence[Tuple[str, str]], set_a: Sequence[int]
) -> float:
    """Mean cosine similarity between each B row of ``weights`` (K, D) and its additive
    prediction from A alone: ``u_shape + v_colour`` fitted on A's rows by least squares (the
    minimum-norm fit where A leaves it undetermined). How far A's rows determine B's when the
    weights are compositional."""
    shapes = _indicators([p[0] for p in parts])
    colours = _indicators([p[1] for p in parts])
    design = np.concatenate([shapes, colours], axis=1)
    set_b = [k for k in range(len(parts)) if k not in set_a]
    coef, *_ = np.linalg.lstsq(design[list(set_a)], weights[list(set_a)], rcond=None)
    predicted, actual = design[set_b] @ coef, weights[set_b]
    cos = (predicted * actual).sum(1) / (
        np.linalg.norm(predicted, axis=1) * np.linalg.norm(actual, axis=1)
    ).clip(min=1e-12)
    return float(cos.mean())


def band_split(parts: Sequence[Tuple[str, str]]) -> List[int]:
    """Indices of A in the "band" split: colour index minus shape index in {0, 1} mod the number
    of colours (indices in first-seen order). Unlike the chess board, its colour-shape graph is
    connected."""
    shapes = list(dict.fromkeys(p[0] for p in parts))
    colours = list(dict.fromkeys(p[1] for p in parts))
    return [
        k
        for k, (s, c) in enumerate(parts)
        if (colours.index(c) - shapes.index(s)) % len(colours) in (0, 1)
    ]


def class_weights(output_dir: str) -> Tuple[np.ndarray, np.ndarray, MetadataCatalog]:
    """(K, D) classifier rows, (K, C) transferred mask weights, and the test set's metadata."""
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(os.path.join(output_dir, "config.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    if cfg.MODEL.MASKX.MASK_PREDICTOR != "transfer":
        raise ValueError(
            f"{output_dir}: MODEL.MASKX.MASK_PREDICTOR is {cfg.MODEL.MASKX.MASK_PREDICTOR!r}; "
            "only a 'transfer' model has transferred mask weights"
        )
    model = build_model(cfg).eval()
    MaskXCheckpointer(model).load(os.path.join(output_dir, "model_final.pth"))
    heads = model.roi_heads
    num_classes = heads.box_predictor.num_classes
    with torch.no_grad():
        mask_weights, _ = heads.mask_head.per_roi_mask_weights(
            torch.arange(num_classes), heads.box_predictor
        )
    det = heads.box_predictor.cls_score.weight[:num_classes].detach()
    return det.numpy(), mask_weights.numpy(), MetadataCatalog.get(cfg.DATASETS.TEST[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=DIR")
    args = parser.parse_args()
    rows = []
    for spec in args.run:
        name, _, output_dir = spec.partition("=")
        det, transferred, meta = class_weights(output_dir)
        if list(meta.thing_classes) != SYNTHETIC_CLASSES:
            raise ValueError(
                f"{output_dir}: its test set's classes are not the synthetic shapes v2's "
                f"({SYNTHETIC_CLASSES}), so they have no (shape, colour) parts"
            )
        parts = CLASS_PARTS  # (shape, colour) of each class, in contiguous id order
        ids = meta.thing_dataset_id_to_contiguous_id
        set_a = sorted(ids[i] for i in meta.mask_category_ids)
        shapes, colours = [p[0] for p in parts], [p[1] for p in parts]
        share = [explained_variance(det, f) for f in (shapes, colours)]
        share.append(explained_variance(det, shapes, colours))
        cos_det = mean_cosine_by_relation(det, parts, set_a)
        cos_t = mean_cosine_by_relation(transferred, parts, set_a)
        cells = [f"{100 * s:.0f}%" for s in share]
        cells += [f"{c[k]:.2f}" for c in (cos_det, cos_t) for k in cos_det]
        cells += [
            f"{additive_prediction_cosine(det, parts, a):.2f}" for a in (set_a, band_split(parts))
        ]
        # Is T's output as compositional as its input? A 1-layer (affine) T keeps w's additive
        # structure exactly; a LeakyReLU between two layers need not.
        cells.append(f"{100 * explained_variance(transferred, shapes, colours):.0f}%")
        cells.append(f"{additive_prediction_cosine(transferred, parts, set_a):.2f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    header = (
        "| run | cls rows: shape | colour | shape + colour | "
        "cos B-A cls rows: same colour | same shape | neither | "
        "cos B-A T(w): same colour | same shape | neither | "
        "cls rows of B predicted from A: this split | band split | "
        "T(w): shape + colour | T(w) of B predicted from A's T(w) |"
    )
    print("\n".join([header, "|---" * (header.count("|") - 1) + "|", *rows]))


if __name__ == "__main__":
    main()
