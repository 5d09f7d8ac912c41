#!/usr/bin/env python
"""Write the leaf configs of the paper's tables under configs/ (run after editing a row).

Each leaf holds only its difference from a base; the rows are data here so that the two COCO
splits, both backbones and the 25 random splits cannot drift apart.

    python tools/make_paper_configs.py
"""

import glob
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
# Stage 1 of the stage-wise (`sw`) rows: a Faster R-CNN trained on the boxes of all 80 classes,
# from detectron2's model zoo (`detectron2/model_zoo/model_zoo.py`, CONFIG_PATH_TO_URL_SUFFIX;
# "detectron2://" + config path + "/" + suffix). The paper's stage 1 is a 1x (90k) schedule.
FASTER_RCNN = {
    50: "detectron2://COCO-Detection/faster_rcnn_R_50_FPN_1x/137257794/model_final_b275ba.pkl",
    # detectron2 publishes no R-101-FPN 1x Faster R-CNN: the 3x one is the closest, and stronger
    # than the paper's stage 1.
    101: "detectron2://COCO-Detection/faster_rcnn_R_101_FPN_3x/137851257/model_final_f6e8b1.pkl",
}
# Comment written into each sw base about where its detector comes from.
FASTER_RCNN_NOTE = {
    50: "# The detector is detectron2's 1x (90k-iteration) R-50-FPN Faster R-CNN, as the paper's\n"
    "# stage 1.\n",
    101: "# detectron2 has no 1x R-101-FPN Faster R-CNN, so the detector is its 3x\n"
    "# (270k-iteration) one: a stronger detector than the paper's 1x stage 1.\n",
}
# The random splits of maskx_d2/data/splits.py (RANDOM_SPLIT_TRIALS, RANDOM_SPLIT_SIZES; the
# config tests check they agree), kept literal so that this script needs no imports.
RANDOM_SPLIT_TRIALS = (1, 2, 3, 4, 5)
RANDOM_SPLIT_SIZES = (20, 30, 40, 50, 60)
EMBEDDINGS = "datasets/embeddings/coco80_{}_300d.npy"  # see docs/datasets.md

