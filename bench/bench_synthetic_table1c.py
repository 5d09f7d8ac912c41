#!/usr/bin/env python
"""Table 1c v2 on the embedded synthetic shapes v2: mask heads compared over several seeds.

Each variant is the main job's config and schedule (train_net.py, ResNet-18-FPN from scratch)
with another mask head; every run ends with the A/B evaluation, GT-box metrics included. For
each variant the table gives box AP, mask AP and the GT-box mean mask IoU (masks predicted on
the ground-truth boxes, so detection plays no part) as the mean and min-max over seeds, and the
share of the class-agnostic -> oracle gap on B that the head closes (GT-box mIoU on B):
``(head - class-agnostic) / (oracle - class-agnostic)``, from the seed means.

    python bench/bench_synthetic_table1c.py --seeds 42 1 2 --output docs/table1c_v2_cpu.md
    python bench/bench_synthetic_table1c.py --variants class-agnostic oracle --seeds 42
    python bench/bench_synthetic_table1c.py --iters 16000 --device cuda ...  # 10x, on a GPU
    python bench/bench_synthetic_table1c.py --report-only --work-dir ...     # re-tabulate
    python bench/bench_synthetic_table1c.py --pretrained-backbone output/R18_shapes.pth \
        --work-dir output/bench_table1c_v2_pretrained          # on the "ImageNet" stage

``--pretrained-backbone PATH`` puts every run on the benchmark's "ImageNet" stage, as the paper's
backbone starts from ImageNet: the checkpoint ``PATH`` (made once by
tools/pretrain_synthetic_backbone.py with its default settings when it does not exist, then
reused) becomes each run's ``MODEL.WEIGHTS``. Use a work dir of its own: the gap shares compare
the runs of one work dir, which must share one footing.

The ``sw-*`` variants are the paper's stage-wise rows: each seed's Faster R-CNN
(``seed<s>/detector``, trained first when missing) is frozen and only the mask branch trains;
their own table measures the gap to the stage-wise oracle.

Runs that already finished (their metrics.json holds the final evaluation) are not trained
again, so an interrupted bench resumes where it stopped. ``--jobs 2`` trains two runs at once
with one thread each, which on a 2-core CPU finishes sooner than one run after the other.
"""

import argparse
import collections
import functools
import glob
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import yaml

from maskx_d2.numerics_environment import NUMERICS_LOG_PREFIX, cpu_model_name

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONFIGS = "configs/Synthetic"
MAIN_VAL, SHIFTED_VAL = "synthetic_shapes_v2_val", "synthetic_shapes_v2_shifted_val"
SHIFTED_TRAIN = ("DATASETS.TRAIN", "('synthetic_shapes_v2_shifted_train',)")
A12_VAL = "synthetic_shapes_v2_a12_val"
A12_TRAIN = ("DATASETS.TRAIN", "('synthetic_shapes_v2_a12_train',)")
BAND_VAL = "synthetic_shapes_v2_band_val"
BAND_TRAIN = ("DATASETS.TRAIN", "('synthetic_shapes_v2_band_train',)")
# The scene variants (maskx_d2/data/datasets/synthetic): the main split's classes on other
# images, one change to the scene each. Label of each in the report.
SCENE_VARIANT_LABELS = {
    "thickbars": "thick bars (bars 1.6 times thicker)",
    "plain": "plain objects (no stripes, no accessory blobs)",
    "wholebars": "plain objects, whole bars (inside the image, never covered)",
    "wholebars_striped": "whole bars, objects striped as in the first scene",
    "wholebars_striped_noblobs": "whole bars, striped objects without accessory blobs",
    "wholebars_shadestripes": "whole bars, stripes in a shade of the object's colour, no blobs",
}
# Options beyond the paper (README, "Beyond the paper"), each on top of a head of Table 1c.
LINEAR_T = ("MODEL.MASKX.TRANSFER.NUM_LAYERS", "1")


# The ranks of the linear T measured on each split (bench keys transfer-mlp-rank<r>,
# band-transfer-mlp-rank<r>). Rank 16, on the band split only, is above what 8 classes with
# masks can pin down: it asks whether the rank or the factored form (two linear layers) helps.
LOW_RANKS = (2, 4, 8)
BAND_LOW_RANKS = (*LOW_RANKS, 16)


def low_rank_t(rank: int):
    """Config options of a linear T of rank <= ``rank`` (FC to ``rank`` numbers, no activation,
    FC to the mask width): the 8 classes with masks can no longer each get an arbitrary mask
    weight (an affine T of full rank fits any 8 targets, so nothing in training ties A's weights
    to the structure B's are predicted from)."""
    return (
        "MODEL.MASKX.TRANSFER.NUM_LAYERS",
        "2",
        "MODEL.MASKX.TRANSFER.HIDDEN_DIM",
        str(rank),
        "MODEL.MASKX.TRANSFER.ACTIVATION",
        "none",
    )


# T fed with each class's shape and colour (one-hot, maskx_d2...synthetic.class_attributes) instead
# of the detector's weights: the synthetic counterpart of the paper's GloVe row (Table 1a). The
# committed file of configs/Synthetic/maskx_attributes_R_18_FPN_synthetic.yaml (the main job's T),
# relative to the repository root, where the runs start. (Until 2026-12-04 the bench wrote the
# same array, class_attributes(), into each work folder and the runs read that copy.)
ATTRIBUTES_FILE = "datasets/embeddings/synthetic16_attributes.npy"
ATTRIBUTES = (
    "MODEL.MASKX.TRANSFER.INPUT",
    "embedding",
    "MODEL.MASKX.TRANSFER.EMBEDDING_FILE",
    ATTRIBUTES_FILE,
)
PROJECTION = ("MODEL.MASKX.BOX_SUPERVISION.PROJECTION_WEIGHT", "1.0")
BOXINST = (
    "MODEL.MASKX.BOX_SUPERVISION.PROJECTION_WEIGHT",
    "1.0",
    "MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WEIGHT",
    "1.0",
)
# BoxInst ramps the pairwise loss in over its first 10k of 90k iterations, so that the projection
# loss shapes the masks first: the same share of the main job's 1600.
PAIRWISE_WARMUP = ("MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WARMUP_ITERS", "200")
GT_BOXES = ("MODEL.MASKX.MASK_TRAIN_BOXES", "both", "MODEL.MASKX.GT_BOX_JITTER", "0.05")
# Box-only instances also train on their ground-truth boxes grown by half their size on every
# side: the box then fills half the grid's side, so "all foreground" costs the projection loss
# a third of each projection's dice (on a proposal, which hugs the box, about a tenth) and the
# pairs across the box's edge are many. BoxInst's whole-image masks have that margin for free.
PADDED_GT_BOXES = (*GT_BOXES, "MODEL.MASKX.BOX_SUPERVISION.GT_BOX_PADDING", "0.5")
# The best combination (configs/Synthetic/maskx_boxsup_R_18_FPN_synthetic.yaml): the padded
# set-up with a gentler pairwise loss, a quarter of BoxInst's weight, on colours averaged over
# 3 x 3 pixels; and its two changes undone one at a time, to tell which one matters.
BOXSUP = "maskx_boxsup_R_18_FPN_synthetic.yaml"
FULL_PAIRWISE_WEIGHT = ("MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WEIGHT", "1.0")
UNSMOOTHED_COLOURS = ("MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_COLOUR_SMOOTHING", "1")
RESIDUAL = ("MODEL.MASKX.HEAD.ARCHITECTURE", "residual", "MODEL.MASKX.HEAD.NUM_BLOCKS", "4")
# Deep-MARC's head family at the benchmark's scale: as its recipe doubles the RoI side (14 -> 32
# on COCO), 7 -> 14 here (28 x 28 masks), and three halvings (14, 7, 4, 2) instead of five.
HOURGLASS = (
    "MODEL.MASKX.HEAD.ARCHITECTURE",
    "hourglass",
    "MODEL.MASKX.HEAD.HOURGLASS_CHANNELS",
    "[64, 64, 96, 128]",
    "MODEL.MASKX.HEAD.HOURGLASS_BLOCKS",
    "[1, 1, 1, 2]",
    "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION",
    "14",
)
# On a config built on transfer+MLP with the paper's default T (class activation prior, box
# supervision): its head made class-agnostic.
CLASS_AGNOSTIC = (
    "MODEL.MASKX.MASK_PREDICTOR",
    "class_agnostic",
    "MODEL.MASKX.MLP_BRANCH.ENABLED",
    "False",
)


