"""Masks predicted on ground-truth boxes (gt_box_inference.py): the test mapper, the model wrapper
for every mask head, and its one-backbone-pass result against detectron2's own
``inference(detected_instances=...)``, which runs the backbone a second time."""

import copy

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import BoxMode
from PIL import Image
from pipeline_fixtures import INSTANT

from maskx_d2 import add_maskx_config
from maskx_d2.evaluation.gt_box_inference import (
    GT_BOX_KEY,
    GTBoxMaskModel,
    GTBoxTestMapper,
    gt_box_eval_applies,
    gt_box_instances,
)

HEADS = {
    "transfer": {"MASK_PREDICTOR": "transfer"},
    "transfer+MLP": {"MASK_PREDICTOR": "transfer", "MLP_BRANCH.ENABLED": True},
    "class_agnostic": {"MASK_PREDICTOR": "class_agnostic"},
    "class_specific": {"MASK_PREDICTOR": "class_specific"},
}


def _cfg(**maskx):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(INSTANT)
    for key, value in maskx.items():
        cfg.merge_from_list([f"MODEL.MASKX.{key}", value])
    return cfg


def _record(tmp_path):
    """An 80 x 120 image with a masked instance, a box-only one, a crowd region and an
    instance whose segmentation is empty."""
    path = tmp_path / "image.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (80, 120, 3), dtype=np.uint8)).save(path)
    square = [[10, 10, 50, 10, 50, 40, 10, 40]]
    return {
        "file_name": str(path),
        "image_id": 7,
        "height": 80,
        "width": 120,
        "annotations": [
            {
                "id": 1,
                "bbox": [10, 10, 40, 30],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 3,
                "segmentation": square,
            },
            {"id": 2, "bbox": [60, 20, 30, 30], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 4},
            {
                "id": 3,
                "bbox": [0, 50, 40, 20],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 2,
                "segmentation": square,
                "iscrowd": 1,
            },
            {
                "id": 4,
                "bbox": [70, 55, 115, 75],
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 11,
                "segmentation": [[70, 55, 115, 55, 115, 75]],
            },
            {
                "id": 5,
                "bbox": [20, 60, 10, 10],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 5,
                "segmentation": [],
            },
        ],
    }


def test_mapper_keeps_the_boxes_of_masked_instances_only(tmp_path):
    record = _record(tmp_path)
    mapped = GTBoxTestMapper(_cfg(), is_train=False)(copy.deepcopy(record))
    assert "annotations" not in mapped and mapped["image"].shape[1:] == (128, 192)
    assert mapped[GT_BOX_KEY] == [
        {"bbox": [10, 10, 50, 40], "category_id": 3, "id": 1},
        {"bbox": [70, 55, 115, 75], "category_id": 11, "id": 4},
    ]
    inst = gt_box_instances(mapped, (128, 192))  # the network sees the image 1.6x larger
    torch.testing.assert_close(
        inst.pred_boxes.tensor, torch.tensor([[16.0, 16, 80, 64], [112, 88, 184, 120]])
    )
    assert inst.pred_classes.tolist() == [3, 11] and inst.gt_ann_ids.tolist() == [1, 4]
    assert inst.scores.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("head", HEADS)
def test_every_mask_head_predicts_on_the_ground_truth_boxes(tmp_path, head):
    cfg = _cfg(**HEADS[head])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    inputs = [GTBoxTestMapper(cfg, is_train=False)(_record(tmp_path))]
    inputs[0][GT_BOX_KEY][1]["category_id"] = 7  # two classes: per-class heads must differ

    with torch.no_grad():
        outputs = GTBoxMaskModel(model)(inputs)
        plain = model(inputs)
        reference = model.inference(
            inputs, detected_instances=[gt_box_instances(inputs[0], inputs[0]["image"].shape[1:])]
        )
    # The detections are the model's own, untouched.
    assert torch.equal(
        outputs[0]["instances"].pred_boxes.tensor, plain[0]["instances"].pred_boxes.tensor
    )
    on_gt = outputs[0]["gt_box_instances"]
    assert on_gt.image_size == (80, 120) and on_gt.pred_masks.shape == (2, 80, 120)
    assert on_gt.gt_ann_ids.tolist() == [1, 4] and on_gt.pred_classes.tolist() == [3, 7]
    torch.testing.assert_close(
        on_gt.pred_boxes.tensor, torch.tensor([[10.0, 10, 50, 40], [70, 55, 115, 75]])
    )
    # Equal to detectron2's own path on given boxes (which runs the backbone again).
    expected = reference[0]["instances"]
    assert torch.equal(on_gt.pred_masks, expected.pred_masks)


def test_inputs_without_ground_truth_pass_through():
    cfg = _cfg()
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    image = torch.rand(3, 64, 96) * 255
    with torch.no_grad():
        out = GTBoxMaskModel(model)([{"image": image}])
        expected = model([{"image": image}])
    assert "gt_box_instances" not in out[0]
    assert torch.equal(out[0]["instances"].scores, expected[0]["instances"].scores)


def test_which_evaluation_sets_are_measured_on_ground_truth_boxes():
    cfg = _cfg()
    assert gt_box_eval_applies(cfg, "synthetic_shapes_v2_val")
    assert gt_box_eval_applies(cfg, "vg3k_val")  # mapped; it has no mask, so yields nothing
    assert not gt_box_eval_applies(cfg, "coco_2017_val")  # plain COCO evaluator
    cfg.TEST.MASKX.GT_BOX_EVAL = False
    assert not gt_box_eval_applies(cfg, "synthetic_shapes_v2_val")
    cfg.TEST.MASKX.GT_BOX_EVAL, cfg.MODEL.MASK_ON = True, False
    assert not gt_box_eval_applies(cfg, "synthetic_shapes_v2_val")


def test_other_meta_architectures_are_refused_clearly():
    with pytest.raises(TypeError, match="GT_BOX_EVAL"):
        GTBoxMaskModel(torch.nn.Linear(2, 2))
