"""Mask metrics on ground-truth boxes (gt_box_metrics.py, the evaluator's segm_gtbox keys).

Uses the ground truth of test_evaluator.py (pentagons in 5 images, A = {1, 7}). The "model" is
replaced by masks made here: exactly the ground truth (mIoU and AP 100), and the ground truth
shifted by a known number of pixels, whose IoU is computed independently with numpy on the
decoded arrays and whose AP comes from pycocotools run directly with the ground-truth boxes as
detections of score 1.
"""

import contextlib
import io
import json
import logging
import math

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.structures import Boxes, Instances
from evaluator_fixtures import (
    CATEGORY_IDS,
    GT,
    SET_A,
    SET_B,
    H,
    W,
    instances,
    write_gt,
)
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskx_d2.evaluation.ab_evaluator import PartiallySupervisedCOCOEvaluator
from maskx_d2.evaluation.gt_box_metrics import GT_BOX_FIELDS, gt_box_mask_metrics

KEYS = {"segm_gtbox", "segm_gtbox_A", "segm_gtbox_B"}


def _moved(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The mask moved by (dx, dy) pixels, zero-filled (no wrap-around)."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def _gt_masks(coco):
    """{annotation id: (H, W) uint8 mask} decoded from the ground-truth polygons."""
    return {a["id"]: coco.annToMask(a) for a in coco.dataset["annotations"]}


def _outputs(coco, shift=(0, 0), skip=()):
    """Per image, the evaluator inputs and outputs of a model whose mask on each ground-truth
    box is that instance's ground truth moved by ``shift``; ``skip``: annotation ids left out."""
    masks = _gt_masks(coco)
    for image_id in GT:
        anns = [a for a in coco.imgToAnns[image_id] if a["id"] not in skip]
        inst = Instances((H, W))
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).view(-1, 4))
        inst.pred_classes = torch.tensor(
            [CATEGORY_IDS.index(a["category_id"]) for a in anns], dtype=torch.int64
        )
        inst.scores = torch.ones(len(anns))
        inst.gt_ann_ids = torch.tensor([a["id"] for a in anns], dtype=torch.int64)
        inst.pred_masks = torch.from_numpy(
            np.stack([_moved(masks[a["id"]], *shift) for a in anns]).astype(bool)
            if anns
            else np.zeros((0, H, W), dtype=bool)
        )
        yield (
            [{"image_id": image_id, "height": H, "width": W}],
            [{"instances": instances(image_id), "gt_box_instances": inst}],
        )


def _evaluate(evaluator, coco, **kwargs):
    evaluator.reset()
    for inputs, outputs in _outputs(coco, **kwargs):
        evaluator.process(inputs, outputs)
    return evaluator.evaluate()


def _reference_miou(coco, shift, cat_ids):
    """Mean over categories of the mean numpy IoU of each instance's shifted mask."""
    masks = _gt_masks(coco)
    per_category = []
    for c in cat_ids:
        ious = []
        for a in coco.loadAnns(coco.getAnnIds(catIds=[c])):
            gt, pred = masks[a["id"]].astype(bool), _moved(masks[a["id"]], *shift).astype(bool)
            ious.append((gt & pred).sum() / (gt | pred).sum())
        if ious:
            per_category.append(np.mean(ious))
    return 100 * np.mean(per_category)


