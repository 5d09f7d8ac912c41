"""On fully annotated data Mask^X R-CNN's parts reduce to detectron2's plain Mask R-CNN.

With every instance masked, the project's model with the class-specific mask predictor (the
fully supervised oracle of the paper's tables) and its training mapper must be detectron2's
Mask R-CNN and ``DatasetMapper``: the oracle rows are only a fair upper bound if nothing but the
supervision differs. tests/test_mask_head.py pins the class-specific mask head alone against
``MaskRCNNConvUpsampleHead``; here the whole model (``MaskXRCNN`` + ``MaskXROIHeads`` +
``MaskXMaskHead``, built from configs/Synthetic/oracle_R_18_FPN_synthetic.yaml, shrunk) is
compared with ``GeneralizedRCNN`` + ``StandardROIHeads`` + ``MaskRCNNConvUpsampleHead`` for the
same weights and inputs, and ``PartiallySupervisedDatasetMapper`` with ``DatasetMapper`` for the
same records and augmentation seeds.
"""

import copy
import os

import cv2
import numpy as np
import pytest
import torch
from coco_fixtures import compressed_rle
from detectron2.config import get_cfg
from detectron2.data import DatasetMapper
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, BoxMode, Instances, PolygonMasks
from detectron2.structures.masks import polygons_to_bitmask
from detectron2.utils.events import EventStorage
from model_fixtures import square, triangle
from torch.testing import assert_close

from maskx_d2 import add_maskx_config
from maskx_d2.data import PartiallySupervisedDatasetMapper

