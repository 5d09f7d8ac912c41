"""PartiallySupervisedDatasetMapper on one image mixing polygons, RLE, and box-only instances."""

import copy

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, BoxMode, PolygonMasks

from maskx_d2 import add_maskx_config
from maskx_d2.data import PartiallySupervisedDatasetMapper
from maskx_d2.data.mapper import has_usable_segmentation

H, W = 40, 60


def _record(tmp_path, with_rle=True):
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), np.full((H, W, 3), 100, dtype=np.uint8))
    rle_mask = np.zeros((H, W), dtype=np.uint8, order="F")
    rle_mask[20:30, 40:55] = 1
    anns = [
        {
            "bbox": [2, 2, 10, 10],
            "category_id": 0,
            "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]],
        },  # polygon
        {"bbox": [20, 5, 10, 10], "category_id": 1},  # box-only: no key
        {"bbox": [5, 20, 10, 10], "category_id": 2, "segmentation": []},  # box-only: empty
        {"bbox": [30, 25, 8, 8], "category_id": 3, "segmentation": [[]]},  # box-only: [[]]
    ]
    if with_rle:
        rle = mask_util.encode(rle_mask)
        rle["counts"] = rle["counts"].decode()
        anns.append({"bbox": [40, 20, 15, 10], "category_id": 4, "segmentation": rle})
    for a in anns:
        a["bbox_mode"] = BoxMode.XYWH_ABS
        a["iscrowd"] = 0
    return {"file_name": str(path), "height": H, "width": W, "image_id": 1, "annotations": anns}


def _mapper(flip=False, mask_format="polygon", mask_on=True):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.MODEL.MASK_ON = mask_on
    cfg.INPUT.MASK_FORMAT = mask_format
    mapper = PartiallySupervisedDatasetMapper(cfg, is_train=True)
    # No resizing, so expected masks can be written in the image's own coordinates.
    mapper.augmentations = T.AugmentationList([T.RandomFlip(prob=1.0 if flip else 0.0)])
    return mapper


@pytest.mark.parametrize("flip", [False, True])
def test_mixed_image_keeps_every_box_and_only_real_masks(tmp_path, flip):
    out = _mapper(flip)(_record(tmp_path))["instances"]
    assert out.gt_classes.tolist() == [0, 1, 2, 3, 4]
    assert out.gt_has_mask.tolist() == [True, False, False, False, True]
    assert isinstance(out.gt_masks, BitMasks)  # an RLE in the image: all as bitmaps
    masks = out.gt_masks.tensor
    assert masks.shape == (5, H, W)
    assert masks[[1, 2, 3]].sum() == 0  # box-only instances get no mask at all
    x0 = W - 12 if flip else 2  # the polygon covers x in [2, 12) before flipping
    assert masks[0, 2:12, x0 : x0 + 10].all() and masks[0].sum() == 100
    rle_cols = slice(W - 55, W - 40) if flip else slice(40, 55)
    assert masks[4, 20:30, rle_cols].all() and masks[4].sum() == 150
    boxes = out.gt_boxes.tensor
    assert torch.allclose(
        boxes[1],
        torch.tensor([W - 30.0, 5, W - 20, 15]) if flip else torch.tensor([20.0, 5, 30, 15]),
    )


def test_polygon_only_image_stays_polygons(tmp_path):
    out = _mapper()(_record(tmp_path, with_rle=False))["instances"]
    assert isinstance(out.gt_masks, PolygonMasks)
    assert [len(p) for p in out.gt_masks.polygons] == [1, 0, 0, 0]
    assert out.gt_has_mask.tolist() == [True, False, False, False]
    assert out.gt_masks[out.gt_has_mask].area().tolist() == [100.0]


def test_bitmask_format_and_masks_off(tmp_path):
    out = _mapper(mask_format="bitmask")(_record(tmp_path, with_rle=False))["instances"]
    assert isinstance(out.gt_masks, BitMasks) and out.gt_has_mask.sum() == 1
    out = _mapper(mask_on=False)(_record(tmp_path))["instances"]
    assert not out.has("gt_masks") and not out.has("gt_has_mask") and len(out) == 5


def test_the_record_is_not_modified(tmp_path):
    record = _record(tmp_path)
    before = copy.deepcopy(record)
    _mapper()(record)
    assert record == before  # the dataset is reused every epoch


def test_crowd_and_zero_size_boxes_are_dropped(tmp_path):
    record = _record(tmp_path)
    record["annotations"][0]["iscrowd"] = 1
    record["annotations"][1]["bbox"] = [20, 5, 0, 10]
    out = _mapper()(record)["instances"]
    assert out.gt_classes.tolist() == [2, 3, 4]
    assert out.gt_has_mask.tolist() == [False, False, True]


def test_usable_segmentation_rule():
    assert has_usable_segmentation([[0, 0, 4, 0, 4, 4]])
    assert has_usable_segmentation({"size": [4, 4], "counts": "04L4"})
    for box_only in (
        None,
        [],
        [[]],
        [[1, 2, 3, 4]],
        {"size": [4, 4], "counts": ""},
        np.zeros((4, 4)),
    ):
        assert not has_usable_segmentation(box_only)
