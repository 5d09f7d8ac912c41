#!/usr/bin/env python
"""How many neighbouring pairs of mask cells BoxInst's pairwise loss keeps, by kind of pair, on a
dataset's ground-truth boxes: the loss only compares pairs whose colour similarity
exp(-||Lab_a - Lab_b|| / 2) reaches the threshold, so on noisy images it may see few of them.

    python tools/pairwise_pass_rates.py --dataset synthetic_shapes_v2_val --smoothing 1 3 5

For every instance of the first ``--images`` images: the RoI is its ground-truth box padded by
``--padding`` of its size on every side (as ``GT_BOX_PADDING``), read on an ``--side`` x
``--side`` grid exactly as the training step reads it (``roi_lab_colours``, with each
``--smoothing`` window). Kinds of pair, from the instance's own ground-truth mask on the grid:
object-object; background-background with both cells in the box; background-background across
the box's edge (the pairs that tie the box's background to the outside); object-background.
The loss wants the first three kept and the last one dropped. Prints a markdown table of the
share kept (percent) per kind and window; needs no model.
"""

import argparse
from typing import Dict, List

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.data import detection_utils as utils
from detectron2.structures import Boxes
from torchvision.ops import roi_align

import maskx_d2  # noqa: F401  (registers the datasets)
from maskx_d2.modeling.box_supervision import (
    box_projection_targets,
    neighbour_pairs,
    roi_lab_colours,
)
from maskx_d2.modeling.mask_training_rois import pad_boxes

KINDS = ("object-object", "background in box", "background across edge", "object-background")


def pair_counts(
    lab: torch.Tensor, on_object: torch.Tensor, in_box: torch.Tensor, threshold: float
) -> Dict[str, np.ndarray]:
    """Counts of (kept, all) pairs of each kind.

    Args:
        lab: (R, 3, M, M) Lab colours of the cells.
        on_object: (R, 1, M, M) bool, the cell is on the instance's mask.
        in_box: (R, 1, M, M) bool, the cell's centre is in the instance's ground-truth box.
        threshold: the pairwise loss's colour-similarity threshold.
    Returns:
        kind -> array([kept, total]).
    """
    counts = {k: np.zeros(2) for k in KINDS}
    for (lab_a, lab_b), (obj_a, obj_b), (in_a, in_b) in zip(
        neighbour_pairs(lab, 1), neighbour_pairs(on_object, 1), neighbour_pairs(in_box, 1)
    ):
        kept = torch.exp(-(lab_a - lab_b).norm(dim=1, keepdim=True) * 0.5) >= threshold
        background = ~obj_a & ~obj_b
        kinds = {
            "object-object": obj_a & obj_b,
            "background in box": background & in_a & in_b,
            "background across edge": background & (in_a ^ in_b),
            "object-background": obj_a ^ obj_b,
        }
        for kind, where in kinds.items():
            counts[kind] += [float((kept & where).sum()), float(where.sum())]
    return counts


def dataset_pass_rates(
    records: List[dict], smoothing: int, padding: float, side: int, threshold: float
) -> Dict[str, float]:
    """kind -> percent of the pairs of that kind the loss keeps, over detectron2 dataset dicts
    (every instance with a mask)."""
    totals = {k: np.zeros(2) for k in KINDS}
    for record in records:
        image = utils.read_image(record["file_name"], format="RGB")
        annotations = [a for a in record["annotations"] if a.get("segmentation")]
        if not annotations:
            continue
        size = image.shape[:2]
        instances = utils.annotations_to_instances(annotations, size, mask_format="bitmask")
        boxes = instances.gt_boxes
        rois = pad_boxes(Boxes(boxes.tensor.clone()), padding, size).tensor
        rgb = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        (lab,) = roi_lab_colours(rgb, [rois], side, smoothing)
        masks = instances.gt_masks.tensor.float()[:, None]  # (R, 1, H, W)
        # RoI i reads mask i: the batch index of each RoI is its instance's.
        indices = torch.arange(len(rois), dtype=torch.float32)[:, None]
        on_object = roi_align(
            masks, torch.cat([indices, rois], 1), side, 1.0, sampling_ratio=1, aligned=True
        )
        on_object = on_object > 0.5
        columns, rows = box_projection_targets(rois, boxes.tensor, side)
        in_box = (rows[:, :, None] * columns[:, None, :] > 0)[:, None]
        for kind, c in pair_counts(lab, on_object, in_box, threshold).items():
            totals[kind] += c
    return {k: 100 * kept / max(total, 1) for k, (kept, total) in totals.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic_shapes_v2_val")
    parser.add_argument("--smoothing", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--padding", type=float, default=0.25)
    parser.add_argument("--side", type=int, default=28, help="the mask grid's side")
    parser.add_argument("--images", type=int, default=60, help="first N images of the set")
    parser.add_argument("--threshold", type=float, default=0.3)
    args = parser.parse_args(argv)
    records = DatasetCatalog.get(args.dataset)[: args.images]
    print("| colour smoothing (pixels) | " + " | ".join(KINDS) + " |")
    print("|---" * (len(KINDS) + 1) + "|")
    for smoothing in args.smoothing:
        rates = dataset_pass_rates(records, smoothing, args.padding, args.side, args.threshold)
        print(f"| {smoothing} | " + " | ".join(f"{rates[k]:.1f}" for k in KINDS) + " |")


if __name__ == "__main__":
    main()
