"""Ground truth, detections and helpers shared by the evaluator tests.

The ground truth is a tiny COCO json (5 images, categories 1, 3, 7, 9; A = {1, 7}) with
pentagon polygons of small, medium and large areas. The detections mix true positives,
localization errors, duplicates, a wrong class, misses and false positives; the reference
(:func:`reference`) is pycocotools run directly on a detection json built here from the same
boxes and masks, independently of detectron2. The fixtures that register this ground truth are
in conftest.py (``register_eval_set``, ``eval_gt_json``).
"""

import contextlib
import io
import json
import math

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskx_d2.evaluation.ab_evaluator import METRICS

H, W = 160, 200
CATEGORY_IDS = [1, 3, 7, 9]
SET_A = [1, 7]
SET_B = [3, 9]

# image id -> ground truth (category id, x, y, w, h); sizes cover small/medium/large areas.
GT = {
    1: [(1, 10, 10, 20, 20), (3, 40, 30, 60, 50), (7, 90, 40, 100, 110)],
    2: [(1, 5, 5, 120, 120), (9, 130, 20, 30, 30), (9, 140, 100, 50, 40)],
    3: [(3, 20, 20, 25, 25), (7, 60, 60, 45, 45), (1, 100, 10, 80, 70)],
    4: [(9, 10, 10, 150, 120), (7, 160, 130, 20, 20)],
    5: [],
}


def shift(image_id, index, dx, dy, category_id=None):
    """A box (x0, y0, x1, y1) of ground truth ``index`` of the image, moved by (dx, dy)."""
    c, x, y, w, h = GT[image_id][index]
    return (category_id or c, (x + dx, y + dy, x + w + dx, y + h + dy))


# image id -> detections (category id, xyxy box, score).
DETECTIONS = {
    1: [
        (*shift(1, 0, 1, 1), 0.9),  # TP, small
        (*shift(1, 1, 15, 0), 0.8),  # localization error, IoU 0.6
        (*shift(1, 2, 2, -2), 0.95),  # TP, large
        (9, (150, 5, 190, 35), 0.7),  # FP
        (*shift(1, 2, 5, 5), 0.5),  # duplicate
    ],
    2: [
        (*shift(2, 0, 3, 3), 0.85),  # TP, large
        (*shift(2, 2, 0, 1), 0.6),  # TP, medium (the small one of class 9 is missed)
        (*shift(2, 1, 0, 0, category_id=3), 0.75),  # wrong class
        (1, (60, 130, 80, 150), 0.3),  # FP
    ],
    3: [
        (*shift(3, 0, 1, 0), 0.65),  # TP, small
        (*shift(3, 1, 10, 10), 0.92),  # localization error, IoU 0.43
        (*shift(3, 2, -2, 2), 0.55),  # TP, medium
        (*shift(3, 1, 1, 0), 0.4),  # TP after a higher-scored miss
    ],
    4: [
        (*shift(4, 0, 4, 4), 0.88),  # TP, large
        (*shift(4, 1, 3, 3), 0.7),  # localization error, IoU 0.57
    ],
    5: [(3, (20, 20, 60, 50), 0.45), (7, (100, 80, 150, 140), 0.35)],  # FPs, image without GT
}


def pentagon(x0, y0, x1, y1):
    """A polygon inside the box whose mask differs from the box (one corner cut off)."""
    w, h = x1 - x0, y1 - y0
    return [x0, y0, x1, y0, x1, y0 + 0.6 * h, x0 + 0.5 * w, y1, x0, y1]


def rle(polygon):
    return mask_util.merge(mask_util.frPyObjects([polygon], H, W))


def write_gt(path, keep_categories=CATEGORY_IDS):
    annotations = []
    for image_id, objects in GT.items():
        for c, x, y, w, h in objects:
            if c not in keep_categories:
                continue
            polygon = pentagon(x, y, x + w, y + h)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": c,
                    "segmentation": [polygon],
                    "area": float(mask_util.area(rle(polygon))),
                    "bbox": [x, y, w, h],
                    "iscrowd": 0,
                }
            )
    gt = {
        "images": [{"id": i, "width": W, "height": H, "file_name": f"{i}.jpg"} for i in sorted(GT)],
        "annotations": annotations,
        "categories": [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS],
    }
    path.write_text(json.dumps(gt))
    return str(path)


def instances(image_id, with_masks=True):
    dets = DETECTIONS[image_id]
    inst = Instances((H, W))
    inst.pred_boxes = Boxes(torch.tensor([d[1] for d in dets], dtype=torch.float32).view(-1, 4))
    inst.scores = torch.tensor([d[2] for d in dets], dtype=torch.float32)
    inst.pred_classes = torch.tensor([CATEGORY_IDS.index(d[0]) for d in dets], dtype=torch.int64)
    if with_masks:
        masks = [mask_util.decode(rle(pentagon(*d[1]))).astype(bool) for d in dets]
        inst.pred_masks = torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, H, W)
    return inst


def run(evaluator, with_masks=True, image_ids=tuple(GT)):
    evaluator.reset()
    for image_id in image_ids:
        inputs = [{"image_id": image_id, "height": H, "width": W}]
        evaluator.process(inputs, [{"instances": instances(image_id, with_masks)}])
    return evaluator.evaluate()


def reference(gt_file, iou_type, cat_ids):
    """pycocotools on a detection json built from DETECTIONS, restricted to ``cat_ids``."""
    results = []
    for image_id, dets in DETECTIONS.items():
        for c, (x0, y0, x1, y1), score in dets:
            result = {"image_id": image_id, "category_id": c, "score": score}
            if iou_type == "bbox":
                result["bbox"] = [x0, y0, x1 - x0, y1 - y0]
            else:  # no bbox, so that the mask area decides small/medium/large
                encoded = mask_util.encode(
                    np.asfortranarray(mask_util.decode(rle(pentagon(x0, y0, x1, y1))))
                )
                result["segmentation"] = {
                    "size": encoded["size"],
                    "counts": encoded["counts"].decode(),
                }
            results.append(result)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_file)
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        coco_eval.params.catIds = cat_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {m: s * 100 if s >= 0 else float("nan") for m, s in zip(METRICS, coco_eval.stats)}


def assert_same(actual, expected):
    for metric in METRICS:
        a, e = actual[metric], expected[metric]
        assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e, abs=1e-9), (metric, a, e)