def _variant(label, config, *opts, test=(MAIN_VAL,), split="main"):
    return {
        "label": label,
        "config": config and f"{CONFIGS}/{config}",
        "opts": list(opts),
        "test": test,
        "split": split,
    }


def _shifted_variant(label, config, *opts):
    """A variant trained and evaluated on the appearance-shifted split (B's colours not in A)."""
    return _variant(label, config, *SHIFTED_TRAIN, *opts, test=(SHIFTED_VAL,), split="shifted")


def _on_both_splits(key, label, config, *opts):
    """``key`` on the main split and ``"shifted-" + key`` on the appearance-shifted split: one
    definition of an option's label and settings for both tables."""
    return {
        key: _variant(label, config, *opts),
        "shifted-" + key: _shifted_variant(label, config, *opts),
    }


def _a12_variant(label, config, *opts):
    """A variant trained and evaluated on the twelve-class split (4 box-only classes)."""
    return _variant(label, config, *A12_TRAIN, *opts, test=(A12_VAL,), split="a12")


def _band_variant(label, config, *opts):
    """A variant trained and evaluated on the band split (every box-only class an additive
    shape + colour combination of classes with masks)."""
    return _variant(label, config, *BAND_TRAIN, *opts, test=(BAND_VAL,), split="band")


def _evaluation_variant(label, source, dataset):
    """Not trained: the seed's run of ``source`` evaluated on ``dataset`` (bench/evaluate_run.py).
    For an oracle on another split: its model does not depend on the split."""
    return dict(_variant(label, None, test=(dataset,), split=dataset), evaluates=source)


# Stage-wise training (the paper's ``sw`` rows, its Table 1): a Faster R-CNN is trained on every
# class's boxes first (run dir seed<s>/detector, the main job's config and schedule without the
# mask branch, one per seed, shared by every stage-wise row of that seed), then frozen while only
# the mask branch trains on A's masks, for the main job's schedule again. End-to-end (every other
# row) trains both at once; the paper found it better (Table 1d).
DETECTOR_STAGE = "detector"
DETECTOR_STAGE_CONFIG = "transfer_R_18_FPN_synthetic.yaml"
DETECTOR_STAGE_OPTS = ("MODEL.MASK_ON", "False")
STAGEWISE = ("MODEL.META_ARCHITECTURE", "MaskXRCNN", "MODEL.MASKX.FREEZE_DETECTOR", "True")


def _stagewise_variant(label, config, *opts, **kwargs):
    """A head trained on the seed's frozen stage-1 detector (the ``stage1`` run)."""
    variant = _variant(f"stage-wise {label}", config, *STAGEWISE, *opts, **kwargs)
    return dict(variant, stage1=DETECTOR_STAGE, split="stagewise")


