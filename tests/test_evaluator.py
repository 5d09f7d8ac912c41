"""The A/B evaluator against pycocotools' COCOeval run directly with ``params.catIds`` restricted.

Ground truth, detections and the pycocotools reference: tests/evaluator_fixtures.py.
"""

import logging
import math

import pytest
import torch
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import Boxes, Instances
from evaluator_fixtures import (
    CATEGORY_IDS,
    METRICS,
    SET_A,
    SET_B,
    H,
    W,
    assert_same,
    reference,
    run,
    write_gt,
)

from maskx_d2 import CompiledOpsUnavailable, compiled_ops_available
from maskx_d2.evaluation import ab_evaluator
from maskx_d2.evaluation.ab_evaluator import (
    PartiallySupervisedCOCOEvaluator,
    build_partially_supervised_evaluator,
)


def test_all_a_b_match_pycocotools_with_restricted_cat_ids(eval_gt_json, register_eval_set, caplog):
    name = register_eval_set(eval_gt_json, evaluator_type="coco_partial", mask_category_ids=SET_A)
    evaluator = PartiallySupervisedCOCOEvaluator(name, output_dir=None)
    with caplog.at_level(logging.INFO, logger="maskx_d2.evaluation"):
        results = run(evaluator)

    assert set(results) == {"bbox", "segm", "bbox_A", "segm_A", "bbox_B", "segm_B"}
    for task in ("bbox", "segm"):
        for key, cat_ids in ((task, CATEGORY_IDS), (f"{task}_A", SET_A), (f"{task}_B", SET_B)):
            assert_same(results[key], reference(eval_gt_json, task, cat_ids))
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


def test_model_without_masks_reports_box_tasks_only(eval_gt_json, register_eval_set):
    name = register_eval_set(eval_gt_json, evaluator_type="coco_partial", mask_category_ids=SET_A)
    results = run(PartiallySupervisedCOCOEvaluator(name), with_masks=False)
    assert set(results) == {"bbox", "bbox_A", "bbox_B"}
    assert_same(results["bbox_B"], reference(eval_gt_json, "bbox", SET_B))


def test_group_without_ground_truth_is_nan(tmp_path, register_eval_set, caplog):
    gt_file = write_gt(tmp_path / "gt_only_a.json", keep_categories=SET_A)
    name = register_eval_set(gt_file, evaluator_type="coco_partial", mask_category_ids=SET_A)
    with caplog.at_level(logging.WARNING, logger="maskx_d2.evaluation"):
        evaluator = PartiallySupervisedCOCOEvaluator(name)
    assert "Set B" in caplog.text and "no ground-truth" in caplog.text

    results = run(evaluator)
    for task in ("bbox", "segm"):
        assert all(math.isnan(v) for v in results[f"{task}_B"].values())
        assert_same(results[f"{task}_A"], reference(gt_file, task, SET_A))
        assert_same(results[f"{task}_B"], reference(gt_file, task, SET_B))
        assert not math.isnan(results[f"{task}_A"]["AP"])


def test_no_predictions(eval_gt_json, register_eval_set, caplog):
    name = register_eval_set(eval_gt_json, evaluator_type="coco_partial", mask_category_ids=SET_A)
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


def test_without_ab_split_only_overall_results(eval_gt_json, register_eval_set):
    name = register_eval_set(eval_gt_json, evaluator_type="coco_partial")
    results = run(build_partially_supervised_evaluator(name, output_dir=None))
    assert set(results) == {"bbox", "segm"}
    assert_same(results["segm"], reference(eval_gt_json, "segm", CATEGORY_IDS))


def test_unknown_mask_category_id_is_an_error(eval_gt_json, register_eval_set):
    name = register_eval_set(eval_gt_json, evaluator_type="coco_partial", mask_category_ids=[1, 2])
    with pytest.raises(ValueError, match=r"\[2\]"):
        PartiallySupervisedCOCOEvaluator(name)


def test_builder_picks_evaluator_from_metadata(eval_gt_json, register_eval_set, tmp_path):
    partial = build_partially_supervised_evaluator(
        register_eval_set(eval_gt_json, evaluator_type="coco_partial", mask_category_ids=SET_A),
        str(tmp_path),
    )
    assert isinstance(partial, PartiallySupervisedCOCOEvaluator)

    plain = build_partially_supervised_evaluator(
        register_eval_set(eval_gt_json, evaluator_type="coco"), str(tmp_path), distributed=False
    )
    assert type(plain) is COCOEvaluator
    assert plain._use_fast_impl == compiled_ops_available()

    with pytest.raises(ValueError, match="sem_seg"):
        build_partially_supervised_evaluator(
            register_eval_set(eval_gt_json, evaluator_type="sem_seg"), None
        )


def test_without_compiled_ops_uses_pycocotools_and_refuses_fast_impl(
    eval_gt_json, register_eval_set, monkeypatch, caplog
):
    monkeypatch.setattr(ab_evaluator, "compiled_ops_available", lambda: False)
    name = register_eval_set(eval_gt_json, evaluator_type="coco_partial", mask_category_ids=SET_A)
    with caplog.at_level(logging.INFO, logger="maskx_d2.evaluation"):
        evaluator = PartiallySupervisedCOCOEvaluator(name)
    assert evaluator._use_fast_impl is False
    assert "official pycocotools COCOeval" in caplog.text

    with pytest.raises(CompiledOpsUnavailable, match="use_fast_impl=True"):
        PartiallySupervisedCOCOEvaluator(name, use_fast_impl=True)
    coco_name = register_eval_set(eval_gt_json, evaluator_type="coco")
    with pytest.raises(CompiledOpsUnavailable):
        build_partially_supervised_evaluator(coco_name, None, use_fast_impl=True)
    assert build_partially_supervised_evaluator(coco_name, None)._use_fast_impl is False
