"""The A/B evaluator on ground truth with box-only instances (box_only_ground_truth.py).

Uses the ground truth and detections of evaluator_fixtures.py. All instances box-only: box AP only,
equal to pycocotools'. Some box-only: box AP uses every instance, and mask AP does not change
when the detections of the box-only instances are removed (they are neither true nor false
positives), which would fail if those instances were dropped from the ground truth or kept as
targets.
"""

import json
import logging

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from evaluator_fixtures import (
    DETECTIONS,
    GT,
    SET_A,
    SET_B,
    assert_same,
    reference,
    run,
    write_gt,
)

from maskx_d2.evaluation.ab_evaluator import PartiallySupervisedCOCOEvaluator

# Image 2's two class-9 instances (set B): the small one is missed, the medium one detected.
BOX_ONLY = {(2, 1), (2, 2)}


def _gt_with_box_only(path, box_only):
    """The evaluator tests' ground truth with the (image id, index) instances box-only, half of
    them without a ``segmentation`` key and half with ``segmentation: []``."""
    write_gt(path)
    data = json.loads(path.read_text())
    index = {(i, k): n for n, (i, k) in enumerate((i, k) for i in GT for k in range(len(GT[i])))}
    for number, key in enumerate(sorted(box_only)):
        ann = data["annotations"][index[key]]
        if number % 2:
            ann["segmentation"] = []
        else:
            del ann["segmentation"]
    path.write_text(json.dumps(data))
    return str(path)


def test_without_any_mask_only_box_ap(tmp_path, register_eval_set, caplog):
    every = {(i, k) for i in GT for k in range(len(GT[i]))}
    gt_file = _gt_with_box_only(tmp_path / "boxes.json", every)
    name = register_eval_set(gt_file, evaluator_type="coco_partial", mask_category_ids=SET_A)
    with caplog.at_level(logging.WARNING, logger="maskx_d2.evaluation"):
        evaluator = PartiallySupervisedCOCOEvaluator(name)
    assert "only box AP" in caplog.text and gt_file in caplog.text

    results = run(evaluator)  # the model predicts masks; they have nothing to match
    assert set(results) == {"bbox", "bbox_A", "bbox_B"}
    assert_same(results["bbox_B"], reference(gt_file, "bbox", SET_B))

    with pytest.raises(ValueError, match="no ground-truth masks"):
        PartiallySupervisedCOCOEvaluator(name, tasks=("segm",))


def _without_detections_of(detections, box_only):
    """DETECTIONS minus those of a box-only ground truth's class within 3 px of its box."""

    def hits(image_id, category_id, box):
        for i, k in box_only:
            c, x, y, w, h = GT[i][k]
            near = max(abs(a - b) for a, b in zip(box, (x, y, x + w, y + h))) <= 3
            if (i, c) == (image_id, category_id) and near:
                return True
        return False

    return {i: [d for d in dets if not hits(i, *d[:2])] for i, dets in detections.items()}


def test_some_masks_box_only_instances_are_ignored_in_mask_ap(
    tmp_path, register_eval_set, monkeypatch, caplog
):
    gt_file = _gt_with_box_only(tmp_path / "mixed.json", BOX_ONLY)
    name = register_eval_set(gt_file, evaluator_type="coco_partial", mask_category_ids=SET_A)
    with caplog.at_level(logging.WARNING, logger="maskx_d2.evaluation"):
        evaluator = PartiallySupervisedCOCOEvaluator(name, output_dir=str(tmp_path))
    assert "2 of 11 ground-truth instances" in caplog.text

    # The detection of a box-only instance ranks first in its class, so that counting it as a
    # false positive (ground truth dropped) would lower mask AP on B.
    detections = {i: list(d) for i, d in DETECTIONS.items()}
    detections[2][1] = (*detections[2][1][:2], 0.99)
    monkeypatch.setattr("evaluator_fixtures.DETECTIONS", detections)
    results = run(evaluator)
    assert set(results) == {"bbox", "segm", "bbox_A", "segm_A", "bbox_B", "segm_B"}
    for key, cat_ids in (("bbox", [1, 3, 7, 9]), ("bbox_B", SET_B)):
        assert_same(results[key], reference(gt_file, "bbox", cat_ids))
    # The results file is written once, with dataset category ids (not mapped twice).
    saved = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert len(saved) == sum(len(d) for d in DETECTIONS.values())
    assert {r["category_id"] for r in saved} == {1, 3, 7, 9}

    fewer = _without_detections_of(detections, BOX_ONLY)
    assert sum(map(len, fewer.values())) == sum(map(len, detections.values())) - 1
    monkeypatch.setattr("evaluator_fixtures.DETECTIONS", fewer)
    fewer_results = run(evaluator)
    for key in ("segm", "segm_A", "segm_B"):
        assert_same(fewer_results[key], results[key])
    # ... while box AP does count that detection: the comparison above is not vacuous.
    assert fewer_results["bbox_B"]["AP"] < results["bbox_B"]["AP"]


