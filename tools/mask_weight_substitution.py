#!/usr/bin/env python
"""Would another class's mask weights segment a box-only class better than its own? GT-box mean
mask IoU of every box-only class (B) under the mask weights its head gives it, and under the
weights of each class with masks (A) in turn.

    python tools/mask_weight_substitution.py --run output/table1c_v2/seed42/transfer-mlp

A transfer head needs two things: mask features that can segment B's objects, and a transfer
function T that places B's mask weights well among them. If the weights of some class of A
segment a class of B far better than T's weights for it, the features are there and T misplaces
the class. ``--run`` is a train_net.py output folder (its ``config.yaml`` and
``model_final.pth``); the head must have per-class mask weights (transfer or class-specific).
The MLP branch, when there is one, is kept as trained. One GT-box evaluation per class of A
(about 45 s each on 200 images on one CPU thread). Prints a markdown table: one row per class of
B, its IoU x 100 under its own weights, under each class of A's, and the best of those
(``--output`` writes it to a file as well: the evaluations print their own tables).
"""

import argparse
import contextlib
import os
import sys

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.logger import setup_logger

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gt_box_breakdown import load_run_model, model_instance_ious  # noqa: E402


@contextlib.contextmanager
def substituted_mask_weights(mask_head, donor_of: torch.Tensor):
    """Within the block, the RoIs of class k get the mask weights (and bias) that ``mask_head``
    gives class ``donor_of[k]``; ``donor_of``: (K,) int64 contiguous class indices. Everything
    else (features, MLP branch) is unchanged; the head's own method is restored on exit."""
    if getattr(mask_head, "mask_predictor", None) == "class_agnostic":
        raise ValueError("a class-agnostic mask head has one set of weights: nothing to swap")
    own = mask_head.per_roi_mask_weights

    def per_roi_mask_weights(classes, box_predictor):
        return own(donor_of.to(classes.device)[classes], box_predictor)

    mask_head.per_roi_mask_weights = per_roi_mask_weights  # instance attribute shadows the method
    try:
        yield
    finally:
        del mask_head.per_roi_mask_weights


def class_mean_ious(ious, category_of, classes):
    """{class id: mean IoU over its instances} for ``classes``; ``ious``: {ann_id: IoU},
    ``category_of``: {ann_id: class id}. Classes without an instance are left out."""
    per_class = {c: [] for c in classes}
    for ann_id, iou in ious.items():
        if category_of[ann_id] in per_class:
            per_class[category_of[ann_id]].append(iou)
    return {c: float(np.mean(v)) for c, v in per_class.items() if v}


def split_classes(dataset: str):
    """``(category_of, names, mask_classes, box_only)`` of a registered partially supervised
    set: {ann_id: contiguous class}, {contiguous class: name}, and the sorted contiguous
    classes with masks (A) and without (B). Loading generates the data if needed and sets the
    metadata."""
    dicts = DatasetCatalog.get(dataset)
    meta = MetadataCatalog.get(dataset)
    contiguous = meta.thing_dataset_id_to_contiguous_id
    category_of = {a["id"]: a["category_id"] for d in dicts for a in d["annotations"]}
    names = dict(enumerate(meta.thing_classes))
    mask_classes = sorted(contiguous[i] for i in meta.mask_category_ids)
    box_only = [c for c in names if c not in mask_classes]
    return category_of, names, mask_classes, box_only


def substitution_table(own, donors, names) -> str:
    """Markdown table; ``own``: {B class id: IoU}, ``donors``: [(A class id, {B class id: IoU})],
    ``names``: {class id: name}. Last row: the mean over B's classes of each column."""
    header = ["box-only class", "own weights"] + [names[d] for d, _ in donors] + ["best of A"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    columns = [own] + [ious for _, ious in donors]
    best = {c: max(ious[c] for _, ious in donors) for c in own}
    for c in own:
        cells = [f"{100 * col[c]:.1f}" for col in columns] + [f"{100 * best[c]:.1f}"]
        lines.append(f"| {names[c]} | " + " | ".join(cells) + " |")
    means = [f"{100 * np.mean(list(col.values())):.1f}" for col in columns + [best]]
    lines.append("| mean over B | " + " | ".join(means) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="train_net.py output folder")
    parser.add_argument(
        "--dataset", default=None, help="evaluation set (default: the run's DATASETS.TEST[0])"
    )
    parser.add_argument("--output", help="also write the table to this markdown file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides")
    args = parser.parse_args()
    setup_logger(name="maskx_d2")
    cfg, model = load_run_model(args.run, args.opts)
    dataset = args.dataset or cfg.DATASETS.TEST[0]
    category_of, names, mask_classes, box_only = split_classes(dataset)
    num_classes = len(names)
    head = model.roi_heads.mask_head
    own = class_mean_ious(model_instance_ious(cfg, model, dataset), category_of, box_only)
    donors = []
    for donor in mask_classes:
        donor_of = torch.arange(num_classes)
        donor_of[box_only] = donor
        with substituted_mask_weights(head, donor_of):
            ious = model_instance_ious(cfg, model, dataset)
        donors.append((donor, class_mean_ious(ious, category_of, box_only)))
    table = substitution_table(own, donors, names)
    print(table)
    if args.output:
        with open(args.output, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
