"""The A/B evaluator against pycocotools' COCOeval run directly with ``params.catIds`` restricted.

The ground truth is a tiny COCO json (5 images, categories 1, 3, 7, 9; A = {1, 7}) with
pentagon polygons of small, medium and large areas. The detections mix true positives,
localization errors, duplicates, a wrong class, misses and false positives; the reference
detection json is built here from the same boxes and masks, independently of detectron2.
"""

import contextlib
import io
import itertools
import json
import logging
import math

import maskx_d2  # noqa: F401  (makes detectron2 importable first)

# isort: split
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskx_d2 import CompiledOpsUnavailable, compiled_ops_available
from maskx_d2.evaluation import ab_evaluator
from maskx_d2.evaluation.ab_evaluator import (
    METRICS,
    PartiallySupervisedCOCOEvaluator,
    build_partially_supervised_evaluator,
)

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


def _shift(image_id, index, dx, dy, category_id=None):
    """A box (x0, y0, x1, y1) of ground truth ``index`` of the image, moved by (dx, dy)."""
    c, x, y, w, h = GT[image_id][index]
    return (category_id or c, (x + dx, y + dy, x + w + dx, y + h + dy))


# image id -> detections (category id, xyxy box, score).
DETECTIONS = {
    1: [
        (*_shift(1, 0, 1, 1), 0.9),  # TP, small
        (*_shift(1, 1, 15, 0), 0.8),  # localization error, IoU 0.6
        (*_shift(1, 2, 2, -2), 0.95),  # TP, large
        (9, (150, 5, 190, 35), 0.7),  # FP
        (*_shift(1, 2, 5, 5), 0.5),  # duplicate
    ],
    2: [
        (*_shift(2, 0, 3, 3), 0.85),  # TP, large
        (*_shift(2, 2, 0, 1), 0.6),  # TP, medium (the small one of class 9 is missed)
        (*_shift(2, 1, 0, 0, category_id=3), 0.75),  # wrong class
        (1, (60, 130, 80, 150), 0.3),  # FP
    ],
    3: [
        (*_shift(3, 0, 1, 0), 0.65),  # TP, small
        (*_shift(3, 1, 10, 10), 0.92),  # localization error, IoU 0.43
        (*_shift(3, 2, -2, 2), 0.55),  # TP, medium
        (*_shift(3, 1, 1, 0), 0.4),  # TP after a higher-scored miss
    ],
    4: [
        (*_shift(4, 0, 4, 4), 0.88),  # TP, large
        (*_shift(4, 1, 3, 3), 0.7),  # localization error, IoU 0.57
    ],
    5: [(3, (20, 20, 60, 50), 0.45), (7, (100, 80, 150, 140), 0.35)],  # FPs, image without GT
}


def _pentagon(x0, y0, x1, y1):
    """A polygon inside the box whose mask differs from the box (one corner cut off)."""
    w, h = x1 - x0, y1 - y0
    return [x0, y0, x1, y0, x1, y0 + 0.6 * h, x0 + 0.5 * w, y1, x0, y1]


def _rle(polygon):
    return mask_util.merge(mask_util.frPyObjects([polygon], H, W))


def _write_gt(path, keep_categories=CATEGORY_IDS):
    annotations = []
    for image_id, objects in GT.items():
        for c, x, y, w, h in objects:
            if c not in keep_categories:
                continue
            polygon = _pentagon(x, y, x + w, y + h)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": c,
                    "segmentation": [polygon],
                    "area": float(mask_util.area(_rle(polygon))),
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


_names = itertools.count()


@pytest.fixture
def register(tmp_path):
    """Register metadata for a gt json; returns a function(json_file, **metadata) -> name."""
    names = []

    def _register(json_file, **metadata):
        name = f"maskx_test_eval_{next(_names)}"
        MetadataCatalog.get(name).set(
            json_file=json_file,
            thing_classes=[f"class{c}" for c in CATEGORY_IDS],
            thing_dataset_id_to_contiguous_id={c: i for i, c in enumerate(CATEGORY_IDS)},
            **metadata,
        )
        names.append(name)
        return name

    yield _register
    for name in names:
        MetadataCatalog.remove(name)


@pytest.fixture
def gt_json(tmp_path):
    return _write_gt(tmp_path / "gt.json")