# Table 1 rows: name -> (schedule "sw"/"e2e", comment, MODEL.MASKX overrides, extra yaml)
TABLE1 = {
    # (a) input of T, stage-wise
    "transfer_randn": (
        "sw",
        "Table 1a: T on a fixed random vector per class",
        {
            "TRANSFER.INPUT": '"embedding"',
            "TRANSFER.EMBEDDING_FILE": f'"{EMBEDDINGS.format("randn")}"',
        },
        "",
    ),
    "transfer_glove": (
        "sw",
        "Table 1a: T on the GloVe vector of the class name",
        {
            "TRANSFER.INPUT": '"embedding"',
            "TRANSFER.EMBEDDING_FILE": f'"{EMBEDDINGS.format("glove")}"',
        },
        "",
    ),
    "transfer_cls": (
        "sw",
        "Table 1a: T on the box classifier's row",
        {"TRANSFER.INPUT": '"cls"'},
        "",
    ),
    "transfer_box": (
        "sw",
        "Table 1a: T on the 4 box-regression rows",
        {"TRANSFER.INPUT": '"box"'},
        "",
    ),
    "transfer_clsbox": (
        "sw",
        "Table 1a/1b/1c: T on cls+box, 2 layers, LeakyReLU (the default)",
        {},
        "",
    ),
    # (b) structure of T, stage-wise, cls+box
    "transfer_1layer": ("sw", "Table 1b: 1-layer T", {"TRANSFER.NUM_LAYERS": "1"}, ""),
    "transfer_2layer_relu": (
        "sw",
        "Table 1b: 2-layer T, ReLU",
        {"TRANSFER.ACTIVATION": '"relu"'},
        "",
    ),
    "transfer_3layer_relu": (
        "sw",
        "Table 1b: 3-layer T, ReLU",
        {"TRANSFER.NUM_LAYERS": "3", "TRANSFER.ACTIVATION": '"relu"'},
        "",
    ),
    "transfer_3layer_lrelu": (
        "sw",
        "Table 1b: 3-layer T, LeakyReLU",
        {"TRANSFER.NUM_LAYERS": "3"},
        "",
    ),
    # (c) method, stage-wise
    "class_agnostic": (
        "sw",
        "Table 1c: class-agnostic mask baseline",
        {"MASK_PREDICTOR": '"class_agnostic"'},
        "",
    ),
    "transfer_mlp": ("sw", "Table 1c: transfer+MLP", {"MLP_BRANCH.ENABLED": "True"}, ""),
    "oracle": (
        "sw",
        "Table 1c: fully supervised oracle (masks of all 80 classes)",
        {"MASK_PREDICTOR": '"class_specific"'},
        'DATASETS:\n  TRAIN: ("coco_2017_train",)\n',
    ),
    # (d) end-to-end
    "class_agnostic_e2e": (
        "e2e",
        "Table 1d/2: end-to-end class-agnostic baseline",
        {"MASK_PREDICTOR": '"class_agnostic"'},
        "",
    ),
    "transfer_e2e_no_stopgrad": (
        "e2e",
        "Table 1d: end-to-end transfer without stop-grad",
        {"TRANSFER.DETACH_DET_WEIGHTS": "False"},
        "",
    ),
    "transfer_e2e": ("e2e", "Table 1d: end-to-end transfer with stop-grad", {}, ""),
}
# Table 2 rows (end-to-end, both backbones): name -> (comment, overrides, extra)
TABLE2 = {
    "class_agnostic": (
        "Table 2: class-agnostic baseline",
        {"MASK_PREDICTOR": '"class_agnostic"'},
        "",
    ),
    "maskx": (
        "Table 2: Mask^X R-CNN (transfer cls+box, 2-layer LeakyReLU, +MLP)",
        {"MLP_BRANCH.ENABLED": "True"},
        "",
    ),
    "oracle": (
        "Table 2: fully supervised oracle",
        {"MASK_PREDICTOR": '"class_specific"'},
        'DATASETS:\n  TRAIN: ("coco_2017_train",)\n',
    ),
}


def _maskx_yaml(overrides):
    """Nested YAML for MODEL.MASKX overrides given as {"A.B": value}."""
    if not overrides:
        return ""
    lines, opened = ["MODEL:", "  MASKX:"], set()
    for key, value in overrides.items():
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            if tuple(parts[: depth + 1]) not in opened:
                opened.add(tuple(parts[: depth + 1]))
                lines.append("    " + "  " * depth + f"{part}:")
        lines.append("    " + "  " * (len(parts) - 1) + f"{parts[-1]}: {value}")
    return "\n".join(lines) + "\n"


def _sw_base_yaml(depth, base):
    """The stage-wise setup shared by Table 1's sw rows and Figure 3: frozen released detector."""
    return (
        "# Stage-wise: a released Faster R-CNN (boxes of all 80 classes) is frozen and\n"
        "# only the mask branch trains on set A's masks.\n"
        + FASTER_RCNN_NOTE[depth]
        + f'_BASE_: "{base}"\n'
        f'MODEL:\n  WEIGHTS: "{FASTER_RCNN[depth]}"\n  MASKX:\n'
        "    FREEZE_DETECTOR: True\n"
    )


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_split_bases(split):
    d = os.path.join(ROOT, f"COCO-{split}")
    data = (
        f'DATASETS:\n  TRAIN: ("coco_2017_train_{split}",)\n'
        f'  TEST: ("coco_2017_val_{split}",)\n'
    )
    for depth in (50, 101):
        schedule = (
            ""
            if depth == 50
            else (
                "SOLVER:\n  IMS_PER_BATCH: 8\n  BASE_LR: 0.01\n  STEPS: (120000, 160000)\n"
                "  MAX_ITER: 180000\n"
            )
        )
        backbone = (
            ""
            if depth == 50
            else (
                '  WEIGHTS: "detectron2://ImageNetPretrained/MSRA/R-101.pkl"\n'
                "  RESNETS:\n    DEPTH: 101\n"
            )
        )
        _write(
            os.path.join(d, f"Base-R_{depth}_FPN-e2e.yaml"),
            f"# End-to-end from ImageNet weights, {split} (A = classes with masks).\n"
            f'_BASE_: "../Base-MaskX-RCNN-FPN.yaml"\n'
            + (f"MODEL:\n{backbone}" if backbone else "")
            + data
            + schedule,
        )
        _write(
            os.path.join(d, f"Base-R_{depth}_FPN-sw.yaml"),
            _sw_base_yaml(depth, f"Base-R_{depth}_FPN-e2e.yaml"),
        )