# key: what is trained. The oracles are evaluated on both splits' validation sets: a model with
# the masks of every class is the same for both, only the grouping of classes into A and B
# differs. The gap is measured to the stronger oracle (by GT-box mIoU on B).
VARIANTS = {
    "class-agnostic": _variant("class-agnostic", "class_agnostic_R_18_FPN_synthetic.yaml"),
    "transfer-cls": _variant(
        "transfer, cls", "transfer_R_18_FPN_synthetic.yaml", "MODEL.MASKX.TRANSFER.INPUT", "cls"
    ),
    "transfer-box": _variant(
        "transfer, box", "transfer_R_18_FPN_synthetic.yaml", "MODEL.MASKX.TRANSFER.INPUT", "box"
    ),
    "transfer": _variant("transfer, cls+box", "transfer_R_18_FPN_synthetic.yaml"),
    "transfer-mlp": _variant(
        "transfer+MLP, cls+box (the paper's default T)", "maskx_R_18_FPN_synthetic.yaml"
    ),
    # T from the classifier weights alone: the box-regression weights' part of T's input may be
    # what misplaces B's mask weights (docs/table1c_synthetic.md, "Why transfer fails").
    "transfer-mlp-cls": _variant(
        "transfer+MLP, cls",
        "maskx_R_18_FPN_synthetic.yaml",
        "MODEL.MASKX.TRANSFER.INPUT",
        "cls",
    ),
    # The paper's Table 1b variant of T: one linear layer. Measured (docs/table1c_synthetic.md,
    # "The form of T"): both forms keep the class weights' additive shape + colour structure
    # about equally; the linear T was better in 3 of 4 paired seeds, not beyond the noise.
    "transfer-1layer": _variant(
        "transfer, cls+box, 1-layer T", "transfer_R_18_FPN_synthetic.yaml", *LINEAR_T
    ),
    "transfer-mlp-1layer": _variant(
        "transfer+MLP, cls+box, 1-layer T", "maskx_R_18_FPN_synthetic.yaml", *LINEAR_T
    ),
    **{
        f"transfer-mlp-rank{rank}": _variant(
            f"transfer+MLP, cls+box, linear T of rank {rank}",
            "maskx_R_18_FPN_synthetic.yaml",
            *low_rank_t(rank),
        )
        for rank in LOW_RANKS
    },
    "transfer-mlp-attributes": _variant(
        "transfer+MLP from class attributes (shape and colour one-hot; the GloVe row's analogue)",
        "maskx_R_18_FPN_synthetic.yaml",
        *ATTRIBUTES,
    ),
    # A linear T on the attributes ties every class's mask weight to a shape part plus a colour
    # part (w = u_shape + v_colour + b), on A as on B: the additivity the detector's rows have
    # only approximately (87-92%) is exact, and A's masks train the parts B is built from.
    "transfer-attributes-linear": _variant(
        "transfer from class attributes, 1-layer (linear) T",
        "transfer_R_18_FPN_synthetic.yaml",
        *ATTRIBUTES,
        *LINEAR_T,
    ),
    "transfer-mlp-attributes-linear": _variant(
        "transfer+MLP from class attributes, 1-layer (linear) T (the main job without box "
        "supervision)",
        "maskx_R_18_FPN_synthetic.yaml",
        *ATTRIBUTES,
        *LINEAR_T,
    ),
    "oracle": _variant(
        "oracle: class-specific (Mask R-CNN), every class with masks",
        "oracle_R_18_FPN_synthetic.yaml",
        test=(MAIN_VAL, SHIFTED_VAL),
        split="both",
    ),
    "oracle-maskx": _variant(
        "oracle: transfer+MLP, every class with masks",
        "oracle_maskx_R_18_FPN_synthetic.yaml",
        test=(MAIN_VAL, SHIFTED_VAL),
        split="both",
    ),
    "class-agnostic-projection": _variant(
        "class-agnostic + projection loss on B's boxes",
        "class_agnostic_R_18_FPN_synthetic.yaml",
        *PROJECTION,
    ),
    "class-agnostic-boxinst": _variant(
        "class-agnostic + projection and pairwise losses on B's boxes",
        "class_agnostic_R_18_FPN_synthetic.yaml",
        *BOXINST,
    ),
    "transfer-mlp-gt-boxes": _variant(
        "transfer+MLP, mask training on proposals and GT boxes",
        "maskx_R_18_FPN_synthetic.yaml",
        *GT_BOXES,
    ),
    "transfer-mlp-residual": _variant(
        "transfer+MLP, residual head (4 blocks)", "maskx_R_18_FPN_synthetic.yaml", *RESIDUAL
    ),
    "transfer-mlp-hourglass": _variant(
        "transfer+MLP, hourglass head (3 halvings, 14 x 14 RoIs)",
        "maskx_R_18_FPN_synthetic.yaml",
        *HOURGLASS,
    ),
    "transfer-mlp-cam-prior": _variant(
        "transfer+MLP + class activation prior (OPMask)", "opmask_prior_R_18_FPN_synthetic.yaml"
    ),
    "class-agnostic-gt-boxes": _variant(
        "class-agnostic, mask training on proposals and GT boxes",
        "class_agnostic_R_18_FPN_synthetic.yaml",
        *GT_BOXES,
    ),
    "class-agnostic-residual": _variant(
        "class-agnostic, residual head (4 blocks)",
        "class_agnostic_R_18_FPN_synthetic.yaml",
        *RESIDUAL,
    ),
    "class-agnostic-hourglass": _variant(
        "class-agnostic, hourglass head (3 halvings, 14 x 14 RoIs)",
        "class_agnostic_R_18_FPN_synthetic.yaml",
        *HOURGLASS,
    ),
    "class-agnostic-cam-prior": _variant(
        "class-agnostic + class activation prior (OPMask)",
        "opmask_prior_R_18_FPN_synthetic.yaml",
        *CLASS_AGNOSTIC,
    ),
    # The other systems, on the same data, schedule and evaluator (issue: one table for all).
    "blendmask": _variant(
        "BlendMask (FCOS + blender), masks of A", "blendmask_R_18_FPN_synthetic.yaml"
    ),
    "blendmask-oracle": _variant(
        "BlendMask, every class with masks",
        "blendmask_oracle_R_18_FPN_synthetic.yaml",
        test=(MAIN_VAL, SHIFTED_VAL),
        split="both",
    ),
    "mnc": _variant("MNC (3-stage cascade), masks of A", "mnc_R_18_FPN_synthetic.yaml"),
    "mnc-5stage": _variant("MNC, 5-stage cascade", "mnc_5stage_R_18_FPN_synthetic.yaml"),
    "mnc-no-mask-pooling": _variant(
        "MNC without the mask-pooled features (box features only)",
        "mnc_R_18_FPN_synthetic.yaml",
        "MODEL.MNC.MASK_POOLING",
        "none",
    ),
    "mnc-oracle": _variant(
        "MNC, every class with masks",
        "mnc_oracle_R_18_FPN_synthetic.yaml",
        test=(MAIN_VAL, SHIFTED_VAL),
        split="both",
    ),
    "mnc-5stage-oracle": _variant(
        "MNC 5-stage, every class with masks",
        "mnc_oracle_R_18_FPN_synthetic.yaml",
        "MODEL.MNC.NUM_STAGES",
        "5",
        test=(MAIN_VAL, SHIFTED_VAL),
        split="both",
    ),
    # Seeds 1 and 2 of the row above diverged (iterations 135-165): every shared head gets the
    # gradients of both passes. Halving stages 4-5's losses trains them (docs/other_systems.md).
    "mnc-5stage-oracle-half-refined": _variant(
        "MNC 5-stage, every class with masks, stages 4-5 losses x0.5",
        "mnc_oracle_R_18_FPN_synthetic.yaml",
        "MODEL.MNC.NUM_STAGES",
        "5",
        "MODEL.MNC.REFINED_LOSS_WEIGHT",
        "0.5",
        test=(MAIN_VAL, SHIFTED_VAL),
        split="both",
    ),
    # DeepMask: class-agnostic segment proposals; its AR table row is the one to read.
    "deepmask": _variant(
        "DeepMask, masks of A, score on every box", "deepmask_R_18_synthetic.yaml"
    ),
    "deepmask20": _variant(
        "DeepMask20: masks of A, score on A only", "deepmask20_R_18_synthetic.yaml"
    ),
    "deepmask-oracle": _variant(
        "DeepMask, every class with masks",
        "deepmask_oracle_R_18_synthetic.yaml",
        test=(MAIN_VAL, SHIFTED_VAL),
        split="both",
    ),
    "shifted-class-agnostic": _shifted_variant(
        "class-agnostic",
        "class_agnostic_R_18_FPN_synthetic.yaml",
    ),
    "shifted-transfer-mlp": _shifted_variant(
        "transfer+MLP, cls+box",
        "maskx_R_18_FPN_synthetic.yaml",
    ),
    # Options beyond the paper on both splits (the shifted one: B's colours are absent from A).
    **_on_both_splits(
        "transfer-mlp-projection",
        "transfer+MLP + projection loss on B's boxes",
        "maskx_R_18_FPN_synthetic.yaml",
        *PROJECTION,
    ),
    # The combination of the two options that each raised B alone (seed 42 of each, 2026-12-02).
    **_on_both_splits(
        "transfer-mlp-projection-gt-boxes",
        "transfer+MLP + projection loss + mask training on proposals and GT boxes",
        "maskx_R_18_FPN_synthetic.yaml",
        *PROJECTION,
        *GT_BOXES,
    ),
    **_on_both_splits(
        "transfer-mlp-boxinst",
        "transfer+MLP + projection and pairwise losses on B's boxes",
        "maskx_R_18_FPN_synthetic.yaml",
        *BOXINST,
    ),
    # With the pairwise loss at full weight from the start, B's masks settle at "all
    # foreground", which satisfies it exactly (2026-12-02): the warm-up lets the projection
    # loss shape them first, as in BoxInst.
    **_on_both_splits(
        "transfer-mlp-boxinst-warmup",
        "transfer+MLP + projection and pairwise losses, pairwise warm-up 200 iterations",
        "maskx_R_18_FPN_synthetic.yaml",
        *BOXINST,
        *PAIRWISE_WARMUP,
    ),
    **_on_both_splits(
        "transfer-mlp-boxinst-padded",
        "transfer+MLP + projection and pairwise losses, warm-up, proposals and GT boxes, "
        "box-only GT boxes padded by 50%",
        "maskx_R_18_FPN_synthetic.yaml",
        *BOXINST,
        *PAIRWISE_WARMUP,
        *PADDED_GT_BOXES,
    ),
    **_on_both_splits(
        "transfer-mlp-boxinst-padded-gentle",
        "transfer+MLP + projection loss and pairwise loss x0.25 on 3 x 3-averaged colours, "
        "warm-up, proposals and GT boxes, box-only GT boxes padded by 50%",
        BOXSUP,
    ),
    **_on_both_splits(
        "transfer-mlp-boxinst-padded-quarter",
        "transfer+MLP + projection loss and pairwise loss x0.25 (colours not averaged), "
        "warm-up, proposals and GT boxes, box-only GT boxes padded by 50%",
        BOXSUP,
        *UNSMOOTHED_COLOURS,
    ),
    **_on_both_splits(
        "transfer-mlp-boxinst-padded-smoothed",
        "transfer+MLP + projection loss and pairwise loss x1 on 3 x 3-averaged colours, "
        "warm-up, proposals and GT boxes, box-only GT boxes padded by 50%",
        BOXSUP,
        *FULL_PAIRWISE_WEIGHT,
    ),
    # The attribute T with the box supervision above: the two ways of reaching B's masks (T
    # given what a class is made of, B's boxes training the mask branch) together. The main job
    # since 2026-12-05 (configs/Synthetic/maskx_attributes_boxsup_R_18_FPN_synthetic.yaml).
    "transfer-mlp-attributes-linear-boxsup": _variant(
        "transfer+MLP from class attributes, 1-layer T + the box supervision of maskx_boxsup "
        "(the main job)",
        "maskx_attributes_boxsup_R_18_FPN_synthetic.yaml",
    ),
    **_on_both_splits(
        "class-agnostic-boxinst-padded-gentle",
        "class-agnostic + projection loss and pairwise loss x0.25 on 3 x 3-averaged colours, "
        "warm-up, proposals and GT boxes, box-only GT boxes padded by 50%",
        BOXSUP,
        *CLASS_AGNOSTIC,
    ),
    "a12-class-agnostic": _a12_variant(
        "class-agnostic, 12 classes with masks", "class_agnostic_R_18_FPN_synthetic.yaml"
    ),
    "a12-transfer": _a12_variant(
        "transfer, cls+box, 12 classes with masks", "transfer_R_18_FPN_synthetic.yaml"
    ),
    "a12-transfer-mlp": _a12_variant(
        "transfer+MLP, cls+box, 12 classes with masks", "maskx_R_18_FPN_synthetic.yaml"
    ),
    "a12-transfer-mlp-1layer": _a12_variant(
        "transfer+MLP, cls+box, 1-layer T, 12 classes with masks",
        "maskx_R_18_FPN_synthetic.yaml",
        *LINEAR_T,
    ),
    "a12-transfer-mlp-attributes": _a12_variant(
        "transfer+MLP from class attributes, 12 classes with masks",
        "maskx_R_18_FPN_synthetic.yaml",
        *ATTRIBUTES,
    ),
    # The main split's runs on the same 4 box-only classes: 8 classes with masks against 12.
    "a12-eval-class-agnostic": _evaluation_variant(
        "class-agnostic, the main split's 8 classes with masks", "class-agnostic", A12_VAL
    ),
    "a12-eval-transfer-mlp": _evaluation_variant(
        "transfer+MLP, cls+box, the main split's 8 classes with masks", "transfer-mlp", A12_VAL
    ),
    "a12-oracle-maskx": _evaluation_variant(
        "oracle: transfer+MLP, every class with masks", "oracle-maskx", A12_VAL
    ),
    "band-class-agnostic": _band_variant(
        "class-agnostic, band split", "class_agnostic_R_18_FPN_synthetic.yaml"
    ),
    "band-transfer-mlp": _band_variant(
        "transfer+MLP, cls+box, band split", "maskx_R_18_FPN_synthetic.yaml"
    ),
    "band-transfer-mlp-1layer": _band_variant(
        "transfer+MLP, cls+box, 1-layer T, band split", "maskx_R_18_FPN_synthetic.yaml", *LINEAR_T
    ),
    **{
        f"band-transfer-mlp-rank{rank}": _band_variant(
            f"transfer+MLP, cls+box, linear T of rank {rank}, band split",
            "maskx_R_18_FPN_synthetic.yaml",
            *low_rank_t(rank),
        )
        for rank in BAND_LOW_RANKS
    },
    "band-transfer-mlp-attributes": _band_variant(
        "transfer+MLP from class attributes, band split",
        "maskx_R_18_FPN_synthetic.yaml",
        *ATTRIBUTES,
    ),
    "band-transfer-mlp-attributes-linear": _band_variant(
        "transfer+MLP from class attributes, 1-layer (linear) T, band split",
        "maskx_R_18_FPN_synthetic.yaml",
        *ATTRIBUTES,
        *LINEAR_T,
    ),
    "band-oracle-maskx": _evaluation_variant(
        "oracle: transfer+MLP, every class with masks", "oracle-maskx", BAND_VAL
    ),
    "sw-class-agnostic": _stagewise_variant(
        "class-agnostic", "class_agnostic_R_18_FPN_synthetic.yaml"
    ),
    "sw-transfer": _stagewise_variant("transfer, cls+box", "transfer_R_18_FPN_synthetic.yaml"),
    "sw-transfer-mlp": _stagewise_variant(
        "transfer+MLP, cls+box (the paper's default T)", "maskx_R_18_FPN_synthetic.yaml"
    ),
    "sw-transfer-mlp-attributes-linear": _stagewise_variant(
        "transfer+MLP from class attributes, 1-layer (linear) T",
        "maskx_R_18_FPN_synthetic.yaml",
        *ATTRIBUTES,
        *LINEAR_T,
    ),
    # The paper's Table 1 oracle is stage-wise too (30.7 against Table 2's end-to-end 33.0).
    "sw-oracle-maskx": _stagewise_variant(
        "oracle: transfer+MLP, every class with masks", "oracle_maskx_R_18_FPN_synthetic.yaml"
    ),
}
# The stage-wise rows, class-agnostic first and the oracle last (their gap is to it).
STAGEWISE_ROWS = (
    "sw-class-agnostic",
    "sw-transfer",
    "sw-transfer-mlp",
    "sw-transfer-mlp-attributes-linear",
    "sw-oracle-maskx",
)
# The main split's rows that each scene variant repeats on its own images: class-agnostic first,
# the oracle last (the report's gap is to it).
SCENE_ROWS = (
    "class-agnostic",
    "transfer-cls",
    "transfer-box",
    "transfer",
    "transfer-mlp",
    "transfer-attributes-linear",
    "transfer-mlp-attributes-linear",
    "oracle-maskx",
)


