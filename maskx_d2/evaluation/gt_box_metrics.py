"""Mask quality on ground-truth boxes: mean mask IoU and COCO mask AP, on all classes, A and B.

Input: one COCO-format segmentation result per ground-truth instance with a mask, predicted from
that instance's box and class, carrying the instance's annotation id (``ann_id``) and score 1
(:mod:`.gt_box_inference` makes them). Detection plays no part: every instance has exactly one
prediction, of its own class, in its own box.

- ``mIoU``: the IoU of each prediction with its own ground-truth mask (at the original image
  resolution), averaged over the instances of each category, then over categories (as AP is);
- ``AP``, ``AP50``, ``AP75``: pycocotools' mask AP of these predictions against the same ground
  truth as the standard mask AP (crowd regions, and box-only instances, are ignore regions);
- ``mIoU-<category name>``: each category's mean IoU, in the dicts of all classes and of its
  group, named as detectron2 names per-category AP (``AP-<name>``), so that its result printing
  and ``metrics.json`` treat them alike. With a handful of box-only classes the mean over B hides
  whether a head wins on most classes or fails on one; these show which.

All numbers are in percent; a group without ground truth gets NaN.
"""

import contextlib
import copy
import io
from collections import defaultdict
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .category_summary import summarize_categories

__all__ = ["GT_BOX_FIELDS", "gt_box_mask_metrics", "mask_ious_by_category"]

GT_BOX_FIELDS = ("mIoU", "AP", "AP50", "AP75")


def mask_ious_by_category(coco_gt: COCO, results: Sequence[dict]) -> Dict[int, List[float]]:
    """{dataset category id: [IoU of each result with its ground truth ``ann_id``]}."""
    ious = defaultdict(list)
    for r in results:
        ann = coco_gt.anns[r["ann_id"]]
        gt = coco_gt.annToRLE(ann)
        iou = mask_util.iou([r["segmentation"]], [gt], [0])
        ious[ann["category_id"]].append(float(np.asarray(iou).reshape(-1)[0]))
    return dict(ious)


def _coco_eval(coco_gt: COCO, results: Sequence[dict], img_ids) -> Optional[COCOeval]:
    if not results:
        return None
    # loadRes adds fields and derives the box from the mask: give it copies without a box.
    detections = [{k: v for k, v in copy.copy(r).items() if k != "bbox"} for r in results]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_dt = coco_gt.loadRes(detections)
        coco_eval = COCOeval(coco_gt, coco_dt, "segm")
        if img_ids is not None:
            coco_eval.params.imgIds = sorted(img_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
    return coco_eval


def gt_box_mask_metrics(
    coco_gt: COCO,
    results: Sequence[dict],
    groups: Mapping[str, Sequence[int]],
    *,
    coco_gt_for_ap: Optional[COCO] = None,
    img_ids=None,
) -> Dict[str, Dict[str, float]]:
    """GT-box mask metrics for all classes and each group.

    Args:
        coco_gt: the evaluation ground truth (``ann_id`` of each result is one of its
            annotations, with a mask).
        results: COCO segmentation results with ``image_id``, dataset ``category_id``,
            ``segmentation`` (RLE), ``score`` and ``ann_id``.
        groups: {"A": category ids, "B": ...}; may be empty.
        coco_gt_for_ap: the ground truth for AP when it differs from ``coco_gt`` (box-only
            instances turned into ignore regions); default ``coco_gt``.
        img_ids: restrict AP to these images (default: every image of ``coco_gt``).
    Returns:
        ``{"segm_gtbox": {...}, "segm_gtbox_A": {...}, ...}`` with :data:`GT_BOX_FIELDS` and
        ``mIoU-<name>`` of each category of the group that has ground truth.
    """
    ious = mask_ious_by_category(coco_gt, results)
    names = {c["id"]: c["name"] for c in coco_gt.loadCats(coco_gt.getCatIds())}
    coco_eval = _coco_eval(coco_gt_for_ap or coco_gt, results, img_ids)
    all_ids = sorted(coco_gt.getCatIds())
    out = {}
    for name, cat_ids in [("segm_gtbox", all_ids)] + [
        (f"segm_gtbox_{g}", ids) for g, ids in groups.items()
    ]:
        per_category = {c: float(np.mean(ious[c])) for c in cat_ids if ious.get(c)}
        ap = (
            summarize_categories(coco_eval, cat_ids)
            if coco_eval is not None
            else {f: float("nan") for f in GT_BOX_FIELDS}
        )
        mean = np.mean(list(per_category.values())) * 100 if per_category else float("nan")
        out[name] = {
            "mIoU": float(mean),
            **{f: ap[f] for f in ("AP", "AP50", "AP75")},
            **{f"mIoU-{names[c]}": iou * 100 for c, iou in per_category.items()},
        }
    return out
