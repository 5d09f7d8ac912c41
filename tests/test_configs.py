"""Every YAML under configs/ loads; representative ones build a model (on the meta device)."""

import glob
import os

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from maskx_d2 import add_maskx_config
from maskx_d2.blendmask import BlendMask
from maskx_d2.data.datasets.coco_splits import (
    COCO_CATEGORY_IDS,
    RANDOM_SPLIT_SIZES,
    RANDOM_SPLIT_TRIALS,
    random_splits,
)
from maskx_d2.deepmask import DeepMask
from maskx_d2.mnc import MNCROIHeads

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
    randsplit_leaves = sorted(n for n in names if n.startswith("COCO-randsplits/"))
    assert randsplit_leaves == sorted(
        f"COCO-randsplits/{method}_R_50_FPN_sw_1x_randsplit_E{trial}_A{n_a}.yaml"
        for method in ("transfer", "class_agnostic")
        for trial in RANDOM_SPLIT_TRIALS
        for n_a in RANDOM_SPLIT_SIZES
    )  # 25 splits x (Mask^X, class-agnostic baseline), nothing stale


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=_name)
def test_config_loads(path):
    cfg = _load(path)
    if cfg.MODEL.META_ARCHITECTURE == "BlendMask":  # another system: FCOS + blender
        assert cfg.MODEL.MASK_ON
        assert cfg.MODEL.FCOS.NUM_CLASSES in (16, 80)
        return
    if cfg.MODEL.META_ARCHITECTURE == "DeepMask":  # another system: class-agnostic windows
        dm = cfg.MODEL.DEEPMASK
        assert cfg.MODEL.MASK_ON and cfg.TEST.MASKX.PROPOSAL_RECALL
        assert dm.SCORE_OBJECTS in ("all", "masked", "masked_ignore")
        assert dm.IN_FEATURE in cfg.MODEL.RESNETS.OUT_FEATURES  # the trunk stops there
        assert dm.OBJECT_SIZE < dm.PATCH_SIZE and len(dm.SCALES_LOG2) >= 3
        return
    if cfg.MODEL.ROI_HEADS.NAME == "MNCROIHeads":  # another system: the MNC cascade
        assert cfg.MODEL.MASK_ON and cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
        assert cfg.MODEL.ROI_HEADS.NUM_CLASSES in (16, 80)
        assert cfg.MODEL.MNC.NUM_STAGES in (3, 5)
        assert cfg.MODEL.MNC.MASK_POOLING in ("soft", "hard", "none")
        mask_head = cfg.MODEL.ROI_MASK_HEAD
        assert mask_head.NAME == "MNCFCMaskHead" or mask_head.CLS_AGNOSTIC_MASK
        return
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


# detectron2's model zoo (detectron2/model_zoo/model_zoo.py): the paper's stage 1 is a 1x
# Faster R-CNN; detectron2 has none for R-101-FPN, so that one stays 3x.
FASTER_RCNN_R50_1X = (
    "detectron2://COCO-Detection/faster_rcnn_R_50_FPN_1x/137257794/model_final_b275ba.pkl"
)
FASTER_RCNN_R101_3X = (
    "detectron2://COCO-Detection/faster_rcnn_R_101_FPN_3x/137851257/model_final_f6e8b1.pkl"
)


def test_stagewise_starts_from_the_model_zoo_faster_rcnn():
    from detectron2.model_zoo.model_zoo import _ModelZooUrls

    zoo = _ModelZooUrls.CONFIG_PATH_TO_URL_SUFFIX
    for url in (FASTER_RCNN_R50_1X, FASTER_RCNN_R101_3X):
        # "detectron2://" + config path + "/" + suffix, as _ModelZooUrls.query builds it.
        group, config, suffix = url[len("detectron2://") :].split("/", 2)
        assert zoo[f"{group}/{config}"] == suffix
    assert "COCO-Detection/faster_rcnn_R_101_FPN_1x" not in zoo
    for split in ("voc2nonvoc", "nonvoc2voc", "randsplits"):
        d = os.path.join(CONFIG_DIR, f"COCO-{split}")
        assert _load(os.path.join(d, "Base-R_50_FPN-sw.yaml")).MODEL.WEIGHTS == FASTER_RCNN_R50_1X
    for split in ("voc2nonvoc", "nonvoc2voc"):
        r101 = _load(os.path.join(CONFIG_DIR, f"COCO-{split}", "Base-R_101_FPN-sw.yaml"))
        assert r101.MODEL.WEIGHTS == FASTER_RCNN_R101_3X and r101.MODEL.RESNETS.DEPTH == 101
    # Every stage-wise leaf of Table 1 and Figure 3 starts from the R-50 1x detector.
    for path in (c for c in LEAVES if _name(c).startswith("COCO-")):
        cfg = _load(path)
        if cfg.MODEL.MASKX.FREEZE_DETECTOR:
            assert cfg.MODEL.RESNETS.DEPTH == 50, _name(path)
            assert cfg.MODEL.WEIGHTS == FASTER_RCNN_R50_1X, _name(path)


