"""Proposal recall (proposal_recall.py) against pycocotools' COCOeval run directly, as COCO
evaluates proposals (``useCats=0``, ``maxDets=[10, 100, 1000]``).

Ground truth and detections: tests/evaluator_fixtures.py (5 images, categories 1, 3, 7, 9,
A = {1, 7}, pentagon masks); tests swap in their own proposals through its ``DETECTIONS``. The
reference (:func:`reference_ar`) is written here independently of the evaluator: a result json
from the same boxes or masks, each with its own class, and for a group a ground-truth json
written with that group's instances only.
"""

import contextlib
import io
import json
import logging
import math

import pytest
import torch
from detectron2.evaluation import DatasetEvaluators
from detectron2.structures import Boxes, Instances
from evaluator_fixtures import (
    DETECTIONS,
    GT,
    SET_A,
    SET_B,
    H,
    W,
    instances,
    pentagon,
    rle,
    run,
    write_gt,
)
from pipeline_fixtures import INSTANT
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import train_net
from maskx_d2.evaluation import ProposalRecallEvaluator, build_partially_supervised_evaluator
from maskx_d2.evaluation.ab_evaluator import PartiallySupervisedCOCOEvaluator
from maskx_d2.evaluation.proposal_recall import proposals_to_coco_json

AR = ("AR@10", "AR@100", "AR@1000", "ARs@1000", "ARm@1000", "ARl@1000")
BOX_KEYS = {"proposals_box", "proposals_box_A", "proposals_box_B"}
SEGM_KEYS = {"proposals_segm", "proposals_segm_A", "proposals_segm_B"}


def reference_ar(gt_file, iou_type, detections):
    """AR in percent (NaN for pycocotools' -1) of ``detections`` {image id: [(class, xyxy,
    score)]} against ``gt_file``, straight from pycocotools."""
    results = []
    for image_id, dets in detections.items():
        for c, (x0, y0, x1, y1), score in dets:
            result = {"image_id": image_id, "category_id": c, "score": score}
            if iou_type == "bbox":
                result["bbox"] = [x0, y0, x1 - x0, y1 - y0]
            else:
                encoded = rle(pentagon(x0, y0, x1, y1))
                result["segmentation"] = {
                    "size": encoded["size"],
                    "counts": encoded["counts"].decode(),
                }
            results.append(result)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_file)
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        coco_eval.params.useCats = 0
        coco_eval.params.maxDets = [10, 100, 1000]
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    # summarize(): stats[6:9] AR at maxDets 10, 100, 1000; stats[9:12] small/medium/large @1000.
    return {m: s * 100 if s >= 0 else float("nan") for m, s in zip(AR, coco_eval.stats[6:12])}


def assert_same(actual, expected):
    assert set(actual) == set(AR)
    for m in AR:
        a, e = actual[m], expected[m]
        assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e, abs=1e-9), (m, a, e)


@pytest.fixture
def group_gt(tmp_path, eval_gt_json):
    """{group: ground-truth json of that group's instances only}, written independently."""
    return {
        "all": eval_gt_json,
        "A": write_gt(tmp_path / "gt_a.json", keep_categories=SET_A),
        "B": write_gt(tmp_path / "gt_b.json", keep_categories=SET_B),
    }


def _key(prefix, group):
    return prefix if group == "all" else f"{prefix}_{group}"


def _perfect():
    """One proposal per ground-truth instance, its exact box (and mask)."""
    return {i: [(c, (x, y, x + w, y + h), 1.0) for c, x, y, w, h in objs] for i, objs in GT.items()}


def _register(register_eval_set, gt_file, **metadata):
    return register_eval_set(gt_file, evaluator_type="coco_partial", **metadata)


def test_box_and_mask_ar_match_pycocotools_on_all_a_b(
    group_gt, register_eval_set, monkeypatch, caplog
):
    evaluator = ProposalRecallEvaluator(
        _register(register_eval_set, group_gt["all"], mask_category_ids=SET_A), distributed=False
    )
    with caplog.at_level(logging.INFO, logger="maskx_d2.evaluation"):
        results = run(evaluator)
    assert set(results) == BOX_KEYS | SEGM_KEYS
    for prefix, iou_type in (("proposals_box", "bbox"), ("proposals_segm", "segm")):
        for group, gt_file in group_gt.items():
            assert_same(results[_key(prefix, group)], reference_ar(gt_file, iou_type, DETECTIONS))
        # The data is built so that the groups differ; otherwise the test would prove little.
        assert results[f"{prefix}_A"]["AR@10"] != pytest.approx(results[f"{prefix}_B"]["AR@10"])
    assert results["proposals_box"]["AR@100"] != pytest.approx(results["proposals_segm"]["AR@100"])

    table = evaluator.summary_table
    assert table in caplog.text
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["task", "classes", *AR]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[:2] for r in rows] == [[t, g] for t in ("box", "segm") for g in ("all", "A", "B")]
    assert float(rows[2][3]) == pytest.approx(results["proposals_box_B"]["AR@100"], abs=1e-3)

    # Proposals are class-agnostic: the predicted classes play no part.
    one_class = {i: [(1, *d[1:]) for d in dets] for i, dets in DETECTIONS.items()}
    monkeypatch.setattr("evaluator_fixtures.DETECTIONS", one_class)
    assert run(evaluator) == results


