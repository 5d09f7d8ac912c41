#!/usr/bin/env python
"""Mean mask IoU on ground-truth boxes, per set (A/B) and per role in the scene, of trained
models on a synthetic shapes v2 evaluation set: which objects does each head get wrong?

    python tools/gt_box_breakdown.py --run transfer-mlp=output/synthetic/maskx_mlp \\
        --run class-agnostic=output/table1c_v2/seed42/class-agnostic

Each ``--run NAME=DIR`` is a train_net.py output folder: its ``config.yaml`` and
``model_final.pth`` are used.

Roles (annotation field ``synthetic_role``): ``single`` (alone), ``front`` and ``back`` (the
two objects of a stack). Each model is evaluated exactly as train_net.py does (GT-box
inference, the A/B evaluator); the per-instance IoUs are regrouped here. Cells: mean IoU x 100
over the instances (count in the header). Prints a markdown table.
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


def instance_ious(output_dir, dataset, opts):
    """{ann_id: IoU} of the masks the model of ``output_dir`` predicts on the ground-truth boxes
    of ``dataset``."""
    cfg = run_config(output_dir, opts)
    model = Trainer.build_model(cfg)
    MaskXCheckpointer(model).load(os.path.join(output_dir, "model_final.pth"))
    model.eval()
    evaluator = Trainer.build_evaluator(cfg, dataset, output_folder=None)
    inference_on_dataset(GTBoxMaskModel(model), Trainer.build_test_loader(cfg, dataset), evaluator)
    coco = COCO(MetadataCatalog.get(dataset).json_file)
    ious = {}
    for r in evaluator.gt_box_predictions:
        gt = coco.annToRLE(coco.anns[r["ann_id"]])
        ious[r["ann_id"]] = float(np.asarray(mask_util.iou([r["segmentation"]], [gt], [0]))[0, 0])
    return ious


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=OUTPUT_DIR")
    parser.add_argument("--dataset", default="synthetic_shapes_v2_val")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    setup_logger(name="maskx_d2")
    DatasetCatalog.get(args.dataset)  # generates the data if needed, sets the metadata
    meta = MetadataCatalog.get(args.dataset)
    with open(meta.json_file) as f:
        annotations = {a["id"]: a for a in json.load(f)["annotations"]}
    mask_ids = set(meta.mask_category_ids)
    groups = [(s, role) for s in ("A", "B") for role in ROLES]
    counts = defaultdict(int)
    for a in annotations.values():
        counts[("A" if a["category_id"] in mask_ids else "B", a.get("synthetic_role"))] += 1
    header = " | ".join(f"{s} {role} ({counts[(s, role)]})" for s, role in groups)
    lines = [f"| model | {header} |", "|---|" + "---|" * len(groups)]
    for spec in args.run:
        name, output_dir = spec.split("=", 1)
        per_group = defaultdict(list)
        for ann_id, iou in instance_ious(output_dir, args.dataset, args.opts).items():
            a = annotations[ann_id]
            group = ("A" if a["category_id"] in mask_ids else "B", a.get("synthetic_role"))
            per_group[group].append(iou)
        cells = [f"{100 * np.mean(per_group[g]):.1f}" if per_group[g] else "-" for g in groups]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