def test_box_only_dicts_convert_and_evaluate(tmp_path, register_eval_set):
    """A dataset registered as dicts without segmentation (as Visual Genome is): detectron2
    converts it to COCO json for evaluation, which then has no masks."""
    gt_file = write_gt(tmp_path / "gt.json")
    gt = json.loads((tmp_path / "gt.json").read_text())
    name = register_eval_set(gt_file, evaluator_type="coco_partial", mask_category_ids=SET_A)
    # Without json_file detectron2 converts the registered dicts to COCO json itself.
    MetadataCatalog.get(name).__dict__.pop("json_file")
    dicts = [
        {
            "image_id": image["id"],
            "file_name": image["file_name"],
            "height": image["height"],
            "width": image["width"],
            "annotations": [
                {
                    "bbox": a["bbox"],
                    "bbox_mode": 1,
                    "category_id": [1, 3, 7, 9].index(a["category_id"]),
                }
                for a in gt["annotations"]
                if a["image_id"] == image["id"]
            ],
        }
        for image in gt["images"]
    ]
    DatasetCatalog.register(name, lambda: dicts)
    try:
        results = run(PartiallySupervisedCOCOEvaluator(name, output_dir=str(tmp_path)))
    finally:
        DatasetCatalog.remove(name)
    assert set(results) == {"bbox", "bbox_A", "bbox_B"}
    assert_same(results["bbox"], reference(gt_file, "bbox", [1, 3, 7, 9]))


def test_visual_genome_val_gets_box_ap_only(tmp_path):
    """vg3k_val as registered (no masks anywhere): box AP on all, A (COCO classes) and B."""
    import torch
    from detectron2.structures import Boxes, BoxMode, Instances
    from visual_genome_fixtures import standard_vg

    from maskx_d2.data.datasets.visual_genome.loading import register_vg3k

    root = str(tmp_path / "vg")
    standard_vg(root, num_images=200)
    name = "maskx_test_vg3k_val_eval"
    register_vg3k(name, root, "val", num_classes=90)
    try:
        dicts = DatasetCatalog.get(name)
        assert dicts and all("segmentation" not in a for d in dicts for a in d["annotations"])
        evaluator = PartiallySupervisedCOCOEvaluator(name, output_dir=str(tmp_path))
        evaluator.reset()
        for d in dicts:  # a perfect detector that also predicts (box-shaped) masks
            boxes = torch.tensor(
                [
                    BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
                    for a in d["annotations"]
                ]
            ).view(-1, 4)
            inst = Instances((d["height"], d["width"]), pred_boxes=Boxes(boxes))
            inst.scores = torch.ones(len(boxes))
            inst.pred_classes = torch.tensor([a["category_id"] for a in d["annotations"]])
            inst.pred_masks = torch.zeros(len(boxes), d["height"], d["width"], dtype=torch.bool)
            evaluator.process([d], [{"instances": inst}])
        results = evaluator.evaluate()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert set(results) == {"bbox", "bbox_A", "bbox_B"}
    for key in results:
        assert results[key]["AP50"] == pytest.approx(100.0), key