def write_tables(split):
    d = os.path.join(ROOT, f"COCO-{split}")
    for name, (schedule, comment, overrides, extra) in TABLE1.items():
        stem = name.replace("_e2e", "")
        _write(
            os.path.join(d, f"table1_{stem}_R_50_FPN_{schedule}_1x_{split}.yaml"),
            f'# {comment}, {split}.\n_BASE_: "Base-R_50_FPN-{schedule}.yaml"\n'
            + _maskx_yaml(overrides)
            + extra,
        )
    for depth in (50, 101):
        sched = "1x" if depth == 50 else "2x"
        for name, (comment, overrides, extra) in TABLE2.items():
            _write(
                os.path.join(d, f"table2_{name}_R_{depth}_FPN_e2e_{sched}_{split}.yaml"),
                f"# {comment}, R-{depth}-FPN, {split}.\n"
                f'_BASE_: "Base-R_{depth}_FPN-e2e.yaml"\n' + _maskx_yaml(overrides) + extra,
            )


# Figure 3 (the ablation section, stage-wise like Table 1): on each random split, Mask^X R-CNN
# as transfer cls+box, 2-layer LeakyReLU T, no MLP, against the class-agnostic baseline trained
# the same way. name -> (comment, MODEL.MASKX overrides)
RANDSPLITS = {
    "transfer": ("Figure 3: Mask^X R-CNN (transfer cls+box, 2-layer LeakyReLU, no MLP)", {}),
    "class_agnostic": (
        "Figure 3: class-agnostic mask baseline",
        {"MASK_PREDICTOR": '"class_agnostic"'},
    ),
}


def write_random_splits():
    d = os.path.join(ROOT, "COCO-randsplits")
    for stale in glob.glob(os.path.join(d, "*.yaml")):  # the file set changes with the rows
        os.remove(stale)
    _write(
        os.path.join(d, "Base-R_50_FPN-sw.yaml"),
        "# Figure 3: random A/B splits of COCO's 80 classes, stage-wise as Table 1's sw rows\n"
        "# (same detector, same frozen setup); leaves set the split and the mask predictor.\n"
        + _sw_base_yaml(50, "../Base-MaskX-RCNN-FPN.yaml")
        + "    MLP_BRANCH:\n      ENABLED: False  # Figure 3's runs have no MLP branch\n",
    )
    for trial in RANDOM_SPLIT_TRIALS:
        for n_a in RANDOM_SPLIT_SIZES:
            split = f"randsplit_E{trial}_A{n_a}"
            for name, (comment, overrides) in RANDSPLITS.items():
                _write(
                    os.path.join(d, f"{name}_R_50_FPN_sw_1x_{split}.yaml"),
                    f'# {comment}, {split}.\n_BASE_: "Base-R_50_FPN-sw.yaml"\n'
                    + _maskx_yaml(overrides)
                    + f'DATASETS:\n  TRAIN: ("coco_2017_train_{split}",)\n'
                    f'  TEST: ("coco_2017_val_{split}",)\n',
                )


if __name__ == "__main__":
    for split in ("voc2nonvoc", "nonvoc2voc"):
        write_split_bases(split)
        write_tables(split)
    write_random_splits()
    print("configs written under", os.path.abspath(ROOT))