ORACLE = os.path.join(
    os.path.dirname(__file__), "..", "configs", "Synthetic", "oracle_R_18_FPN_synthetic.yaml"
)
K = 6  # foreground classes; the inputs hold classes 0-4, none of class 5
LOSSES = {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"}

# ---------------------------------------------------------------------------------------------
# The model: MaskXRCNN + MaskXROIHeads + MaskXMaskHead("class_specific") vs detectron2's.


def _model_cfg():
    """The synthetic oracle config (MaskXRCNN, MaskXROIHeads, MaskXMaskHead with
    MASK_PREDICTOR "class_specific"), R-18-FPN with narrow heads, on CPU."""
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(ORACLE)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = K
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # random weights: keep every detection
    cfg.MODEL.ROI_BOX_HEAD.CONV_DIM = 16
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    cfg.TEST.DETECTIONS_PER_IMAGE = 20
    return cfg


def _model_pair():
    """(Mask^X model, detectron2 model) with identical weights, in that order."""
    cfg = _model_cfg()
    assert cfg.MODEL.MASKX.MASK_PREDICTOR == "class_specific"
    reference_cfg = cfg.clone()
    reference_cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    reference_cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    reference_cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    torch.manual_seed(0)
    ours, reference = build_model(cfg), build_model(reference_cfg)
    assert (type(ours).__name__, type(ours.roi_heads).__name__) == ("MaskXRCNN", "MaskXROIHeads")
    assert type(ours.roi_heads.mask_head).__name__ == "MaskXMaskHead"
    assert type(reference.roi_heads.mask_head).__name__ == "MaskRCNNConvUpsampleHead"
    with torch.no_grad():
        # detectron2 starts the mask predictor at std 0.001 and the classifier at std 0.01:
        # every mask probability would be ~0.5 and every score ~1/(K+1), which would hide a
        # mask of the wrong class. Spread them so each class gives clearly different outputs.
        predictor = ours.roi_heads.mask_head.predictor
        assert predictor.weight.shape[0] == K  # one mask channel per class
        predictor.weight.normal_(std=0.5)
        predictor.bias.copy_(torch.linspace(-1, 1, K))
        ours.roi_heads.box_predictor.cls_score.weight.normal_(std=0.3)
    # Same parameter and buffer names: a detectron2 Mask R-CNN checkpoint loads strictly.
    assert ours.state_dict().keys() == reference.state_dict().keys()
    reference.load_state_dict(ours.state_dict(), strict=True)
    return ours, reference


def _shape_image(size, polygons, colours, rng):
    """Noise with each polygon filled in its colour, as a (3, H, W) uint8 BGR tensor."""
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    for parts, colour in zip(polygons, colours):
        for part in parts:
            cv2.fillPoly(
                image, [np.asarray(part, np.float32).reshape(-1, 2).astype(np.int32)], colour
            )
    return torch.as_tensor(image.transpose(2, 0, 1).copy())


def _fully_masked_inputs(gt_has_mask):
    """Three images of different sizes whose instances all have masks, as a model's input.

    ``gt_has_mask``: add the all-True field that PartiallySupervisedDatasetMapper gives (True),
    or leave it out as detectron2's DatasetMapper does (False). ``height``/``width`` are the
    original sizes (twice the image's), so the postprocessing rescales boxes and masks.
    """
    rng = np.random.default_rng(0)
    layouts = [
        ((64, 64), [triangle(4, 4, 26), square(30, 28, 30)], [1, 3]),
        ((48, 80), [square(2, 2, 20), triangle(40, 6, 36), square(60, 30, 14)], [0, 4, 1]),
        ((72, 56), [triangle(6, 8, 40) + square(30, 50, 16)], [2]),  # a two-part polygon
    ]
    inputs = []
    for (h, w), polygons, classes in layouts:
        masks = PolygonMasks(polygons)
        instances = Instances((h, w))
        instances.gt_boxes = masks.get_bounding_boxes()
        instances.gt_classes = torch.tensor(classes)
        instances.gt_masks = masks
        if gt_has_mask:
            instances.gt_has_mask = torch.ones(len(classes), dtype=torch.bool)
        colours = [(40 * c, 255 - 40 * c, 128) for c in classes]
        image = _shape_image((h, w), polygons, colours, rng)
        inputs.append({"image": image, "instances": instances, "height": 2 * h, "width": 2 * w})
    return inputs


def _train_step(model, inputs):
    """Losses of one training forward (proposal sampling seeded), after backward."""
    model.train()
    torch.manual_seed(0)  # RPN and ROI sampling draw from the global RNG
    with EventStorage():
        losses = model(copy.deepcopy(inputs))
    sum(losses.values()).backward()
    return losses


def _detections(model, inputs, postprocess):
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        outputs = model.inference(copy.deepcopy(inputs), do_postprocess=postprocess)
    return [o["instances"] for o in outputs] if postprocess else outputs


@pytest.mark.parametrize(
    "gt_has_mask", [True, False], ids=["gt_has_mask-all-true", "no-gt_has_mask"]
)
def test_oracle_trains_like_detectron2_mask_rcnn(gt_has_mask):
    """Training: the same five losses and the same gradient on every parameter.

    Pins that MaskXROIHeads' mask-supervised RoI selection keeps every foreground RoI when every
    instance has a mask (marked so by the mapper, or implied by gt_masks alone), and that the
    per-RoI gathered mask weights give detectron2's loss and gradients, also to the rows of the
    classes absent from the batch (zero in both).
    """
    ours, reference = _model_pair()
    inputs = _fully_masked_inputs(gt_has_mask)
    losses, expected = _train_step(ours, inputs), _train_step(reference, inputs)
    assert set(losses) == set(expected) == LOSSES
    assert expected["loss_mask"] > 0
    assert_close(losses, expected)
    mask_params = list(ours.roi_heads.mask_head.parameters())
    assert all(p.grad is not None and p.grad.any() for p in mask_params)
    assert not ours.roi_heads.mask_head.predictor.weight.grad[K - 1].any()  # class 5: absent
    reference_params = dict(reference.named_parameters())
    for name, param in ours.named_parameters():
        assert_close(param.grad, reference_params[name].grad, msg=lambda m: f"{name}: {m}")


def test_oracle_predicts_like_detectron2_mask_rcnn():
    """Inference: the same boxes, scores, classes and masks, before postprocessing (M x M mask
    probabilities of each detection's class) and after it (boxes rescaled to the original size,
    masks pasted into the image and thresholded)."""
    ours, reference = _model_pair()
    inputs = _fully_masked_inputs(gt_has_mask=True)
    for postprocess in (False, True):
        detections = _detections(ours, inputs, postprocess)
        expected = _detections(reference, inputs, postprocess)
        assert len(detections) == len(expected) == len(inputs)
        for got, want, x in zip(detections, expected, inputs):
            assert got.get_fields().keys() == want.get_fields().keys()
            assert len(want) == 20 and want.pred_classes.unique().numel() > 1
            assert_close(got.pred_boxes.tensor, want.pred_boxes.tensor)
            assert_close(got.scores, want.scores)
            assert_close(got.pred_classes, want.pred_classes, rtol=0, atol=0)
            if postprocess:
                assert got.image_size == (x["height"], x["width"])
                assert got.pred_masks.dtype == torch.bool
                # Thresholded at 0.5: no pasted probability here lies within 5e-6 of 0.5, and
                # the soft masks differ by at most ~2e-7 (1x1 conv vs per-RoI gathered weight).
                assert_close(got.pred_masks, want.pred_masks, rtol=0, atol=0)
            else:
                assert got.pred_masks.shape == (len(want), 1, 14, 14)
                assert want.pred_masks.std() > 0.05  # not all ~0.5: a wrong class would show
                assert_close(got.pred_masks, want.pred_masks)


# ---------------------------------------------------------------------------------------------
# The data: PartiallySupervisedDatasetMapper vs detectron2's DatasetMapper.

H, W = 60, 80


def _ring(cx, cy, outer, inner):
    """A binary (H, W) ring: the RLE instance (it has a hole, which one polygon cannot hold)."""
    yy, xx = np.mgrid[:H, :W]
    d2 = (xx - cx) ** 2 + (yy - cy) ** 2
    return ((d2 <= outer**2) & (d2 > inner**2)).astype(np.uint8)


def _annotation(category_id, segmentation, box):
    return {
        "bbox": box,
        "bbox_mode": BoxMode.XYXY_ABS,
        "category_id": category_id,
        "segmentation": segmentation,
        "iscrowd": 0,
    }


def _fully_annotated_record(tmp_path, segmentations):
    """One image on disk whose instances all have masks: a triangle, a square, a two-part
    polygon and a ring (it has a hole, which one polygon cannot hold). Boxes are the tight boxes
    of the masks, as in COCO.

    ``segmentations``: "polygon" (the ring left out), "mixed" (the ring as compressed RLE, as
    load_coco_json gives it) or "rle" (every mask as compressed RLE).
    """
    path = str(tmp_path / "image.png")
    cv2.imwrite(path, np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8))
    polygons = [triangle(3, 4, 30), square(44, 6, 20), triangle(10, 40, 16) + square(30, 44, 12)]
    masks = [polygons_to_bitmask(p, H, W) for p in polygons] + [_ring(60, 42, 14, 6)]
    boxes = BitMasks(torch.as_tensor(np.stack(masks))).get_bounding_boxes().tensor.tolist()
    annotations = []
    for k, (mask, box) in enumerate(zip(masks, boxes)):
        if k < len(polygons) and segmentations != "rle":
            annotations.append(_annotation(k, polygons[k], box))
        elif segmentations != "polygon":
            annotations.append(_annotation(k, compressed_rle(mask), box))
    return {"file_name": path, "height": H, "width": W, "image_id": 1, "annotations": annotations}