def _instances(image_id, with_masks=True):
    dets = DETECTIONS[image_id]
    inst = Instances((H, W))
    inst.pred_boxes = Boxes(torch.tensor([d[1] for d in dets], dtype=torch.float32).view(-1, 4))
    inst.scores = torch.tensor([d[2] for d in dets], dtype=torch.float32)
    inst.pred_classes = torch.tensor([CATEGORY_IDS.index(d[0]) for d in dets], dtype=torch.int64)
    if with_masks:
        masks = [mask_util.decode(_rle(_pentagon(*d[1]))).astype(bool) for d in dets]
        inst.pred_masks = torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, H, W)
    return inst


def _run(evaluator, with_masks=True, image_ids=tuple(GT)):
    evaluator.reset()
    for image_id in image_ids:
        inputs = [{"image_id": image_id, "height": H, "width": W}]
        evaluator.process(inputs, [{"instances": _instances(image_id, with_masks)}])
    return evaluator.evaluate()


def _reference(gt_file, iou_type, cat_ids):
    """pycocotools on a detection json built from DETECTIONS, restricted to ``cat_ids``."""
    results = []
    for image_id, dets in DETECTIONS.items():
        for c, (x0, y0, x1, y1), score in dets:
            result = {"image_id": image_id, "category_id": c, "score": score}
            if iou_type == "bbox":
                result["bbox"] = [x0, y0, x1 - x0, y1 - y0]
            else:  # no bbox, so that the mask area decides small/medium/large
                rle = mask_util.encode(
                    np.asfortranarray(mask_util.decode(_rle(_pentagon(x0, y0, x1, y1))))
                )
                result["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            results.append(result)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_file)
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        coco_eval.params.catIds = cat_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {m: s * 100 if s >= 0 else float("nan") for m, s in zip(METRICS, coco_eval.stats)}


def _assert_same(actual, expected):
    for metric in METRICS:
        a, e = actual[metric], expected[metric]
        assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e, abs=1e-9), (metric, a, e)


def test_all_a_b_match_pycocotools_with_restricted_cat_ids(gt_json, register, caplog):
    name = register(gt_json, evaluator_type="coco_partial", mask_category_ids=SET_A)
    evaluator = PartiallySupervisedCOCOEvaluator(name, output_dir=None)
    with caplog.at_level(logging.INFO, logger="maskx_d2.evaluation"):
        results = _run(evaluator)

    assert set(results) == {"bbox", "segm", "bbox_A", "segm_A", "bbox_B", "segm_B"}
    for task in ("bbox", "segm"):
        for key, cat_ids in ((task, CATEGORY_IDS), (f"{task}_A", SET_A), (f"{task}_B", SET_B)):
            _assert_same(results[key], _reference(gt_json, task, cat_ids))
        # Per-category AP as detectron2 reports it, only for the overall task.
        assert {f"AP-class{c}" for c in CATEGORY_IDS} <= set(results[task])
        assert set(results[f"{task}_A"]) == set(METRICS)
        # The data is built so that the groups differ; otherwise the test would prove little.
        assert results[f"{task}_A"]["AP"] != pytest.approx(results[f"{task}_B"]["AP"])
        assert not math.isnan(results[f"{task}_B"]["APl"])  # cat 3 has no large GT, cat 9 has

    table = evaluator.summary_table
    assert table in caplog.text
    assert table == ab_evaluator.format_ab_table(results)
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["task", "classes", *METRICS]
    rows = [[c.strip() for c in line.strip("|").split("|")][:3] for line in lines[2:]]
    expected_rows = [[t, g] for t in ("bbox", "segm") for g in ("all", "A", "B")]
    assert [r[:2] for r in rows] == expected_rows
    assert float(rows[5][2]) == pytest.approx(results["segm_B"]["AP"], abs=1e-3)


def test_model_without_masks_reports_box_tasks_only(gt_json, register):
    name = register(gt_json, evaluator_type="coco_partial", mask_category_ids=SET_A)
    results = _run(PartiallySupervisedCOCOEvaluator(name), with_masks=False)
    assert set(results) == {"bbox", "bbox_A", "bbox_B"}
    _assert_same(results["bbox_B"], _reference(gt_json, "bbox", SET_B))


