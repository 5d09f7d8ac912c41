"""demo.py end to end on a synthetic image, and the A-green / B-red drawing rule."""

import importlib.util
import os

import cv2
import numpy as np
import torch
from detectron2.config import get_cfg
from detectron2.structures import Boxes, Instances

import maskx_d2
from maskx_d2.data.datasets.synthetic import (
    SHIFTED_MASK_CLASSES,
    SYNTHETIC_CLASSES,
    SYNTHETIC_MASK_CLASSES,
    generate_synthetic_shapes,
)
from maskx_d2.visualization import (
    BOX_ONLY_CLASS_COLOR,
    MASK_CLASS_COLOR,
    draw_partial_predictions,
    partial_supervision_classes,
)

# demo.py is a script at the repository root, not part of the package.
_spec = importlib.util.spec_from_file_location(
    "demo", os.path.join(os.path.dirname(__file__), os.pardir, "demo.py")
)
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


def _tiny_config_file(tmp_path) -> str:
    """A randomly initialised R18-FPN Mask^X R-CNN for 128 px images, dumped to yaml."""
    cfg = get_cfg()
    maskx_d2.add_maskx_config(cfg)
    levels = ["res2", "res3", "res4", "res5"]
    cfg.merge_from_list(
        [
            "MODEL.META_ARCHITECTURE",
            "GeneralizedRCNN",
            "MODEL.WEIGHTS",
            "",
            "MODEL.MASK_ON",
            True,
            "MODEL.BACKBONE.NAME",
            "build_resnet_fpn_backbone",
            "MODEL.RESNETS.DEPTH",
            18,
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            64,
            "MODEL.RESNETS.OUT_FEATURES",
            levels,
            "MODEL.FPN.IN_FEATURES",
            levels,
            "MODEL.FPN.OUT_CHANNELS",
            64,
            "MODEL.ANCHOR_GENERATOR.SIZES",
            [[8], [16], [32], [64], [128]],
            "MODEL.RPN.IN_FEATURES",
            ["p2", "p3", "p4", "p5", "p6"],
            "MODEL.RPN.PRE_NMS_TOPK_TEST",
            200,
            "MODEL.RPN.POST_NMS_TOPK_TEST",
            50,
            "MODEL.ROI_HEADS.NAME",
            "MaskXROIHeads",
            "MODEL.ROI_HEADS.IN_FEATURES",
            ["p2", "p3", "p4", "p5"],
            "MODEL.ROI_HEADS.NUM_CLASSES",
            len(SYNTHETIC_CLASSES),
            "MODEL.ROI_BOX_HEAD.NAME",
            "FastRCNNConvFCHead",
            "MODEL.ROI_BOX_HEAD.NUM_FC",
            2,
            "MODEL.ROI_BOX_HEAD.FC_DIM",
            64,
            "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION",
            7,
            "MODEL.ROI_MASK_HEAD.NAME",
            "MaskXMaskHead",
            "MODEL.ROI_MASK_HEAD.NUM_CONV",
            2,
            "MODEL.ROI_MASK_HEAD.CONV_DIM",
            64,
            "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION",
            14,
            "MODEL.MASKX.TRANSFER.HIDDEN_DIM",
            64,
            "INPUT.MIN_SIZE_TEST",
            128,
            "INPUT.MAX_SIZE_TEST",
            128,
            "TEST.DETECTIONS_PER_IMAGE",
            5,
            "DATASETS.TRAIN",
            ("synthetic_shapes_v2_train",),
            "DATASETS.TEST",
            (),
        ]
    )
    path = tmp_path / "tiny.yaml"
    path.write_text(cfg.dump())
    return str(path)


def test_demo_writes_a_picture_of_the_input_size(tmp_path):
    json_path = generate_synthetic_shapes(str(tmp_path / "data"), "val", 1, 0)
    image_path = os.path.join(os.path.dirname(json_path), "images", "000000.png")
    torch.manual_seed(0)
    written = demo.main(
        [
            "--config-file",
            _tiny_config_file(tmp_path),
            "--input",
            os.path.dirname(image_path),
            "--output",
            str(tmp_path / "out"),
            "--confidence-threshold",
            "0.0",
            "--opts",
            "MODEL.DEVICE",
            "cpu",
        ]
    )
    assert written == [str(tmp_path / "out" / "000000.png")]
    with open(written[0], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    picture, original = cv2.imread(written[0]), cv2.imread(image_path)
    assert picture.shape == original.shape
    assert not np.array_equal(picture, original)  # detections were drawn


def test_synthetic_a_classes_come_from_metadata():
    names, mask_classes = partial_supervision_classes("synthetic_shapes_v2_train")
    assert names == SYNTHETIC_CLASSES
    assert mask_classes == [SYNTHETIC_CLASSES.index(n) for n in SYNTHETIC_MASK_CLASSES]
    shifted = partial_supervision_classes("synthetic_shapes_v2_shifted_train")[1]
    assert shifted == [SYNTHETIC_CLASSES.index(n) for n in SHIFTED_MASK_CLASSES]


def test_boxes_are_green_for_a_and_red_for_b():
    image = np.full((100, 120, 3), 128, np.uint8)
    instances = Instances((100, 120))
    instances.pred_boxes = Boxes(
        torch.tensor([[10.0, 30.0, 50.0, 80.0], [60.0, 40.0, 110.0, 90.0]])
    )
    instances.pred_classes = torch.tensor([0, 1])
    instances.scores = torch.tensor([0.9, 0.8])
    masks = torch.zeros(2, 100, 120, dtype=torch.bool)
    masks[0, 40:70, 20:40] = True
    masks[1, 50:80, 70:100] = True
    instances.pred_masks = masks

    out = draw_partial_predictions(image, instances, ["a_class", "b_class"], [0])
    assert out.shape == image.shape and out.dtype == np.uint8
    assert tuple(out[80, 30]) == MASK_CLASS_COLOR  # bottom edge of the A box
    assert tuple(out[60, 10]) == MASK_CLASS_COLOR  # left edge
    assert tuple(out[90, 85]) == BOX_ONLY_CLASS_COLOR  # bottom edge of the B box
    assert tuple(out[65, 110]) == BOX_ONLY_CLASS_COLOR  # right edge
    for y, x in [(55, 30), (65, 85)]:  # masks: tinted, still showing the image
        assert not np.array_equal(out[y, x], image[y, x])
        assert tuple(out[y, x]) not in (MASK_CLASS_COLOR, BOX_ONLY_CLASS_COLOR)
    np.testing.assert_array_equal(out[5, 115], image[5, 115])  # far from everything
    np.testing.assert_array_equal(image, 128)  # input untouched