@functools.lru_cache(maxsize=None)
def _config_train(config):
    """The one DATASETS.TRAIN name of ``config`` (a path under configs/Synthetic), read from it
    or from its _BASE_ chain."""
    with open(os.path.join(ROOT, CONFIGS, config)) as f:
        node = yaml.safe_load(f)
    train = (node.get("DATASETS") or {}).get("TRAIN")
    if train is not None:
        return train.strip("()\"', ")
    return _config_train(os.path.normpath(os.path.join(os.path.dirname(config), node["_BASE_"])))


def _on_scene(scene, key):
    """The main split's row ``key`` trained and scored on the images of the scene variant
    ``scene`` (key ``<scene>-<key>``): the same config and options, the scene's datasets."""
    row = VARIANTS[key]
    train = _config_train(row["config"][len(CONFIGS) + 1 :])
    return dict(
        row,
        label=f"{row['label']}, {SCENE_VARIANT_LABELS[scene]}",
        opts=[
            "DATASETS.TRAIN",
            "('" + train.replace("synthetic_shapes_v2_", f"synthetic_shapes_v2_{scene}_") + "',)",
            *row["opts"],
        ],
        test=(f"synthetic_shapes_v2_{scene}_val",),
        split=scene,
    )


VARIANTS.update(
    {
        f"{scene}-{key}": _on_scene(scene, key)
        for scene in SCENE_VARIANT_LABELS
        for key in SCENE_ROWS
    }
)
PARTIAL = [
    "transfer-cls",
    "transfer-box",
    "transfer",
    "transfer-mlp",
    "transfer-mlp-cls",
    "transfer-1layer",
    "transfer-mlp-1layer",
    *(f"transfer-mlp-rank{rank}" for rank in LOW_RANKS),
    "transfer-mlp-attributes",
    "transfer-attributes-linear",
    "transfer-mlp-attributes-linear",
]
BEYOND = [
    "transfer-mlp-projection",
    "class-agnostic-projection",
    "transfer-mlp-boxinst",
    "transfer-mlp-boxinst-warmup",
    "transfer-mlp-boxinst-padded",
    "transfer-mlp-boxinst-padded-gentle",
    "transfer-mlp-boxinst-padded-quarter",
    "transfer-mlp-boxinst-padded-smoothed",
    "transfer-mlp-attributes-linear-boxsup",
    "class-agnostic-boxinst-padded-gentle",
    "class-agnostic-boxinst",
    "transfer-mlp-gt-boxes",
    "class-agnostic-gt-boxes",
    "transfer-mlp-residual",
    "class-agnostic-residual",
    "transfer-mlp-hourglass",
    "class-agnostic-hourglass",
    "transfer-mlp-cam-prior",
    "class-agnostic-cam-prior",
    "transfer-mlp-projection-gt-boxes",
]
# Options on the appearance-shifted split: B's colours are absent from A (the shifted table).
SHIFTED_BEYOND = [
    "shifted-transfer-mlp-boxinst",
    "shifted-transfer-mlp-boxinst-warmup",
    "shifted-transfer-mlp-boxinst-padded",
    "shifted-transfer-mlp-boxinst-padded-gentle",
    "shifted-transfer-mlp-boxinst-padded-quarter",
    "shifted-transfer-mlp-boxinst-padded-smoothed",
    "shifted-class-agnostic-boxinst-padded-gentle",
    "shifted-transfer-mlp-projection",
    "shifted-transfer-mlp-projection-gt-boxes",
]
ORACLES = ["oracle", "oracle-maskx"]
STAGEWISE_ORACLES = ["sw-oracle-maskx"]
# Other systems; their own oracle is listed but does not define the gap (Mask^X's oracles do).
OTHER_SYSTEMS = [
    "blendmask",
    "blendmask-oracle",
    "mnc",
    "mnc-5stage",
    "mnc-no-mask-pooling",
    "mnc-oracle",
    "mnc-5stage-oracle",
    "mnc-5stage-oracle-half-refined",
    "deepmask",
    "deepmask20",
    "deepmask-oracle",
]
FULLY_SUPERVISED = ORACLES + [
    "a12-oracle-maskx",
    "band-oracle-maskx",
    "blendmask-oracle",
    "mnc-oracle",
    "mnc-5stage-oracle",
    "mnc-5stage-oracle-half-refined",
    "deepmask-oracle",
    *STAGEWISE_ORACLES,
]
COLUMNS = [  # (header, result key)
    ("box AP A", "bbox_A/AP"),
    ("box AP B", "bbox_B/AP"),
    ("mask AP A", "segm_A/AP"),
    ("mask AP B", "segm_B/AP"),
    ("GT-box mIoU A", "segm_gtbox_A/mIoU"),
    ("GT-box mIoU B", "segm_gtbox_B/mIoU"),
    ("GT-box mask AP B", "segm_gtbox_B/AP"),
]
GAP_KEY = "segm_gtbox_B/mIoU"
# Each box-only class's GT-box mIoU (gt_box_metrics.py: "mIoU-<name>"). With 4 or 8 box-only
# classes the mean over B can hide a head that wins on most classes and fails on one (the
# twelve-class split's transfer runs, docs/table1c_synthetic.md): the report also counts, over
# the seeds both ran, the (seed, class) pairs where a head is above the class-agnostic head.
B_CLASS_PREFIX = "segm_gtbox_B/mIoU-"
PER_CLASS = "B classes by seed"  # table entry: {seed: {class name: GT-box mIoU}}
# Proposal recall (TEST.MASKX.PROPOSAL_RECALL, proposal_recall.py): the outputs as class-agnostic
# proposals, mask AR in percent; a second table, for the runs that measure it.
AR_COLUMNS = [
    ("mask AR@10 A", "proposals_segm_A/AR@10"),
    ("mask AR@100 A", "proposals_segm_A/AR@100"),
    ("mask AR@10 B", "proposals_segm_B/AR@10"),
    ("mask AR@100 B", "proposals_segm_B/AR@100"),
]