def test_group_without_ground_truth_is_nan(tmp_path, register, caplog):
    gt_file = _write_gt(tmp_path / "gt_only_a.json", keep_categories=SET_A)
    name = register(gt_file, evaluator_type="coco_partial", mask_category_ids=SET_A)
    with caplog.at_level(logging.WARNING, logger="maskx_d2.evaluation"):
        evaluator = PartiallySupervisedCOCOEvaluator(name)
    assert "Set B" in caplog.text and "no ground-truth" in caplog.text

    results = _run(evaluator)
    for task in ("bbox", "segm"):
        assert all(math.isnan(v) for v in results[f"{task}_B"].values())
        _assert_same(results[f"{task}_A"], _reference(gt_file, task, SET_A))
        _assert_same(results[f"{task}_B"], _reference(gt_file, task, SET_B))
        assert not math.isnan(results[f"{task}_A"]["AP"])


def test_no_predictions(gt_json, register, caplog):
    name = register(gt_json, evaluator_type="coco_partial", mask_category_ids=SET_A)
    evaluator = PartiallySupervisedCOCOEvaluator(name)
    # No image processed at all: detectron2 warns and returns nothing.
    evaluator.reset()
    with caplog.at_level(logging.WARNING):
        assert evaluator.evaluate() == {}
    assert "Did not receive valid predictions" in caplog.text
    assert evaluator.summary_table == ""

    # Images processed, zero detections: every metric is NaN, A and B included.
    empty = Instances((H, W), pred_boxes=Boxes(torch.zeros(0, 4)), scores=torch.zeros(0))
    empty.pred_classes = torch.zeros(0, dtype=torch.int64)
    evaluator.reset()
    evaluator.process([{"image_id": 1, "height": H, "width": W}], [{"instances": empty}])
    results = evaluator.evaluate()
    assert set(results) == {"bbox", "bbox_A", "bbox_B"}
    assert all(math.isnan(v) for r in results.values() for v in r.values())
    assert "nan" in evaluator.summary_table


def test_without_ab_split_only_overall_results(gt_json, register):
    name = register(gt_json, evaluator_type="coco_partial")
    results = _run(build_partially_supervised_evaluator(name, output_dir=None))
    assert set(results) == {"bbox", "segm"}
    _assert_same(results["segm"], _reference(gt_json, "segm", CATEGORY_IDS))


def test_unknown_mask_category_id_is_an_error(gt_json, register):
    name = register(gt_json, evaluator_type="coco_partial", mask_category_ids=[1, 2])
    with pytest.raises(ValueError, match=r"\[2\]"):
        PartiallySupervisedCOCOEvaluator(name)


def test_builder_picks_evaluator_from_metadata(gt_json, register, tmp_path):
    partial = build_partially_supervised_evaluator(
        register(gt_json, evaluator_type="coco_partial", mask_category_ids=SET_A), str(tmp_path)
    )
    assert isinstance(partial, PartiallySupervisedCOCOEvaluator)

    plain = build_partially_supervised_evaluator(
        register(gt_json, evaluator_type="coco"), str(tmp_path), distributed=False
    )
    assert type(plain) is COCOEvaluator
    assert plain._use_fast_impl == compiled_ops_available()

    with pytest.raises(ValueError, match="sem_seg"):
        build_partially_supervised_evaluator(register(gt_json, evaluator_type="sem_seg"), None)


def test_without_compiled_ops_uses_pycocotools_and_refuses_fast_impl(
    gt_json, register, monkeypatch, caplog
):
    monkeypatch.setattr(ab_evaluator, "compiled_ops_available", lambda: False)
    name = register(gt_json, evaluator_type="coco_partial", mask_category_ids=SET_A)
    with caplog.at_level(logging.INFO, logger="maskx_d2.evaluation"):
        evaluator = PartiallySupervisedCOCOEvaluator(name)
    assert evaluator._use_fast_impl is False
    assert "official pycocotools COCOeval" in caplog.text

    with pytest.raises(CompiledOpsUnavailable, match="use_fast_impl=True"):
        PartiallySupervisedCOCOEvaluator(name, use_fast_impl=True)
    coco_name = register(gt_json, evaluator_type="coco")
    with pytest.raises(CompiledOpsUnavailable):
        build_partially_supervised_evaluator(coco_name, None, use_fast_impl=True)
    assert build_partially_supervised_evaluator(coco_name, None)._use_fast_impl is False