def test_perfect_proposals_give_100_none_give_0(
    eval_gt_json, register_eval_set, monkeypatch, caplog
):
    evaluator = ProposalRecallEvaluator(
        _register(register_eval_set, eval_gt_json, mask_category_ids=SET_A), distributed=False
    )
    monkeypatch.setattr("evaluator_fixtures.DETECTIONS", _perfect())
    results = run(evaluator)
    assert set(results) == BOX_KEYS | SEGM_KEYS
    # Every group has small, medium and large instances, so no metric is undefined.
    assert all(v == pytest.approx(100.0) for r in results.values() for v in r.values())

    # Images processed, not one proposal: every object is missed (pycocotools: recall 0).
    monkeypatch.setattr("evaluator_fixtures.DETECTIONS", {i: [] for i in GT})
    results = run(evaluator)
    assert set(results) == BOX_KEYS | SEGM_KEYS
    assert all(v == 0.0 for r in results.values() for v in r.values())

    # No image processed at all: nothing to evaluate, as detectron2's COCOEvaluator.
    evaluator.reset()
    with caplog.at_level(logging.WARNING, logger="maskx_d2.evaluation"):
        assert evaluator.evaluate() == {}
    assert "Did not receive valid predictions" in caplog.text
    assert evaluator.summary_table == ""


def test_group_without_ground_truth_is_nan(tmp_path, register_eval_set, caplog):
    gt_file = write_gt(tmp_path / "gt_only_a.json", keep_categories=SET_A)
    name = _register(register_eval_set, gt_file, mask_category_ids=SET_A)
    with caplog.at_level(logging.WARNING, logger="maskx_d2.evaluation"):
        evaluator = ProposalRecallEvaluator(name, distributed=False)
    assert "Set B" in caplog.text and "its AR will be NaN" in caplog.text
    results = run(evaluator)
    for prefix in ("proposals_box", "proposals_segm"):
        assert all(math.isnan(v) for v in results[f"{prefix}_B"].values())
        assert not math.isnan(results[f"{prefix}_A"]["AR@100"])
    assert_same(results["proposals_box_A"], reference_ar(gt_file, "bbox", DETECTIONS))


def test_max_dets_limits_and_the_1000_cut(group_gt, register_eval_set, monkeypatch):
    # Ten high-scored 2 x 2 boxes in a corner (IoU < 0.01 with every object), then the exact
    # objects: these rank 11th and after.
    junk = [(1, (0, 156, 2, 158), 0.9 - 0.01 * k) for k in range(10)]
    late = {i: junk + [(c, b, 0.5) for c, b, _ in dets] for i, dets in _perfect().items()}
    monkeypatch.setattr("evaluator_fixtures.DETECTIONS", late)
    evaluator = ProposalRecallEvaluator(
        _register(register_eval_set, group_gt["all"], mask_category_ids=SET_A), distributed=False
    )
    results = run(evaluator)
    for prefix, iou_type in (("proposals_box", "bbox"), ("proposals_segm", "segm")):
        for group, gt_file in group_gt.items():
            key = _key(prefix, group)
            assert_same(results[key], reference_ar(gt_file, iou_type, late))
            assert results[key]["AR@10"] == 0.0
            assert results[key]["AR@100"] == results[key]["AR@1000"] == pytest.approx(100.0)

    # Image 1: its objects come first in the model's output but with the lowest scores, after
    # 1000 others: kept proposals are the 1000 best, so they are missed, as pycocotools cuts.
    many = [(1, (0, 156, 2, 158), 0.9 - 1e-4 * k) for k in range(1000)]
    crowded = {**_perfect(), 1: [(c, b, 0.1) for c, b, _ in _perfect()[1]] + many}
    monkeypatch.setattr("evaluator_fixtures.DETECTIONS", crowded)
    results = run(evaluator, with_masks=False)
    for group, gt_file in group_gt.items():
        key = _key("proposals_box", group)
        assert_same(results[key], reference_ar(gt_file, "bbox", crowded))
        assert results[key]["AR@1000"] < 100.0


