"""maskx_d2 runs with and without detectron2's compiled extension; missing ops fail clearly."""

import pytest
import torch

import maskx_d2
from maskx_d2 import CompiledOpsUnavailable

needs_stub = pytest.mark.skipif(
    maskx_d2.compiled_ops_available(), reason="detectron2._C is compiled here: no stand-in"
)


def test_detectron2_layers_and_env_info_import():
    from detectron2.layers import ROIAlign, batched_nms  # noqa: F401
    from detectron2.utils.collect_env import collect_env_info

    assert "detectron2" in collect_env_info()  # default_setup() prints this


@needs_stub
def test_compiled_op_access_raises_naming_the_op():
    from detectron2 import _C

    with pytest.raises(CompiledOpsUnavailable, match="COCOevalAccumulate.*detectron2._C"):
        _C.COCOevalAccumulate
    assert "n/a" in _C.get_compiler_version()


@needs_stub
@pytest.mark.parametrize("op", ["deform_conv_forward", "modulated_deform_conv_forward"])
def test_deformable_conv_fails_clearly(op):
    # On a CPU detectron2's forward runs torchvision's op (and it refuses the backward itself);
    # on a GPU it calls these ops of _C, which the stand-in refuses by name.
    from detectron2 import _C
    from detectron2.layers import DeformConv

    conv = DeformConv(2, 2, 3, padding=1)
    assert conv(torch.rand(1, 2, 5, 5), torch.zeros(1, 18, 5, 5)).shape == (1, 2, 5, 5)
    with pytest.raises(CompiledOpsUnavailable, match=op):
        getattr(_C, op)


@needs_stub
@pytest.mark.parametrize("op", ["nms_rotated", "box_iou_rotated"])
def test_rotated_box_ops_fail_clearly(op):
    from detectron2.layers import nms_rotated
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    boxes = torch.tensor([[10.0, 10.0, 4.0, 4.0, 0.0], [11.0, 10.0, 4.0, 4.0, 30.0]])
    with pytest.raises(CompiledOpsUnavailable, match=op):
        if op == "nms_rotated":
            nms_rotated(boxes, torch.tensor([0.9, 0.8]), 0.5)
        else:
            pairwise_iou_rotated(boxes, boxes)


@needs_stub
def test_fast_coco_evaluator_refused_without_compiled_ops():
    from detectron2.evaluation.fast_eval_api import COCOeval_opt
    from pycocotools.coco import COCO

    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "height": 20, "width": 20}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [1, 1, 5, 5],
                "area": 25,
            }
        ],
    }
    gt.createIndex()
    dt = gt.loadRes([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9}])
    with pytest.raises(CompiledOpsUnavailable, match="detectron2._C"):
        COCOeval_opt(gt, dt, "bbox").evaluate()


def test_pure_pytorch_ops_used_by_mask_rcnn_work():
    from detectron2.layers import ROIAlign, batched_nms

    features = torch.rand(1, 4, 16, 16)
    out = ROIAlign((7, 7), 1.0, 0, aligned=True)(features, torch.tensor([[0, 1.0, 1, 9, 9]]))
    assert out.shape == (1, 4, 7, 7)
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    keep = batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 0]), 0.5)
    assert keep.tolist() == [0, 2]