def _mapper_cfg(mask_format, crop):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MASK_FORMAT = mask_format
    cfg.INPUT.MIN_SIZE_TRAIN = (48, 64, 96)  # chosen at random per image, as is the flip
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
    cfg.INPUT.MAX_SIZE_TRAIN = 160
    cfg.INPUT.MIN_SIZE_TEST = 72
    cfg.INPUT.MAX_SIZE_TEST = 160
    cfg.INPUT.RANDOM_FLIP = "horizontal"
    # Cropping (before resizing) makes both mappers recompute boxes from the masks. Cropping
    # polygons needs shapely, which is not installed here: crops are tested on RLE masks.
    cfg.INPUT.CROP.ENABLED = crop
    cfg.INPUT.CROP.TYPE = "relative_range"
    cfg.INPUT.CROP.SIZE = [0.5, 0.5]
    return cfg


def _map_both(cfg, is_train, record, seed):
    """(ours, detectron2's) output for ``record``, each drawing augmentations from ``seed``."""
    outputs = []
    for mapper_class in (PartiallySupervisedDatasetMapper, DatasetMapper):
        mapper = mapper_class(cfg, is_train=is_train)
        np.random.seed(seed)  # detectron2's augmentations draw from numpy's global RNG
        outputs.append(mapper(copy.deepcopy(record)))
    return outputs


MAPPED = {"image", "instances"}  # what a training mapper adds to the record (annotations go)


def _assert_same_training_output(ours, reference, record):
    """The same dict, image and gt_boxes/gt_classes/gt_masks (same mask type); our extra
    gt_has_mask all True."""
    assert ours.keys() == reference.keys() == (record.keys() - {"annotations"}) | MAPPED
    assert_close(ours["image"], reference["image"], rtol=0, atol=0)
    got, want = ours["instances"], reference["instances"]
    assert got.get_fields().keys() - {"gt_has_mask"} == want.get_fields().keys()
    assert got.gt_has_mask.dtype == torch.bool and got.gt_has_mask.all()
    assert got.image_size == want.image_size and len(want) > 0
    assert_close(got.gt_classes, want.gt_classes, rtol=0, atol=0)
    assert_close(got.gt_boxes.tensor, want.gt_boxes.tensor, rtol=0, atol=0)
    assert type(got.gt_masks) is type(want.gt_masks)
    if isinstance(want.gt_masks, PolygonMasks):
        assert [len(p) for p in got.gt_masks.polygons] == [len(p) for p in want.gt_masks.polygons]
        for got_parts, want_parts in zip(got.gt_masks.polygons, want.gt_masks.polygons):
            for a, b in zip(got_parts, want_parts):
                assert_close(a, b, rtol=0, atol=0)
    else:
        assert_close(got.gt_masks.tensor, want.gt_masks.tensor, rtol=0, atol=0)


