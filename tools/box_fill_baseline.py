#!/usr/bin/env python
"""The GT-box metrics of the trivial mask head that fills each ground-truth box: the floor a mask
head must clear to have learnt anything about the object's outline.

    python tools/box_fill_baseline.py --dataset synthetic_shapes_v2_val \\
        synthetic_shapes_v2_shifted_val synthetic_shapes_v2_a12_val

Every ground-truth instance with a mask (crowd regions excepted) gets, as its prediction, the
mask that is 1 inside its box and 0 outside, scored exactly as the evaluator scores the masks a
model predicts on ground-truth boxes (``gt_box_mask_metrics`` of
:mod:`maskx_d2.evaluation.gt_box_metrics`): mean mask IoU over the instances of each class, then
over classes; COCO mask AP. A filled box satisfies BoxInst's projection loss exactly, and its
pairwise loss too when no pair of cells crosses the box's edge, so it is also what a
box-supervised head can collapse to.
Prints a markdown table.
"""

import argparse
import contextlib
import io
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

import maskx_d2  # noqa: F401  (registers the datasets)
from maskx_d2.data.mapper import has_usable_segmentation
from maskx_d2.evaluation.box_only_ground_truth import (
    box_only_annotation_ids,
    box_polygon,
    masks_with_box_only_ignored,
)
from maskx_d2.evaluation.category_summary import category_groups
from maskx_d2.evaluation.gt_box_metrics import gt_box_mask_metrics

__all__ = ["box_fill_results", "box_fill_metrics"]


def box_fill_results(coco: COCO) -> List[dict]:
    """One COCO segmentation result (RLE, score 1, ``ann_id``) per non-crowd annotation with a
    mask: its box ``[x, y, w, h]`` rasterized as a polygon, as COCO rasterizes masks."""
    results = []
    for ann in coco.dataset["annotations"]:
        if ann.get("iscrowd", 0) or not has_usable_segmentation(ann.get("segmentation")):
            continue
        image = coco.imgs[ann["image_id"]]
        polygon = box_polygon(ann["bbox"])
        rle = mask_util.merge(mask_util.frPyObjects(polygon, image["height"], image["width"]))
        rle["counts"] = rle["counts"].decode("ascii")
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "segmentation": rle,
                "score": 1.0,
                "ann_id": ann["id"],
            }
        )
    return results


def box_fill_metrics(coco: COCO, groups) -> Dict[str, Dict[str, float]]:
    """``{"segm_gtbox": {"mIoU", "AP", "AP50", "AP75", "mIoU-<class>", ...}, ...}`` of the
    filled boxes; ``groups``: {"A": category ids, "B": ...} (may be empty). Box-only
    annotations get no prediction and, as in the evaluator, are ignore regions for AP."""
    box_only = box_only_annotation_ids(coco)
    for_ap = masks_with_box_only_ignored(coco, box_only) if box_only else None
    return gt_box_mask_metrics(coco, box_fill_results(coco), groups, coco_gt_for_ap=for_ap)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", nargs="+", default=["synthetic_shapes_v2_val"])
    args = parser.parse_args(argv)
    print("| dataset | GT-box mIoU all | GT-box mIoU A | GT-box mIoU B | GT-box mask AP B |")
    print("|---|---|---|---|---|")
    for name in args.dataset:
        DatasetCatalog.get(name)  # generates a synthetic set on first use
        metadata = MetadataCatalog.get(name)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(metadata.json_file)
        out = box_fill_metrics(coco, category_groups(name, metadata, coco, warn=False))
        cells = [out["segm_gtbox"]["mIoU"]]
        cells += [out.get(f"segm_gtbox_{g}", {}).get("mIoU", float("nan")) for g in "AB"]
        cells.append(out.get("segm_gtbox_B", {}).get("AP", float("nan")))
        print(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