def final_results(output_dir, dataset):
    """The last evaluation of ``dataset`` in detectron2's metrics.json, as {"segm_B/AP": ...}.

    With several test sets detectron2 prefixes each key with the dataset's name; with one it
    does not. Raises FileNotFoundError / RuntimeError when the run has not finished.
    """
    with open(os.path.join(output_dir, "metrics.json")) as f:
        records = [json.loads(line) for line in f]
    for record in reversed(records):
        prefixed = {
            k[len(dataset) + 1 :]: v for k, v in record.items() if k.startswith(dataset + "/")
        }
        candidate = prefixed or record
        if GAP_KEY in candidate:
            return candidate
    raise RuntimeError(f"no evaluation of {dataset} with GT-box metrics in {output_dir}")


def run_numerics(output_dir):
    """The numerics a run was trained under, as ``train_net.py`` logged them (``cpu ...,
    torch cpu capability ..., torch intra-op threads ..., ...``), or None for a run without the
    line (made before it was logged, or not by train_net.py)."""
    try:
        with open(os.path.join(output_dir, "log.txt")) as f:
            lines = [line for line in f if NUMERICS_LOG_PREFIX in line]
    except FileNotFoundError:
        return None
    return lines[-1].split(NUMERICS_LOG_PREFIX, 1)[1].strip() if lines else None