# (mask format, segmentations, crop). detectron2 needs MASK_FORMAT "bitmask" for RLE.
TRAIN_CASES = {
    "polygon": ("polygon", "polygon", False),
    "bitmask-polygon": ("bitmask", "polygon", False),
    "bitmask-mixed": ("bitmask", "mixed", False),
    "bitmask-rle-crop": ("bitmask", "rle", True),
}


@pytest.mark.parametrize(
    "mask_format, segmentations, crop", list(TRAIN_CASES.values()), ids=list(TRAIN_CASES)
)
def test_training_mapper_equals_detectron2_dataset_mapper(
    tmp_path, mask_format, segmentations, crop
):
    """Training mode, several augmentation seeds (scale, flip, crop): the same image tensor and
    the same gt_boxes, gt_classes and gt_masks (same mask type, polygons or bitmaps) as
    detectron2's DatasetMapper. The project's extra field gt_has_mask must be all True.

    Pins that the partial-mask bookkeeping (masks transformed apart from boxes, placeholders,
    per-image mask format, boxes recomputed only for masked instances after a crop) is a no-op
    on fully annotated data, so the oracle is trained on exactly Mask R-CNN's targets. (None of
    these seeds crops a mask away entirely while keeping part of its box: that case differs, see
    the next test.)
    """
    record = _fully_annotated_record(tmp_path, segmentations)
    cfg = _mapper_cfg(mask_format, crop)
    for seed in range(8):
        ours, reference = _map_both(cfg, True, record, seed)
        try:
            _assert_same_training_output(ours, reference, record)
        except AssertionError as e:
            raise AssertionError(f"augmentation seed {seed}: {e}") from e


def test_crop_that_removes_a_mask_drops_the_instance_like_detectron2(tmp_path):
    """A fixed crop over the empty corner of the triangle's box: x, y >= 22 holds none of the
    triangle (x + y <= 37) but 10 x 11 pixels of its box [3, 4, 32, 33]. detectron2 (boxes
    recomputed from masks, INPUT.CROP.ENABLED with MASK_ON) drops the triangle; the training
    mapper must too, or the detector is taught a box of class 0 on background."""
    record = _fully_annotated_record(tmp_path, "rle")
    assert record["annotations"][0]["bbox"] == [3.0, 4.0, 32.0, 33.0]
    cfg = _mapper_cfg("bitmask", crop=True)
    outputs = []
    for mapper_class in (PartiallySupervisedDatasetMapper, DatasetMapper):
        mapper = mapper_class(cfg, is_train=True)
        assert mapper.recompute_boxes
        mapper.augmentations = T.AugmentationList([T.CropTransform(22, 22, 40, 30)])
        outputs.append(mapper(copy.deepcopy(record)))
    ours, reference = outputs
    assert reference["instances"].gt_classes.tolist() == [1, 2, 3]  # the triangle is gone
    _assert_same_training_output(ours, reference, record)


@pytest.mark.parametrize("mask_format", ["polygon", "bitmask"])
def test_test_mapper_equals_detectron2_dataset_mapper(tmp_path, mask_format):
    """Test mode: the same dict (image resized to MIN_SIZE_TEST, annotations dropped, no
    instances) as detectron2's DatasetMapper; evaluation sees the same inputs."""
    segmentations = "mixed" if mask_format == "bitmask" else "polygon"
    record = _fully_annotated_record(tmp_path, segmentations)
    ours, reference = _map_both(_mapper_cfg(mask_format, crop=False), False, record, seed=0)
    assert ours.keys() == reference.keys() == (record.keys() - {"annotations"}) | {"image"}
    assert ours["image"].shape == (3, 72, 96)
    assert_close(ours["image"], reference["image"], rtol=0, atol=0)
    assert {k: v for k, v in ours.items() if k != "image"} == {
        k: v for k, v in reference.items() if k != "image"
    }