def test_proposals_to_coco_json_keeps_the_best_1000():
    scores = torch.rand(1003)
    boxes = torch.cat([torch.rand(1003, 2) * 50, torch.rand(1003, 2) * 50 + 60], dim=1)
    results = proposals_to_coco_json(boxes, scores, None, image_id=7, category_id=3)
    assert len(results) == 1000
    order = torch.argsort(scores, descending=True)[:1000]
    assert [r["score"] for r in results] == pytest.approx(scores[order].tolist())
    x0, y0, x1, y1 = boxes[order[0]].tolist()
    assert results[0]["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])
    assert {(r["image_id"], r["category_id"]) for r in results} == {(7, 3)}
    assert all("segmentation" not in r for r in results)


def _with_crowd(path, iscrowd):
    """The fixture ground truth plus a 60 x 30 region of class 1 (A) in image 5."""
    write_gt(path)
    data = json.loads(path.read_text())
    x, y, w, h = 20, 100, 60, 30
    data["annotations"].append(
        {
            "id": len(data["annotations"]) + 1,
            "image_id": 5,
            "category_id": 1,
            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
            "area": float(w * h),
            "bbox": [x, y, w, h],
            "iscrowd": iscrowd,
        }
    )
    path.write_text(json.dumps(data))
    return str(path)


def test_crowd_regions_are_ignored(tmp_path, register_eval_set, monkeypatch):
    crowd_file = _with_crowd(tmp_path / "crowd.json", iscrowd=1)
    evaluator = ProposalRecallEvaluator(
        _register(register_eval_set, crowd_file, mask_category_ids=SET_A), distributed=False
    )
    monkeypatch.setattr("evaluator_fixtures.DETECTIONS", _perfect())
    # Not proposing a crowd region is no miss ...
    results = run(evaluator, with_masks=False)
    assert results["proposals_box"]["AR@100"] == results["proposals_box_A"]["AR@100"] == 100.0
    # ... and proposing it is no hit: numbers as pycocotools gives them, still 100.
    on_crowd = {**_perfect(), 5: [(1, (20, 100, 80, 130), 1.0)]}
    monkeypatch.setattr("evaluator_fixtures.DETECTIONS", on_crowd)
    results = run(evaluator, with_masks=False)
    assert_same(results["proposals_box"], reference_ar(crowd_file, "bbox", on_crowd))
    assert results["proposals_box"]["AR@100"] == 100.0

    # The same region as an ordinary instance, not proposed, is a miss.
    plain_file = _with_crowd(tmp_path / "plain.json", iscrowd=0)
    plain = ProposalRecallEvaluator(
        _register(register_eval_set, plain_file, mask_category_ids=SET_A), distributed=False
    )
    monkeypatch.setattr("evaluator_fixtures.DETECTIONS", _perfect())
    assert run(plain, with_masks=False)["proposals_box_A"]["AR@100"] < 100.0


def test_outputs_without_masks_give_box_ar_only(group_gt, register_eval_set):
    name = _register(register_eval_set, group_gt["all"], mask_category_ids=SET_A)
    evaluator = ProposalRecallEvaluator(name, distributed=False)
    results = run(evaluator, with_masks=False)
    assert set(results) == BOX_KEYS
    assert_same(results["proposals_box_B"], reference_ar(group_gt["B"], "bbox", DETECTIONS))
    assert "segm" not in evaluator.summary_table

    # An RPN's output (detectron2's ProposalNetwork): proposal_boxes and objectness logits.
    evaluator.reset()
    for image_id, dets in DETECTIONS.items():
        proposals = Instances((H, W))
        proposals.proposal_boxes = Boxes(torch.tensor([d[1] for d in dets]).float().view(-1, 4))
        proposals.objectness_logits = torch.logit(torch.tensor([d[2] for d in dets]))
        inputs = [{"image_id": image_id, "height": H, "width": W}]
        evaluator.process(inputs, [{"proposals": proposals}])
    rpn = evaluator.evaluate()
    assert set(rpn) == BOX_KEYS
    for key in BOX_KEYS:
        assert_same(rpn[key], results[key])


def _b_box_only(path):
    """The fixture ground truth with every instance of set B box-only (no segmentation)."""
    write_gt(path)
    data = json.loads(path.read_text())
    for ann in data["annotations"]:
        if ann["category_id"] in SET_B:
            del ann["segmentation"]
    path.write_text(json.dumps(data))
    return str(path)


def test_mask_ar_needs_mask_ground_truth(tmp_path, register_eval_set, caplog):
    gt_file = _b_box_only(tmp_path / "b_box_only.json")
    evaluator = ProposalRecallEvaluator(
        _register(register_eval_set, gt_file, mask_category_ids=SET_A), distributed=False
    )
    with caplog.at_level(logging.INFO, logger="maskx_d2.evaluation"):
        results = run(evaluator)
    assert set(results) == BOX_KEYS | {"proposals_segm", "proposals_segm_A"}
    assert "set B" in caplog.text and "no mask AR" in caplog.text
    # B's instances are ignore regions for mask AR on all classes: what is left is A.
    assert_same(results["proposals_segm"], results["proposals_segm_A"])
    assert_same(results["proposals_box"], reference_ar(gt_file, "bbox", DETECTIONS))

    data = json.loads((tmp_path / "b_box_only.json").read_text())
    for ann in data["annotations"]:
        ann.pop("segmentation", None)
    (tmp_path / "boxes.json").write_text(json.dumps(data))
    name = _register(register_eval_set, str(tmp_path / "boxes.json"), mask_category_ids=SET_A)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="maskx_d2.evaluation"):
        assert set(run(ProposalRecallEvaluator(name, distributed=False))) == BOX_KEYS
    assert "only box AR" in caplog.text