def numerics_summary(work_dir, keys, seeds):
    """One sentence on the numerics of the finished runs: the same for all, or how many
    differ. Thread count and SIMD level change a run as a seed does (docs/table1c_synthetic.md,
    "One commit, two results"), so rows made under different numerics are not paired."""
    runs = {}
    for key in keys:
        for seed in seeds:
            out = _run_dir(work_dir, seed, key)
            if os.path.isfile(os.path.join(out, "metrics.json")):
                runs.setdefault(run_numerics(out) or "not logged", []).append(f"{key} {seed}")
    if not runs:
        return ""
    if len(runs) == 1:
        return f"Numerics of every run: {next(iter(runs))}."
    parts = "; ".join(f"{n} ({len(r)} runs, e.g. {r[0]})" for n, r in sorted(runs.items()))
    return (
        f"The runs were made under {len(runs)} different numerics, so rows are not strictly "
        f"paired: {parts}."
    )


def _is_done(output_dir, variant):
    try:
        for dataset in variant["test"]:
            final_results(output_dir, dataset)
        return True
    except (FileNotFoundError, RuntimeError):
        return False


def _thread_env(threads):
    """The environment of a child process limited to ``threads`` threads (None: inherited)."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else None


def ensure_pretrained_backbone(path, threads=None, pretrain_args=()):
    """Make the "ImageNet" stage's checkpoint at ``path`` unless it exists; returns ``path``.

    Written under a temporary name and renamed when complete, so an interrupted pre-training
    leaves no checkpoint that a later call would take for a finished one. The log goes beside
    it (``path + ".log"``). ``pretrain_args``: extra options of the tool (tests shorten it).
    """
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial"
    cmd = [
        sys.executable,
        "tools/pretrain_synthetic_backbone.py",
        "--output",
        partial,
        *pretrain_args,
    ]
    print(f"pre-training the backbone into {path} ...", file=sys.stderr, flush=True)
    with open(path + ".log", "w") as log:
        subprocess.run(
            cmd,
            cwd=ROOT,
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_thread_env(threads),
        )
    os.replace(partial, path)
    return path


# One lock a detector checkpoint: two stage-wise rows of a seed trained at once wait for one
# detector. A detector that failed is not trained again by the next row of its seed (same
# command, same end).
_DETECTOR_LOCKS = collections.defaultdict(threading.Lock)
_DETECTOR_FAILED = set()


def detector_checkpoint(work_dir, seed):
    """Where the seed's stage-1 detector (stage-wise rows) is saved."""
    return os.path.join(_run_dir(work_dir, seed, DETECTOR_STAGE), "model_final.pth")


def ensure_detector_stage(seed, args):
    """Train the seed's stage-1 detector unless its checkpoint exists; returns the checkpoint's
    path, or None when the training failed (its stdout.log says why).

    detectron2 writes model_final.pth only after the last iteration, so an interrupted
    training leaves nothing that would be taken for a finished detector. No evaluation: every
    stage-wise row evaluates its boxes, which are this detector's.
    """
    path = detector_checkpoint(args.work_dir, seed)
    with _DETECTOR_LOCKS[path]:
        if os.path.isfile(path):
            return path
        if path in _DETECTOR_FAILED:
            return None
        out = os.path.dirname(path)
        cmd = _train_net_command(
            f"{CONFIGS}/{DETECTOR_STAGE_CONFIG}", out, seed, "()", DETECTOR_STAGE_OPTS, args
        )
        returncode, log = _run_logged(cmd, out, args.threads)
        if returncode != 0 or not os.path.isfile(path):
            print(f"{DETECTOR_STAGE} seed {seed}: FAILED, see {log}", file=sys.stderr, flush=True)
            _DETECTOR_FAILED.add(path)
            return None
        print(f"{DETECTOR_STAGE} seed {seed}: trained", file=sys.stderr, flush=True)
        return path


def freeze_levels(work_dir):
    """The ``MODEL.BACKBONE.FREEZE_AT`` values of the runs in ``work_dir`` (their config.yaml)."""
    levels = set()
    for path in glob.glob(os.path.join(work_dir, "seed*", "*", "config.yaml")):
        with open(path) as f:
            levels.add(yaml.safe_load(f)["MODEL"]["BACKBONE"]["FREEZE_AT"])
    return levels


def describe_backbone(path, levels=()):
    """One sentence on the runs' backbone for the report: from scratch (with what the runs'
    ``FREEZE_AT`` values, ``levels``, kept frozen), or the checkpoint's pre-training as recorded
    in it by tools/pretrain_synthetic_backbone.py."""
    if not path:
        if set(levels) == {0}:
            return "ResNet-18 from scratch, every layer trained (FREEZE_AT 0)"
        if set(levels) == {2}:
            return (
                "ResNet-18 from scratch, stem and res2 frozen at their random initialisation "
                "(FREEZE_AT 2, the recipe before 2026-12-05)"
            )
        if levels:
            return f"ResNet-18 from scratch; the runs differ: FREEZE_AT {sorted(levels)}"
        return "ResNet-18 from scratch"
    if not os.path.isfile(path):
        return f'ResNet-18 from the "ImageNet" stage `{path}` (checkpoint not found)'
    info = torch.load(path, map_location="cpu", weights_only=True).get("pretraining", {})
    accuracy = info.get("held_out_accuracy", float("nan"))
    return (
        f'ResNet-18 from the "ImageNet" stage `{path}` ({info.get("task", "unknown task")}, '
        f'{info.get("iters", "?")} iterations of {info.get("batch", "?")} images, held-out '
        f"accuracy {accuracy:.1%}), stem and res2 frozen at it"
    )


def _run_dir(work_dir, seed, key):
    return os.path.join(work_dir, f"seed{seed}", key)


def _run_logged(cmd, out, threads):
    """Runs ``cmd`` from the checkout with its output in ``out/stdout.log``; returns
    (return code, the log's path)."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "stdout.log"), "w") as log:
        result = subprocess.run(
            cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=_thread_env(threads)
        )
    return result.returncode, log.name


def _evaluate(key, seed, args):
    """Runs an evaluation variant: the seed's run of its source, evaluated on its test set."""
    variant = VARIANTS[key]
    out = _run_dir(args.work_dir, seed, key)
    source = _run_dir(args.work_dir, seed, variant["evaluates"])
    if _is_done(out, variant):
        return
    if not _is_done(source, VARIANTS[variant["evaluates"]]):
        print(f"{key} seed {seed}: skipped, {source} has not finished", file=sys.stderr)
        return
    cmd = [sys.executable, "bench/evaluate_run.py", "--run", source, "--output", out]
    cmd += ["--dataset", variant["test"][0], "--device", args.device]
    returncode, log = _run_logged(cmd, out, args.threads)
    state = "FAILED, see " + log if returncode else "evaluated"
    print(f"{key} seed {seed}: {state}", file=sys.stderr, flush=True)