def _reference_ap(gt_file, shift, cat_ids):
    """pycocotools with the ground-truth boxes as detections of score 1, catIds restricted."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt_file)
        masks = _gt_masks(coco)
        results = []
        for a in coco.dataset["annotations"]:
            rle = mask_util.encode(np.asfortranarray(_moved(masks[a["id"]], *shift)))
            rle["counts"] = rle["counts"].decode()
            results.append(
                {
                    "image_id": a["image_id"],
                    "category_id": a["category_id"],
                    "score": 1.0,
                    "segmentation": rle,
                }
            )
        coco_eval = COCOeval(coco, coco.loadRes(results), "segm")
        coco_eval.params.catIds = cat_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return dict(zip(("AP", "AP50", "AP75"), 100 * coco_eval.stats[:3]))


@pytest.fixture
def gt_file(tmp_path):
    return write_gt(tmp_path / "gt.json")


@pytest.fixture
def coco(gt_file):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(gt_file)


def test_masks_equal_to_the_ground_truth_score_100(gt_file, coco, register_eval_set):
    name = register_eval_set(gt_file, evaluator_type="coco_partial", mask_category_ids=SET_A)
    results = _evaluate(PartiallySupervisedCOCOEvaluator(name), coco)
    assert KEYS <= set(results)
    names = {c["id"]: c["name"] for c in coco.loadCats(CATEGORY_IDS)}
    for key, cat_ids in (
        ("segm_gtbox", CATEGORY_IDS),
        ("segm_gtbox_A", SET_A),
        ("segm_gtbox_B", SET_B),
    ):
        per_class = {f"mIoU-{names[c]}" for c in cat_ids if coco.getAnnIds(catIds=[c])}
        assert set(GT_BOX_FIELDS) == {"mIoU", "AP", "AP50", "AP75"}
        assert set(results[key]) == set(GT_BOX_FIELDS) | per_class
        for field in results[key]:
            assert results[key][field] == pytest.approx(100.0), (key, field)


@pytest.mark.parametrize("shift", [(3, 0), (0, -5), (4, 4)])
def test_shifted_masks_match_numpy_iou_and_pycocotools(
    gt_file, coco, register_eval_set, shift, caplog
):
    name = register_eval_set(gt_file, evaluator_type="coco_partial", mask_category_ids=SET_A)
    evaluator = PartiallySupervisedCOCOEvaluator(name)
    with caplog.at_level(logging.INFO, logger="maskx_d2.evaluation"):
        results = _evaluate(evaluator, coco, shift=shift)
    for key, cat_ids in (
        ("segm_gtbox", CATEGORY_IDS),
        ("segm_gtbox_A", SET_A),
        ("segm_gtbox_B", SET_B),
    ):
        expected_miou = _reference_miou(coco, shift, cat_ids)
        assert 20 < expected_miou < 95  # the shift matters, and not totally
        assert results[key]["mIoU"] == pytest.approx(expected_miou, abs=1e-6)
        for c in cat_ids:  # each class's own mean IoU, under its name
            name_c = coco.loadCats([c])[0]["name"]
            expected_c = _reference_miou(coco, shift, [c])
            assert results[key][f"mIoU-{name_c}"] == pytest.approx(expected_c, abs=1e-6)
        for field, value in _reference_ap(gt_file, shift, cat_ids).items():
            assert results[key][field] == pytest.approx(value, abs=1e-9), (key, field)
    assert results["segm_gtbox_A"]["mIoU"] != pytest.approx(results["segm_gtbox_B"]["mIoU"])
    # One table with the standard rows and the GT-box rows, mIoU in its own column.
    table = evaluator.summary_table
    assert table in caplog.text
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert header[-1] == "mIoU"
    rows = {
        tuple(c.strip() for c in line.strip("|").split("|")[:2]): line
        for line in table.splitlines()[2:]
    }
    assert set(rows) == {(t, g) for t in ("bbox", "segm", "segm_gtbox") for g in ("all", "A", "B")}
    assert f"{results['segm_gtbox_B']['mIoU']:.3f}" in rows[("segm_gtbox", "B")]


def test_the_standard_metrics_do_not_change(gt_file, coco, register_eval_set):
    """The GT-box predictions are evaluated on their own, not mixed into the detections."""
    name = register_eval_set(gt_file, evaluator_type="coco_partial", mask_category_ids=SET_A)
    evaluator = PartiallySupervisedCOCOEvaluator(name)
    with_gt_box = _evaluate(evaluator, coco, shift=(2, 1))
    evaluator.reset()
    for image_id in GT:
        evaluator.process(
            [{"image_id": image_id, "height": H, "width": W}],
            [{"instances": instances(image_id)}],
        )
    without = evaluator.evaluate()
    assert set(with_gt_box) - set(without) == KEYS
    for key in without:
        assert with_gt_box[key] == without[key], key


def test_ground_truth_with_box_onlyinstances(tmp_path, register_eval_set):
    """Box-only instances get no GT-box prediction (nothing to compare with) and are ignore
    regions for the AP, as in the standard mask AP: the score stays 100 for exact masks."""
    gt_file = write_gt(tmp_path / "gt.json")
    data = json.loads(open(gt_file).read())
    box_only = {a["id"] for a in data["annotations"] if a["category_id"] == 9}
    for a in data["annotations"]:
        if a["id"] in box_only:
            del a["segmentation"]
    open(gt_file, "w").write(json.dumps(data))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(write_gt(tmp_path / "full.json"))  # masks of the others, for _outputs
    name = register_eval_set(gt_file, evaluator_type="coco_partial", mask_category_ids=SET_A)
    results = _evaluate(PartiallySupervisedCOCOEvaluator(name), coco, skip=box_only)
    assert results["segm_gtbox_A"]["mIoU"] == pytest.approx(100.0)
    assert results["segm_gtbox_B"]["AP"] == pytest.approx(100.0)  # class 3 only
    assert results["segm_gtbox"]["mIoU"] == pytest.approx(100.0)


def test_groups_without_predictions_are_nan(gt_file, coco):
    results = gt_box_mask_metrics(coco, [], {"A": SET_A, "B": SET_B})
    assert set(results) == KEYS
    assert all(math.isnan(v) for r in results.values() for v in r.values())