def test_gathers_the_proposals_of_every_process(eval_gt_json, register_eval_set, monkeypatch):
    name = _register(register_eval_set, eval_gt_json, mask_category_ids=SET_A)
    single = run(ProposalRecallEvaluator(name, distributed=False))
    ranks = [ProposalRecallEvaluator(name, distributed=True) for _ in range(2)]
    for evaluator, image_ids in zip(ranks, ((1, 3, 5), (2, 4))):
        for image_id in image_ids:
            outputs = [{"instances": instances(image_id)}]
            evaluator.process([{"image_id": image_id, "height": H, "width": W}], outputs)
    monkeypatch.setattr("detectron2.utils.comm.synchronize", lambda: None)
    monkeypatch.setattr(
        "detectron2.utils.comm.gather", lambda data, dst=0: [data, ranks[1]._predictions]
    )
    assert ranks[0].evaluate() == single
    monkeypatch.setattr("detectron2.utils.comm.is_main_process", lambda: False)
    assert ranks[1].evaluate() == {}


def test_builder_combines_ap_and_proposal_recall(eval_gt_json, register_eval_set, caplog):
    name = _register(register_eval_set, eval_gt_json, mask_category_ids=SET_A)
    assert isinstance(
        build_partially_supervised_evaluator(name, None), PartiallySupervisedCOCOEvaluator
    )
    both = build_partially_supervised_evaluator(name, None, distributed=False, proposal_recall=True)
    assert isinstance(both, DatasetEvaluators)
    with caplog.at_level(logging.INFO, logger="maskx_d2.evaluation"):
        results = run(both)
    ap_keys = {"bbox", "segm", "bbox_A", "segm_A", "bbox_B", "segm_B"}
    assert set(results) == ap_keys | BOX_KEYS | SEGM_KEYS
    assert "COCO AP on all classes" in caplog.text and "Average recall" in caplog.text

    # A plain COCO dataset (no A/B split): AR on all classes only.
    plain = register_eval_set(eval_gt_json, evaluator_type="coco")
    results = run(build_partially_supervised_evaluator(plain, None, False, proposal_recall=True))
    assert {"proposals_box", "proposals_segm"} <= set(results)
    assert not {"proposals_box_A", "proposals_segm_B"} & set(results)


def test_builder_reads_the_ground_truth_once(tmp_path, register_eval_set):
    """The AR evaluator reuses the AP evaluator's ground truth and its box-only-ignored copy
    (B box-only here), with the same results as when it loads its own."""
    name = _register(register_eval_set, _b_box_only(tmp_path / "b.json"), mask_category_ids=SET_A)
    both = build_partially_supervised_evaluator(name, None, distributed=False, proposal_recall=True)
    ap, proposals = both._evaluators
    assert proposals._coco_api is ap._coco_api
    results = run(both)
    assert ap._segm_coco_api is not None and proposals._mask_coco_api is ap._segm_coco_api
    alone = run(ProposalRecallEvaluator(name, distributed=False))
    assert alone == {k: v for k, v in results.items() if k.startswith("proposals")}
    assert {"proposals_segm", "proposals_segm_A"} <= set(alone)


def test_train_net_reports_proposal_recall(tmp_path):
    """Eval-only of an untrained model on the 16 synthetic validation images."""
    argv = ["--config-file", INSTANT, "--eval-only", "OUTPUT_DIR", str(tmp_path)]
    argv += ["MODEL.WEIGHTS", "", "TEST.MASKX.GT_BOX_EVAL", "False"]
    argv += ["TEST.MASKX.PROPOSAL_RECALL", "True"]
    results = train_net.main(train_net.argument_parser().parse_args(argv))
    assert {"bbox", "segm_B"} | BOX_KEYS | SEGM_KEYS <= set(results)
    assert set(results["proposals_segm_B"]) == set(AR)
    with open(tmp_path / "log.txt") as f:
        log = f.read()
    assert "Average recall" in log
    for task in ("box", "segm"):
        assert f"| {task} " in log