def _train_net_command(config, out, seed, test, opts, args):
    """The ``train_net.py`` command line of one run: ``config`` with ``opts``, then the bench's
    schedule (``--iters``), backbone (``--pretrained-backbone``) and trailing options."""
    cmd = [
        sys.executable,
        "train_net.py",
        "--config-file",
        config,
        "OUTPUT_DIR",
        out,
        "MODEL.DEVICE",
        args.device,
        "SEED",
        str(seed),
        "DATASETS.TEST",
        test,
        *opts,
        *args.opts,
    ]
    if args.iters:
        steps = f"({int(args.iters * 0.8)},{int(args.iters * 0.93)})"
        cmd += [
            "SOLVER.MAX_ITER",
            str(args.iters),
            "SOLVER.STEPS",
            steps,
            "SOLVER.CHECKPOINT_PERIOD",
            str(args.iters),
        ]
    if args.pretrained_backbone:
        # The stem and res2 frozen at the pretrained weights, as the paper freezes ImageNet's
        # (the synthetic base trains every layer since it starts from scratch).
        cmd += ["MODEL.WEIGHTS", os.path.abspath(args.pretrained_backbone)]
        cmd += ["MODEL.BACKBONE.FREEZE_AT", "2"]
    return cmd


def _train(key, seed, args):
    variant = VARIANTS[key]
    out = _run_dir(args.work_dir, seed, key)
    if _is_done(out, variant):
        return key, seed, None
    test = "(" + "".join(f"'{d}'," for d in variant["test"]) + ")"
    cmd = _train_net_command(variant["config"], out, seed, test, variant["opts"], args)
    if variant.get("stage1"):
        detector = ensure_detector_stage(seed, args)
        if detector is None:
            print(f"{key} seed {seed}: FAILED, no stage-1 detector", file=sys.stderr, flush=True)
            return key, seed, None
        cmd += ["MODEL.WEIGHTS", os.path.abspath(detector)]  # after any pretrained backbone's
    start = time.time()
    returncode, log = _run_logged(cmd, out, args.threads)
    elapsed = time.time() - start
    if returncode != 0:
        # One failed run (a diverged training, say) must not cost the others or the report.
        print(f"{key} seed {seed}: FAILED, see {log}", file=sys.stderr, flush=True)
        return key, seed, None
    print(f"{key} seed {seed}: {elapsed:.0f} s", file=sys.stderr, flush=True)
    return key, seed, elapsed


def _stage1_rows_first(jobs):
    """``jobs`` ((key, seed) pairs) with each seed's first stage-wise row moved to the front.

    That row trains the seed's detector, which the seed's other stage-wise rows wait for: with
    the seeds' first rows side by side, each worker trains a detector of its own instead of
    waiting for another's.
    """
    first = {}
    for key, seed in jobs:
        if "stage1" in VARIANTS[key]:
            first.setdefault(seed, (key, seed))
    return list(first.values()) + [job for job in jobs if job not in first.values()]


def _stats(values):
    """'mean (min-max)' of the finite values, or 'n/a'."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "n/a", float("nan")
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.1f}", mean
    return f"{mean:.1f} ({min(values):.1f}-{max(values):.1f})", mean


def collect(work_dir, keys, seeds):
    """{(key, dataset): {result key: [value per seed]}} of the finished runs."""
    table = {}
    for key in keys:
        for dataset in VARIANTS[key]["test"]:
            per_key = {}
            for seed in seeds:
                try:
                    r = final_results(os.path.join(work_dir, f"seed{seed}", key), dataset)
                except (FileNotFoundError, RuntimeError):
                    continue
                for _, k in COLUMNS + AR_COLUMNS:
                    per_key.setdefault(k, []).append(r.get(k))
                per_key.setdefault(PER_CLASS, {})[seed] = {
                    k[len(B_CLASS_PREFIX) :]: v
                    for k, v in r.items()
                    if k.startswith(B_CLASS_PREFIX)
                }
            if per_key:
                table[(key, dataset)] = per_key
    return table


def gap_closed(head, agnostic, oracle):
    """Share of the class-agnostic -> oracle gap that ``head`` closes (NaN without a gap)."""
    gap = oracle - agnostic
    return (head - agnostic) / gap if gap > 0 else float("nan")


def b_classes_above(head, agnostic):
    """'wins of pairs': the (seed, box-only class) pairs, over the seeds both ran, where
    ``head``'s GT-box mIoU is above ``agnostic``'s (both {seed: {class: mIoU}}); '-' without
    per-class results (runs evaluated before 2026-12-03)."""
    pairs = [
        (classes[name], agnostic[seed][name])
        for seed, classes in head.items()
        if seed in agnostic
        for name in classes
        if name in agnostic[seed]
    ]
    if not pairs:
        return "-"
    return f"{sum(h > a for h, a in pairs)} of {len(pairs)}"


def _rows(table, keys, dataset, agnostic_key, oracle_keys=ORACLES):
    """Markdown rows of ``keys`` on ``dataset``, each partially supervised head with the share
    of the class-agnostic -> oracle gap it closes (oracle: the better of ``oracle_keys`` on
    GT-box mIoU B)."""
    oracles = [
        _stats(table[(k, dataset)][GAP_KEY])[1] for k in oracle_keys if (k, dataset) in table
    ]
    oracle = max(oracles) if oracles else float("nan")
    agnostic = table.get((agnostic_key, dataset), {}).get(GAP_KEY)
    agnostic_classes = table.get((agnostic_key, dataset), {}).get(PER_CLASS, {})
    lines = []
    for key in keys:
        if (key, dataset) not in table:
            continue
        values = table[(key, dataset)]
        cells = [_stats(values.get(k, []))[0] for _, k in COLUMNS]
        share, wins = "-", "-"
        partial = key not in FULLY_SUPERVISED and key != agnostic_key
        if partial and agnostic and np.isfinite(oracle):
            closed = gap_closed(_stats(values[GAP_KEY])[1], _stats(agnostic)[1], oracle)
            share = f"{closed:.0%}"
        if partial:
            wins = b_classes_above(values.get(PER_CLASS, {}), agnostic_classes)
        seeds = len(values[GAP_KEY])
        label = VARIANTS[key]["label"]
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + f" | {share} | {wins} |")
    return lines


def _ar_table(table, keys, dataset):
    """The mask AR table of the runs of ``keys`` on ``dataset`` that report it ("" if none)."""
    lines = []
    for key in keys:
        values = table.get((key, dataset), {})
        cells = [_stats(values.get(k, [])) for _, k in AR_COLUMNS]
        if all(np.isnan(mean) for _, mean in cells):
            continue
        seeds = len(values[GAP_KEY])
        label = VARIANTS[key]["label"]
        lines.append(f"| {label} | {seeds} | " + " | ".join(c for c, _ in cells) + " |")
    if not lines:
        return ""
    columns = " | ".join(h for h, _ in AR_COLUMNS)
    header = f"| method | seeds | {columns} |\n|---|---|" + "---|" * len(AR_COLUMNS)
    return (
        "\n\nProposal recall, main split (the outputs as class-agnostic proposals, mask AR in "
        "percent; runs with TEST.MASKX.PROPOSAL_RECALL):\n\n" + header + "\n" + "\n".join(lines)
    )


def _a12_table(table, header):
    """The twelve-class split's rows ("" when none ran): its 4 box-only classes under heads
    trained with 8 classes' masks (the main split's runs), then with 12. Each block's gap is from
    its own class-agnostic head to the oracle evaluated on this split (a12-oracle-maskx)."""
    oracle = ["a12-oracle-maskx"]
    eight = ["a12-eval-class-agnostic", "a12-eval-transfer-mlp"]
    twelve = [
        "a12-class-agnostic",
        "a12-transfer",
        "a12-transfer-mlp",
        "a12-transfer-mlp-1layer",
        "a12-transfer-mlp-attributes",
        *oracle,
    ]
    rows = _rows(table, eight, A12_VAL, eight[0], oracle_keys=oracle)
    rows += _rows(table, twelve, A12_VAL, twelve[0], oracle_keys=oracle)
    if not rows:
        return ""
    return (
        "\n\nTwelve-class split (12 classes with masks, 4 box-only: one of each shape and "
        "colour; all 4 in the main split's B, so its runs are scored on them too; each block's "
        "gap is from its class-agnostic head to the oracle scored on the same 4 classes):\n\n"
        + header
        + "\n"
        + "\n".join(rows)
    )


def _band_table(table, header):
    """The band split's rows ("" when none ran); the gap is from its class-agnostic head to the
    oracle evaluated on this split (band-oracle-maskx): its B is not the main split's."""
    keys = [
        "band-class-agnostic",
        "band-transfer-mlp",
        "band-transfer-mlp-1layer",
        *(f"band-transfer-mlp-rank{rank}" for rank in BAND_LOW_RANKS),
        "band-transfer-mlp-attributes",
        "band-transfer-mlp-attributes-linear",
        "band-oracle-maskx",
    ]
    rows = _rows(table, keys, BAND_VAL, keys[0], oracle_keys=keys[-1:])
    if not rows:
        return ""
    return (
        "\n\nBand split (A: the classes whose colour index is their shape index or the next; "
        "every box-only class is an additive shape + colour combination of classes with "
        "masks):\n\n" + header + "\n" + "\n".join(rows)
    )


