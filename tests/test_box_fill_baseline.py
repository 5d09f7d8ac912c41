"""tools/box_fill_baseline.py: the filled-box masks scored as the evaluator scores GT-box masks,
checked against IoUs computed here with numpy."""

import os
import sys

import numpy as np
import pytest
from coco_fixtures import box_polygon
from pycocotools.coco import COCO

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from box_fill_baseline import box_fill_metrics, box_fill_results  # noqa: E402


def _coco(annotations):
    coco = COCO()
    coco.dataset = {
        "images": [{"id": 1, "height": 40, "width": 50, "file_name": "a.png"}],
        "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "triangle"}],
        "annotations": annotations,
    }
    coco.createIndex()
    return coco


def _ann(ann_id, category, bbox, polygon, **extra):
    x, y, w, h = bbox
    return {
        "id": ann_id,
        "image_id": 1,
        "category_id": category,
        "bbox": bbox,
        "area": float(w * h),
        "iscrowd": 0,
        "segmentation": [polygon],
        **extra,
    }


def _box_mask(bbox, height=40, width=50):
    x, y, w, h = bbox
    mask = np.zeros((height, width), bool)
    mask[int(y) : int(y + h), int(x) : int(x + w)] = True
    return mask


def test_a_mask_that_fills_its_box_scores_100_and_a_triangle_its_area_ratio():
    square = _ann(1, 1, [10, 5, 20, 10], box_polygon(10, 5, 20, 10))
    triangle = _ann(2, 2, [5, 20, 30, 16], [5, 20, 35, 20, 5, 36])
    coco = _coco([square, triangle])
    out = box_fill_metrics(coco, {"A": [1], "B": [2]})
    assert out["segm_gtbox_A"]["mIoU"] == pytest.approx(100.0)
    gt = coco.annToMask(triangle).astype(bool)
    box = _box_mask(triangle["bbox"])
    expected = (gt & box).sum() / (gt | box).sum() * 100
    assert 40 < expected < 65  # a right triangle fills about half its box
    assert out["segm_gtbox_B"]["mIoU"] == pytest.approx(expected, abs=1.0)
    assert out["segm_gtbox"]["mIoU"] == pytest.approx((100 + expected) / 2, abs=0.5)


def test_crowd_and_box_only_annotations_get_no_prediction():
    square = _ann(1, 1, [10, 5, 20, 10], box_polygon(10, 5, 20, 10))
    crowd = _ann(2, 1, [0, 0, 5, 5], box_polygon(0, 0, 5, 5), iscrowd=1)
    box_only = {**_ann(3, 2, [20, 20, 10, 10], []), "segmentation": []}
    results = box_fill_results(_coco([square, crowd, box_only]))
    assert [r["ann_id"] for r in results] == [1]
    assert results[0]["score"] == 1.0 and results[0]["category_id"] == 1


def test_box_only_instances_do_not_count_as_missed_masks_in_ap():
    square = _ann(1, 1, [10, 5, 20, 10], box_polygon(10, 5, 20, 10))
    coco = _coco([square])
    alone = box_fill_metrics(coco, {"A": [1], "B": [2]})["segm_gtbox_A"]["AP"]
    box_only = {**_ann(2, 1, [35, 20, 10, 10], []), "segmentation": []}
    with_box_only = box_fill_metrics(_coco([square, box_only]), {"A": [1], "B": [2]})
    assert alone == pytest.approx(100.0)
    assert with_box_only["segm_gtbox_A"]["AP"] == pytest.approx(alone)