RANDSPLIT_LEAVES = [c for c in LEAVES if "COCO-randsplits" in c]


@pytest.mark.parametrize("path", RANDSPLIT_LEAVES, ids=_name)
def test_random_split_configs_are_figure3(path):
    """Figure 3: stage-wise, transfer cls+box 2-layer LeakyReLU without MLP vs class-agnostic."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    cfg = _load(path)
    method, split = os.path.basename(path)[: -len(".yaml")].split("_R_50_FPN_sw_1x_")
    # Stage-wise exactly like Table 1's sw rows: frozen 1x detector, MaskXRCNN.
    assert cfg.MODEL.MASKX.FREEZE_DETECTOR and cfg.MODEL.META_ARCHITECTURE == "MaskXRCNN"
    assert cfg.MODEL.WEIGHTS == FASTER_RCNN_R50_1X and cfg.MODEL.RESNETS.DEPTH == 50
    assert not cfg.MODEL.MASKX.MLP_BRANCH.ENABLED
    assert cfg.MODEL.MASKX.MASK_PREDICTOR == method
    if method == "transfer":
        t = cfg.MODEL.MASKX.TRANSFER
        assert (t.INPUT, t.NUM_LAYERS, t.ACTIVATION) == ("cls+box", 2, "leaky_relu")
    # The paper's schedule (R-50, 1x), as Table 1.
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER) == (16, 0.02, 90000)
    # Datasets: registered, and A is maskx_d2's random split of that trial and size.
    assert cfg.DATASETS.TRAIN == (f"coco_2017_train_{split}",)
    assert cfg.DATASETS.TEST == (f"coco_2017_val_{split}",)
    expected_a = sorted(COCO_CATEGORY_IDS[i] for i in random_splits()[split])
    assert len(expected_a) == int(split.rsplit("_A", 1)[1])
    for name in cfg.DATASETS.TRAIN + cfg.DATASETS.TEST:
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.split_name == split
        assert list(meta.mask_category_ids) == expected_a


# Random-split leaves differ from their base only in dataset names and the mask predictor:
# build one split of each.
BUILT = [c for c in LEAVES if "COCO-randsplits" not in c or c.endswith("_E1_A20.yaml")]


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
    if isinstance(model, BlendMask):
        blendmask = cfg.MODEL.BLENDMASK
        attention = blendmask.NUM_BASES * blendmask.ATTENTION_RESOLUTION**2
        assert model.head.top_layer.out_channels == attention
        assert model.head.cls_score.out_channels == cfg.MODEL.FCOS.NUM_CLASSES
        return
    if isinstance(model, DeepMask):
        dm = cfg.MODEL.DEEPMASK
        assert "res5" not in model.backbone.output_shape()  # the trunk without its last stage
        assert model.window * model.stride == dm.PATCH_SIZE
        # The low-rank FC: window features -> rank -> mask, and the score's one logit.
        segmentation = model.segmentation_branch
        assert segmentation.to_rank.in_features == dm.MASK_CONV_DIM * model.window**2
        assert segmentation.to_rank.out_features == segmentation.to_mask.in_features
        assert segmentation.to_mask.out_features == dm.MASK_SIZE**2
        assert [fc.out_features for fc in model.score_branch.fcs] == list(dm.SCORE_FC_DIMS) + [1]
        assert len(model.scales) == len(dm.SCALES_LOG2)
        return
    if isinstance(model.roi_heads, MNCROIHeads):
        heads = model.roi_heads
        assert heads.num_stages == cfg.MODEL.MNC.NUM_STAGES
        # Stage 2 is class-agnostic: one mask per RoI, at twice the pooler's side.
        side = cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION
        pooled = torch.empty(3, cfg.MODEL.FPN.OUT_CHANNELS, side, side, device="meta")
        assert heads.mask_head.layers(pooled).shape == (3, 1, 2 * side, 2 * side)
        # Stage 3 reads the box head's and the mask pathway's outputs, concatenated.
        assert (heads.mask_pathway_head is None) == (cfg.MODEL.MNC.MASK_POOLING == "none")
        width = heads.box_head.output_shape.channels
        if heads.mask_pathway_head is not None:
            width += heads.mask_pathway_head.output_shape.channels
        assert heads.box_predictor.cls_score.in_features == width
        assert heads.box_predictor.cls_score.out_features == cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1
        return
    head = model.roi_heads.mask_head
    assert head.mask_predictor == cfg.MODEL.MASKX.MASK_PREDICTOR
    assert (head.mlp_branch is not None) == cfg.MODEL.MASKX.MLP_BRANCH.ENABLED
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if cfg.MODEL.MASKX.FREEZE_DETECTOR:
        assert all(not n.startswith("roi_heads.mask_head") for n in frozen)
        assert any(n.startswith("backbone") for n in frozen)
        assert any(n.startswith("roi_heads.box_predictor") for n in frozen)