def _stagewise_table(table, header):
    """The stage-wise rows ("" when none ran); the gap is to the stage-wise oracle, on the same
    frozen detector (the paper's Table 1 is stage-wise, its oracle too)."""
    rows = _rows(table, STAGEWISE_ROWS, MAIN_VAL, STAGEWISE_ROWS[0], oracle_keys=STAGEWISE_ORACLES)
    if not rows:
        return ""
    return (
        "\n\nStage-wise (the paper's sw rows: a Faster R-CNN trained on every class's boxes, "
        "frozen, then only the mask branch trained on A's masks; one detector per seed, shared "
        "by the rows; the main split):\n\n" + header + "\n" + "\n".join(rows)
    )


def _scene_variant_tables(table, header):
    """Each scene variant's rows ("" when none ran); the gap is to the variant's own oracle."""
    text = ""
    for scene, name in SCENE_VARIANT_LABELS.items():
        keys = [f"{scene}-{key}" for key in SCENE_ROWS]
        rows = _rows(
            table, keys, f"synthetic_shapes_v2_{scene}_val", keys[0], oracle_keys=keys[-1:]
        )
        if rows:
            text += (
                f"\n\nScene variant: {name}; the main split's A and B on other images:\n\n"
                + header
                + "\n"
                + "\n".join(rows)
            )
    return text


def report(work_dir, seeds, command, machine, backbone=None, failed=()):
    """The markdown tables of the finished runs of ``work_dir``; ``failed``: (variant key, seed)
    of runs that ended with an error, named at the end (their rows have fewer seeds)."""
    header = (
        "| method | seeds | "
        + " | ".join(h for h, _ in COLUMNS)
        + " | gap closed on B | B classes above class-agnostic |\n"
        "|---|---|" + "---|" * len(COLUMNS) + "---|---|"
    )
    table = collect(work_dir, list(VARIANTS), seeds)
    main_keys = ["class-agnostic", *PARTIAL, *BEYOND, *ORACLES, *OTHER_SYSTEMS]
    main = _rows(table, main_keys, MAIN_VAL, "class-agnostic")
    shifted = _rows(
        table,
        ["shifted-class-agnostic", "shifted-transfer-mlp", *SHIFTED_BEYOND, *FULLY_SUPERVISED],
        SHIFTED_VAL,
        "shifted-class-agnostic",
    )
    text = (
        "Main split (A and B share shapes and colours):\n\n"
        + header
        + "\n"
        + "\n".join(main)
        + "\n\nAppearance-shifted split (no box-only class shares a colour with a class with "
        "masks):\n\n"
        + header
        + "\n"
        + "\n".join(shifted)
        + _a12_table(table, header)
        + _band_table(table, header)
        + _stagewise_table(table, header)
        + _scene_variant_tables(table, header)
        + _ar_table(table, main_keys, MAIN_VAL)
        + f"\n\nCells: mean (min-max) over seeds {', '.join(map(str, seeds))}. Gap closed: "
        "(head - class-agnostic) / (oracle - class-agnostic) of the seed means of GT-box mIoU "
        "on B, to the better of the two oracles. B classes above class-agnostic: the (seed, "
        "box-only class) pairs where the head's GT-box mIoU is above the class-agnostic head's "
        "of the same seed. "
        f"Backbone: {describe_backbone(backbone, freeze_levels(work_dir))}. "
        f"Command: `{command}`; machine: {machine}.\n"
    )
    numerics = numerics_summary(work_dir, list(VARIANTS), seeds)
    if numerics:
        text += f"\n{numerics}\n"
    if failed:
        runs = ", ".join(f"{VARIANTS[k]['label']} (seed {s})" for k, s in failed)
        text += f"\nRuns that failed (their stdout.log says why), left out of the means: {runs}.\n"
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--iters", type=int, default=None, help="override SOLVER.MAX_ITER")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS per run; it changes a run as a seed does: keep it for rows compared",
    )
    parser.add_argument("--work-dir", default="output/bench_table1c_v2")
    parser.add_argument("--output", default=None, help="markdown file to write")
    parser.add_argument("--report-only", action="store_true", help="only tabulate --work-dir")
    parser.add_argument(
        "--pretrained-backbone",
        default=None,
        metavar="PATH",
        help='the "ImageNet" stage checkpoint for every run (made there first when missing)',
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="extra config overrides")
    args = parser.parse_args()
    if args.jobs > 1 and args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.jobs)

    failed = []
    if not args.report_only:
        if args.pretrained_backbone:
            ensure_pretrained_backbone(args.pretrained_backbone, args.threads)
        # The oracles first: every gap needs them. Seeds in the outer loop so that a partial
        # result already covers every variant.
        order = sorted(args.variants, key=lambda k: k not in ORACLES + STAGEWISE_ORACLES)
        trained = [k for k in order if "evaluates" not in VARIANTS[k]]
        jobs = _stage1_rows_first([(key, seed) for seed in args.seeds for key in trained])
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda job: _train(*job, args), jobs))
        # Evaluations of trained runs on other splits, once every training has ended.
        evaluations = [(k, s) for s in args.seeds for k in order if k not in trained]
        for key, seed in evaluations:
            _evaluate(key, seed, args)
        failed = [
            (k, s)
            for k, s in jobs + evaluations
            if not _is_done(_run_dir(args.work_dir, s, k), VARIANTS[k])
        ]

    command = "python bench/bench_synthetic_table1c.py " + " ".join(sys.argv[1:])
    machine = f"{cpu_model_name()}, {os.cpu_count()} cores, device={args.device}"
    text = report(args.work_dir, args.seeds, command, machine, args.pretrained_backbone, failed)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
