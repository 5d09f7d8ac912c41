"""Every YAML under configs/ loads; representative ones build a model (on the meta device)."""

import glob
import os

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from maskx_d2 import add_maskx_config

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "configs")
ALL_CONFIGS = sorted(glob.glob(os.path.join(CONFIG_DIR, "**", "*.yaml"), recursive=True))
LEAVES = [c for c in ALL_CONFIGS if not os.path.basename(c).startswith("Base-")]


def _load(path):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(path)
    return cfg


def _name(path):
    return os.path.relpath(path, CONFIG_DIR)


def test_there_are_configs_for_every_table_row():
    names = {_name(c) for c in LEAVES}
    for split in ("voc2nonvoc", "nonvoc2voc"):
        assert sum(n.startswith(f"COCO-{split}/table1_") for n in names) == 15
        assert sum(n.startswith(f"COCO-{split}/table2_") for n in names) == 6
    assert sum(n.startswith("COCO-randsplits/maskx_") for n in names) == 25


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=_name)
def test_config_loads(path):
    cfg = _load(path)
    assert cfg.MODEL.ROI_HEADS.NAME == "MaskXROIHeads"
    assert cfg.MODEL.ROI_MASK_HEAD.NAME == "MaskXMaskHead"
    assert cfg.MODEL.MASKX.MASK_PREDICTOR in ("transfer", "class_agnostic", "class_specific")
    if cfg.MODEL.MASKX.FREEZE_DETECTOR:
        assert cfg.MODEL.META_ARCHITECTURE == "MaskXRCNN"
        assert "faster_rcnn" in cfg.MODEL.WEIGHTS  # stage-wise starts from a Faster R-CNN


def test_paper_schedules():
    r50 = _load(
        os.path.join(
            CONFIG_DIR, "COCO-voc2nonvoc", "table2_maskx_R_50_FPN_e2e_1x_" "voc2nonvoc.yaml"
        )
    )
    assert (r50.SOLVER.IMS_PER_BATCH, r50.SOLVER.BASE_LR, r50.SOLVER.MAX_ITER) == (16, 0.02, 90000)
    assert tuple(r50.SOLVER.STEPS) == (60000, 80000) and r50.SOLVER.WARMUP_ITERS == 500
    assert r50.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE == 512 and r50.MODEL.MASKX.MLP_BRANCH.ENABLED
    r101 = _load(
        os.path.join(
            CONFIG_DIR, "COCO-nonvoc2voc", "table2_maskx_R_101_FPN_e2e_2x_" "nonvoc2voc.yaml"
        )
    )
    assert r101.MODEL.RESNETS.DEPTH == 101
    assert (r101.SOLVER.IMS_PER_BATCH, r101.SOLVER.BASE_LR, r101.SOLVER.MAX_ITER) == (
        8,
        0.01,
        180000,
    )
    assert r101.DATASETS.TRAIN == ("coco_2017_train_nonvoc2voc",)


# Random-split leaves differ from their base only in dataset names.
BUILT = [c for c in LEAVES if "COCO-randsplits" not in c]


@pytest.mark.parametrize("path", BUILT, ids=_name)
def test_config_builds_a_model(path, tmp_path):
    cfg = _load(path)
    if cfg.MODEL.MASKX.TRANSFER.INPUT == "embedding":
        emb = tmp_path / "emb.npy"
        np.save(emb, np.ones((cfg.MODEL.ROI_HEADS.NUM_CLASSES, 300), dtype=np.float32))
        cfg.MODEL.MASKX.TRANSFER.EMBEDDING_FILE = str(emb)
    cfg.MODEL.DEVICE = "meta"  # structure only: no memory, no init cost
    with torch.device("meta"):
        model = build_model(cfg)
    head = model.roi_heads.mask_head
    assert head.mask_predictor == cfg.MODEL.MASKX.MASK_PREDICTOR
    assert (head.mlp_branch is not None) == cfg.MODEL.MASKX.MLP_BRANCH.ENABLED
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if cfg.MODEL.MASKX.FREEZE_DETECTOR:
        assert all(not n.startswith("roi_heads.mask_head") for n in frozen)
        assert any(n.startswith("backbone") for n in frozen)
        assert any(n.startswith("roi_heads.box_predictor") for n in frozen)
