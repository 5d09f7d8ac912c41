#!/usr/bin/env python
"""How far a model's masks on ground-truth boxes are from "fill the box": per set (A/B), the
mean mask probability, the share of cells above 0.5 and the share of the RoI's border cells
above 0.5, on the exact boxes and on boxes padded by a fraction of their size on every side.

    python tools/mask_saturation.py --dataset synthetic_shapes_v2_shifted_val \\
        --run boxinst=output/table1c_v2/seed42/shifted-transfer-mlp-boxinst --padding 0 0.25

A head that learnt outlines gives its border cells low probabilities once the box is padded
(there is background all round); a head that answers "foreground" for the whole RoI keeps them
near 1. Each ``--run NAME=DIR`` is a train_net.py output folder (``config.yaml``,
``model_final.pth``). Reads the M x M mask probabilities before they are pasted into the image.
Prints a markdown table.
"""

import argparse
import os
import sys
from typing import Dict, List

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.utils.logger import setup_logger

from maskx_d2.evaluation.gt_box_inference import GTBoxTestMapper, gt_box_instances
from maskx_d2.modeling.mask_training_rois import pad_boxes
from maskx_d2.visualization import partial_supervision_classes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gt_box_breakdown import load_run_model  # noqa: E402


def saturation(probabilities: np.ndarray) -> Dict[str, float]:
    """(R, M, M) mask probabilities -> mean probability, share of cells above 0.5 and share of
    border cells (the outermost ring of the grid) above 0.5, in percent."""
    border = np.ones(probabilities.shape[1:], dtype=bool)
    border[1:-1, 1:-1] = False
    return {
        "mean": 100 * float(probabilities.mean()),
        "above": 100 * float((probabilities > 0.5).mean()),
        "border above": 100 * float((probabilities[:, border] > 0.5).mean()),
    }


@torch.no_grad()
def mask_probabilities(model, cfg, dataset: str, padding: float, limit: int):
    """{"A": (R_A, M, M), "B": (R_B, M, M)}: the model's mask probabilities on the ground-truth
    boxes (padded by ``padding`` of their size on every side) of the first ``limit`` images."""
    _, with_masks = partial_supervision_classes(dataset)
    mapper = GTBoxTestMapper(cfg, False)
    out: Dict[str, List[np.ndarray]] = {"A": [], "B": []}
    for record in DatasetCatalog.get(dataset)[:limit]:
        x = mapper(dict(record))
        images = model.preprocess_image([x])
        features = model.backbone(images.tensor)
        given = gt_box_instances(x, images.image_sizes[0]).to(model.device)
        if padding > 0:
            given.pred_boxes = pad_boxes(given.pred_boxes, padding, images.image_sizes[0])
        (result,) = model.roi_heads.forward_with_given_boxes(features, [given])
        for c, p in zip(result.pred_classes.tolist(), result.pred_masks[:, 0].cpu().numpy()):
            out["A" if c in with_masks else "B"].append(p)
    return {k: np.stack(v) if v else np.zeros((0, 1, 1)) for k, v in out.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=OUTPUT_DIR")
    parser.add_argument("--dataset", default="synthetic_shapes_v2_val")
    parser.add_argument("--padding", type=float, nargs="+", default=[0.0, 0.25])
    parser.add_argument("--images", type=int, default=40, help="first N images of the set")
    args = parser.parse_args(argv)
    setup_logger(name="maskx_d2")
    print("| model | boxes | set | masks | mean p | cells > 0.5 | border cells > 0.5 |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.run:
        name, _, output_dir = spec.partition("=")
        cfg, model = load_run_model(output_dir)
        for padding in args.padding:
            boxes = f"padded {padding:g}" if padding > 0 else "exact"
            probabilities = mask_probabilities(model, cfg, args.dataset, padding, args.images)
            for subset, p in probabilities.items():
                s = saturation(p)
                print(
                    f"| {name} | {boxes} | {subset} | {len(p)} | {s['mean']:.1f} | "
                    f"{s['above']:.1f} | {s['border above']:.1f} |"
                )


if __name__ == "__main__":
    main()
