#!/usr/bin/env python
"""Mean mask IoU on ground-truth boxes, per set (A/B) and per role in the scene or per class, of
trained models on a synthetic shapes v2 evaluation set: which objects does each head get wrong?

    python tools/gt_box_breakdown.py --run transfer-mlp=output/synthetic/maskx_mlp \\
        --run class-agnostic=output/table1c_v2/seed42/class-agnostic

Each ``--run NAME=DIR`` is a train_net.py output folder: its ``config.yaml`` and
``model_final.pth`` are used.

Roles (annotation field ``synthetic_role``): ``single`` (alone), ``front`` and ``back`` (the
two objects of a stack). Each model is evaluated exactly as train_net.py does (GT-box
inference, the A/B evaluator); the per-instance IoUs are regrouped here. Cells: mean IoU x 100
over the instances (count in the header). ``--by class`` gives one row per class instead (for
the appearance-shifted split: ``--dataset synthetic_shapes_v2_shifted_val --by class``).
Prints a markdown table.
"""

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import inference_on_dataset
from detectron2.utils.logger import setup_logger
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from maskx_d2 import add_maskx_config
from maskx_d2.checkpoint import MaskXCheckpointer
from maskx_d2.evaluation.gt_box_inference import GTBoxMaskModel

# train_net.py lives at the repository root, one level up (its Trainer builds the model, the
# GT-box test loader and the evaluator exactly as training-end evaluation does).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from train_net import Trainer  # noqa: E402

ROLES = ("single", "front", "back")


def run_config(output_dir: str, opts):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(os.path.join(output_dir, "config.yaml"))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *opts])
    return cfg


def load_run_model(output_dir: str, opts=()):
    """(cfg, model in eval mode with the run's ``model_final.pth``) of a train_net.py output
    folder."""
    cfg = run_config(output_dir, opts)
    model = Trainer.build_model(cfg)
    MaskXCheckpointer(model).load(os.path.join(output_dir, "model_final.pth"))
    model.eval()
    return cfg, model


def instance_ious(output_dir, dataset, opts):
    """{ann_id: IoU} of the masks the model of ``output_dir`` predicts on the ground-truth boxes
    of ``dataset``."""
    cfg, model = load_run_model(output_dir, opts)
    return model_instance_ious(cfg, model, dataset)


def model_instance_ious(cfg, model, dataset):
    """{ann_id: IoU} of the masks ``model`` (in eval mode, built from ``cfg``) predicts on the
    ground-truth boxes of ``dataset``."""
    evaluator = Trainer.build_evaluator(cfg, dataset, output_folder=None)
    inference_on_dataset(GTBoxMaskModel(model), Trainer.build_test_loader(cfg, dataset), evaluator)
    coco = COCO(MetadataCatalog.get(dataset).json_file)
    ious = {}
    for r in evaluator.gt_box_predictions:
        gt = coco.annToRLE(coco.anns[r["ann_id"]])
        ious[r["ann_id"]] = float(np.asarray(mask_util.iou([r["segmentation"]], [gt], [0]))[0, 0])
    return ious


def set_of(category_id, mask_ids) -> str:
    """ "A" if the class has masks in the split, else "B"."""
    return "A" if category_id in mask_ids else "B"


def groups_of(annotations, mask_ids, category_names, by):
    """The groups of the table, in order, and the group of each annotation.

    ``by="role"``: (set, role in the scene); ``by="class"``: (set, class name), A's classes first.
    Returns ``(groups, group_of)`` with ``group_of(annotation) -> group``.
    """
    if by == "role":
        groups = [(s, role) for s in ("A", "B") for role in ROLES]
        return groups, lambda a: (set_of(a["category_id"], mask_ids), a.get("synthetic_role"))
    if by == "class":
        present = {a["category_id"] for a in annotations.values()}
        groups = sorted((set_of(c, mask_ids), category_names[c]) for c in present)
        return groups, lambda a: (
            set_of(a["category_id"], mask_ids),
            category_names[a["category_id"]],
        )
    raise ValueError(f"--by must be 'role' or 'class', got {by!r}")


def breakdown_table(per_model_ious, annotations, groups, group_of, by="role") -> str:
    """Markdown table of mean IoU x 100 per group.

    ``per_model_ious``: [(model name, {ann_id: IoU})]. By role the models are rows and the 6
    groups columns; by class (16 groups) it is transposed to stay readable.
    """
    counts = defaultdict(int)
    for a in annotations.values():
        counts[group_of(a)] += 1
    cells = {}
    for name, ious in per_model_ious:
        per_group = defaultdict(list)
        for ann_id, iou in ious.items():
            per_group[group_of(annotations[ann_id])].append(iou)
        for g in groups:
            cells[name, g] = f"{100 * np.mean(per_group[g]):.1f}" if per_group[g] else "-"
    names = [name for name, _ in per_model_ious]
    if by == "role":
        header = " | ".join(f"{s} {part} ({counts[(s, part)]})" for s, part in groups)
        lines = [f"| model | {header} |", "|---|" + "---|" * len(groups)]
        lines += [f"| {n} | " + " | ".join(cells[n, g] for g in groups) + " |" for n in names]
    else:
        lines = [f"| class | set | instances | {' | '.join(names)} |"]
        lines.append("|---|---|---|" + "---|" * len(names))
        for g in groups:
            row = " | ".join(cells[n, g] for n in names)
            lines.append(f"| {g[1]} | {g[0]} | {counts[g]} | {row} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=OUTPUT_DIR")
    parser.add_argument("--dataset", default="synthetic_shapes_v2_val")
    parser.add_argument(
        "--by", choices=("role", "class"), default="role", help="group instances by"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    setup_logger(name="maskx_d2")
    DatasetCatalog.get(args.dataset)  # generates the data if needed, sets the metadata
    meta = MetadataCatalog.get(args.dataset)
    with open(meta.json_file) as f:
        coco = json.load(f)
    annotations = {a["id"]: a for a in coco["annotations"]}
    category_names = {c["id"]: c["name"] for c in coco["categories"]}
    groups, group_of = groups_of(annotations, set(meta.mask_category_ids), category_names, args.by)
    per_model_ious = []
    for spec in args.run:
        name, output_dir = spec.split("=", 1)
        per_model_ious.append((name, instance_ious(output_dir, args.dataset, args.opts)))
    print(breakdown_table(per_model_ious, annotations, groups, group_of, args.by))


if __name__ == "__main__":
    main()
