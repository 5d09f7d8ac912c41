"""Loading checkpoints whose class count or heads differ, in detectron2's .pth and .pkl formats."""

import logging
import os
import pickle

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from maskx_d2 import add_maskx_config
from maskx_d2.checkpoint import MaskXCheckpointer

BASE = os.path.join(
    os.path.dirname(__file__), "..", "configs", "Synthetic", "Base-Synthetic-R-18-FPN.yaml"
)


def _model(num_classes, predictor="transfer", mask_on=True, seed=0):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(BASE)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.MASKX.MASK_PREDICTOR = predictor
    cfg.MODEL.MASK_ON = mask_on
    torch.manual_seed(seed)
    return build_model(cfg)


@pytest.fixture
def summary_log(caplog):
    logger = logging.getLogger("maskx_d2.checkpoint")
    logger.addHandler(caplog.handler)  # train_net's setup_logger stops propagation to root
    logger.setLevel(logging.INFO)
    yield lambda: "\n".join(r.getMessage() for r in caplog.records if "summary" in r.getMessage())
    logger.removeHandler(caplog.handler)


def test_mask_rcnn_with_other_class_count_into_maskx(tmp_path, summary_log):
    """A 5-class plain Mask R-CNN (.pth) into a 7-class Mask^X model."""
    source = _model(5, "class_specific", seed=1)
    DetectionCheckpointer(source, save_dir=str(tmp_path)).save("mask_rcnn_5cls")
    target = _model(7, "transfer", seed=2)
    MaskXCheckpointer(target).load(str(tmp_path / "mask_rcnn_5cls.pth"))

    src, dst = source.state_dict(), target.state_dict()
    for key in (
        "backbone.bottom_up.stem.conv1.weight",
        "roi_heads.box_head.fc1.weight",
        "roi_heads.mask_head.mask_fcn1.weight",
        "proposal_generator.rpn_head.conv.weight",
    ):
        assert torch.equal(src[key], dst[key]), key
    # Per-class box predictor rows cannot be reused: re-initialized, not half-loaded.
    assert (
        not torch.equal(
            dst["roi_heads.box_predictor.cls_score.bias"][:5],
            src["roi_heads.box_predictor.cls_score.bias"][:5],
        )
        or src["roi_heads.box_predictor.cls_score.bias"].abs().sum() == 0
    )
    log = summary_log()
    assert "roi_heads.box_predictor.cls_score.weight (6, 128)->(8, 128)" in log
    assert "roi_heads.mask_head.transfer" in log  # absent from a Mask R-CNN: initialized
    assert "roi_heads.mask_head.predictor" in log  # a Mask R-CNN's per-class masks: unused


def test_model_zoo_pkl_faster_rcnn_into_maskx(tmp_path, summary_log):
    """A Faster R-CNN (no mask head) saved like detectron2's model zoo .pkl files."""
    source = _model(7, mask_on=False, seed=3)
    path = tmp_path / "faster_rcnn.pkl"
    with open(path, "wb") as f:
        pickle.dump(
            {
                "model": {k: v.numpy() for k, v in source.state_dict().items()},
                "__author__": "Detectron2 Model Zoo",
                "matching_heuristics": True,
            },
            f,
        )
    target = _model(7, "transfer", seed=4)
    MaskXCheckpointer(target).load(str(path))
    src, dst = source.state_dict(), target.state_dict()
    assert all(torch.equal(src[k], dst[k]) for k in src if "pixel_" not in k)
    log = summary_log()
    loaded = int(log.split("Checkpoint summary: ")[1].split(" of ")[0])
    assert loaded == len([k for k in src if "pixel_" not in k])
    assert "roi_heads.mask_head" in log  # the whole mask branch starts from its init


def test_missing_checkpoint_file_is_a_clear_error(tmp_path):
    with pytest.raises((FileNotFoundError, AssertionError), match="missing.pth"):
        MaskXCheckpointer(_model(3)).load(str(tmp_path / "missing.pth"))
