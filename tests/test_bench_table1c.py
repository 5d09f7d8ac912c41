"""bench/bench_synthetic_table1c.py: reading detectron2's metrics.json, the gap share and the
report, on metrics files written here (training runs belong to the benchmark itself)."""

import json
import math
import os
import sys

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import bench_synthetic_table1c as bench  # noqa: E402

from maskx_d2 import add_maskx_config  # noqa: E402
from maskx_d2.data.datasets.synthetic import SCENE_VARIANTS, SYNTHETIC_CLASSES  # noqa: E402


def _write_metrics(path, records):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "metrics.json"), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def _eval(gtbox_b, prefix="", **extra):
    keys = {
        "bbox_A/AP": 70.0,
        "bbox_B/AP": 65.0,
        "segm_A/AP": 50.0,
        "segm_B/AP": 40.0,
        "segm_gtbox_A/mIoU": 80.0,
        "segm_gtbox_B/mIoU": gtbox_b,
        "segm_gtbox_B/AP": 45.0,
    }
    keys.update(extra)
    return {prefix + k: v for k, v in keys.items()}


def test_final_results_takes_the_last_evaluation_of_the_dataset(tmp_path):
    out = str(tmp_path / "run")
    _write_metrics(
        out,
        [
            {"iteration": 5, "total_loss": 1.0},
            dict(_eval(50.0), iteration=9),
            {"iteration": 10, "total_loss": 0.5},
            dict(_eval(60.0), iteration=10),
        ],
    )
    assert bench.final_results(out, bench.MAIN_VAL)["segm_gtbox_B/mIoU"] == 60.0

    two = str(tmp_path / "two")  # several test sets: detectron2 prefixes the dataset's name
    _write_metrics(
        two,
        [
            {
                **_eval(70.0, prefix=bench.MAIN_VAL + "/"),
                **_eval(55.0, prefix=bench.SHIFTED_VAL + "/"),
            }
        ],
    )
    assert bench.final_results(two, bench.MAIN_VAL)["segm_gtbox_B/mIoU"] == 70.0
    assert bench.final_results(two, bench.SHIFTED_VAL)["segm_gtbox_B/mIoU"] == 55.0

    unfinished = str(tmp_path / "unfinished")
    _write_metrics(unfinished, [{"iteration": 5, "total_loss": 1.0}])
    with pytest.raises(RuntimeError, match="no evaluation"):
        bench.final_results(unfinished, bench.MAIN_VAL)
    with pytest.raises(FileNotFoundError):
        bench.final_results(str(tmp_path / "missing"), bench.MAIN_VAL)


def test_gap_closed():
    assert bench.gap_closed(60.0, 50.0, 80.0) == pytest.approx(1 / 3)
    assert bench.gap_closed(85.0, 50.0, 80.0) == pytest.approx(7 / 6)  # above the oracle
    assert math.isnan(bench.gap_closed(60.0, 50.0, 50.0))  # no gap to close


def test_report_gives_mean_spread_and_gap_share(tmp_path):
    work = str(tmp_path)
    miou = {"class-agnostic": (50.0, 52.0), "transfer-mlp": (60.0, 62.0), "oracle": (80.0, 82.0)}
    for key, values in miou.items():
        for seed, value in zip((1, 2), values):
            prefix = bench.MAIN_VAL + "/" if key == "oracle" else ""
            record = _eval(value, prefix=prefix)
            if key == "oracle":
                record.update(_eval(value - 10, prefix=bench.SHIFTED_VAL + "/"))
            _write_metrics(os.path.join(work, f"seed{seed}", key), [record])
    text = bench.report(work, [1, 2], "cmd", "machine")
    row = next(
        line for line in text.splitlines() if line.startswith("| transfer+MLP, cls+box (the paper")
    )
    assert "| 2 |" in row and "61.0 (60.0-62.0)" in row and row.endswith("| 33% | - |")
    oracle = next(line for line in text.splitlines() if line.startswith("| oracle"))
    assert "81.0 (80.0-82.0)" in oracle
    # The shifted table has the oracle regrouped by the shifted split, and no other run yet.
    shifted = text.split("Appearance-shifted")[1]
    assert "71.0 (70.0-72.0)" in shifted and "transfer+MLP" not in shifted
    assert "Twelve-class split" not in text  # no run of it: no empty table


def test_report_has_a_band_table_with_its_own_baseline_and_oracle(tmp_path):
    work = str(tmp_path)
    _write_metrics(os.path.join(work, "seed1", "band-class-agnostic"), [_eval(40.0)])
    _write_metrics(os.path.join(work, "seed1", "band-transfer-mlp"), [_eval(50.0)])
    _write_metrics(os.path.join(work, "seed1", "class-agnostic"), [_eval(20.0)])
    _write_metrics(os.path.join(work, "seed1", "oracle-maskx"), [_eval(90.0)])
    text = bench.report(work, [1], "cmd", "machine")
    band = text.split("Band split")[1]
    rows = [line for line in band.splitlines() if "band split |" in line]
    assert [r.split(" | ")[0] for r in rows] == [
        "| class-agnostic, band split",
        "| transfer+MLP, cls+box, band split",
    ]
    assert rows[1].endswith("| - | - |")  # no oracle scored on the band split: no share
    _write_metrics(os.path.join(work, "seed1", "band-oracle-maskx"), [_eval(70.0)])
    band = bench.report(work, [1], "cmd", "machine").split("Band split")[1]
    row = next(line for line in band.splitlines() if line.startswith("| transfer+MLP"))
    assert row.endswith("| 33% | - |")  # (50 - 40) / (70 - 40), not the main split's 20 -> 90
    assert "| 70.0 |" in next(line for line in band.splitlines() if line.startswith("| oracle"))


def test_report_has_a_twelve_class_table_with_its_own_oracle(tmp_path):
    work = str(tmp_path)
    _write_metrics(os.path.join(work, "seed1", "a12-class-agnostic"), [_eval(50.0)])
    _write_metrics(os.path.join(work, "seed1", "a12-transfer-mlp"), [_eval(58.0)])
    _write_metrics(os.path.join(work, "seed1", "transfer-mlp"), [_eval(40.0)])
    # The main table's oracle is far better; the twelve-class gap is to its own oracle only.
    _write_metrics(os.path.join(work, "seed1", "oracle-maskx"), [_eval(90.0)])
    text = bench.report(work, [1], "cmd", "machine")
    a12 = text.split("Twelve-class split")[1]
    rows = [line for line in a12.splitlines() if "12 classes with masks |" in line]
    assert len(rows) == 2 and "| 58.0 |" in rows[1]
    assert rows[1].endswith("| - | - |")  # no oracle evaluated on that split: no share claimed
    assert "(the paper's default T)" not in a12  # the main split's run stays in the main table

    _write_metrics(os.path.join(work, "seed1", "a12-oracle-maskx"), [_eval(74.0)])
    a12 = bench.report(work, [1], "cmd", "machine").split("Twelve-class split")[1]
    rows = [line for line in a12.splitlines() if "12 classes with masks |" in line]
    assert rows[1].endswith("| 33% | - |")  # (58 - 50) / (74 - 50)
    oracle = next(line for line in a12.splitlines() if line.startswith("| oracle"))
    assert "| 74.0 |" in oracle and oracle.endswith("| - | - |")

    # The main split's runs scored on the same 4 classes: their own block, their own baseline.
    _write_metrics(os.path.join(work, "seed1", "a12-eval-class-agnostic"), [_eval(42.0)])
    _write_metrics(os.path.join(work, "seed1", "a12-eval-transfer-mlp"), [_eval(50.0)])
    a12 = bench.report(work, [1], "cmd", "machine").split("Twelve-class split")[1]
    rows = [line for line in a12.splitlines() if "classes with masks |" in line]
    assert [r.split(" | ")[0] for r in rows] == [
        "| class-agnostic, the main split's 8 classes with masks",
        "| transfer+MLP, cls+box, the main split's 8 classes with masks",
        "| class-agnostic, 12 classes with masks",
        "| transfer+MLP, cls+box, 12 classes with masks",
    ]
    assert rows[1].endswith("| 25% | - |")  # (50 - 42) / (74 - 42)
    assert rows[3].endswith("| 33% | - |")


def test_report_counts_the_box_only_classes_a_head_wins(tmp_path):
    """Per seed and box-only class, against the class-agnostic run of the same seed."""
    work = str(tmp_path)
    classes = {  # seed: (class-agnostic, transfer+MLP) per class
        1: {"red_bar": (40.0, 60.0), "green_ring": (50.0, 20.0), "blue_cross": (30.0, 31.0)},
        2: {"red_bar": (45.0, 44.0), "green_ring": (50.0, 70.0), "blue_cross": (30.0, 90.0)},
    }
    for seed, per_class in classes.items():
        for index, key in enumerate(("class-agnostic", "transfer-mlp")):
            extra = {f"segm_gtbox_B/mIoU-{name}": v[index] for name, v in per_class.items()}
            extra["segm_gtbox_A/mIoU-red_circle"] = 99.0  # a class of A: not counted
            _write_metrics(os.path.join(work, f"seed{seed}", key), [_eval(50.0, **extra)])
    # Seed 3 of transfer+MLP has no class-agnostic run to compare with: not counted either.
    _write_metrics(
        os.path.join(work, "seed3", "transfer-mlp"),
        [_eval(50.0, **{"segm_gtbox_B/mIoU-red_bar": 99.0})],
    )
    text = bench.report(work, [1, 2, 3], "cmd", "machine")
    header = next(line for line in text.splitlines() if line.startswith("| method"))
    assert header.endswith("| gap closed on B | B classes above class-agnostic |")
    row = next(line for line in text.splitlines() if line.startswith("| transfer+MLP, cls+box"))
    assert row.endswith("| 4 of 6 |")  # seed 1: red_bar, blue_cross; seed 2: the other two
    agnostic = next(line for line in text.splitlines() if line.startswith("| class-agnostic |"))
    assert agnostic.endswith("| - | - |")
    assert bench.b_classes_above({1: {"a": 2.0}}, {}) == "-"


def test_evaluation_variants_wait_for_their_source_run(tmp_path, capsys):
    args = type("Args", (), {"work_dir": str(tmp_path), "device": "cpu", "threads": 1})()
    bench._evaluate("a12-oracle-maskx", 1, args)  # no oracle run yet: nothing is evaluated
    assert "has not finished" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(str(tmp_path), "seed1", "a12-oracle-maskx"))


@pytest.mark.parametrize("key", [k for k, v in bench.VARIANTS.items() if "evaluates" not in v])
def test_every_variant_builds_its_model(key, tmp_path):
    """Each variant's config with its overrides is valid (a typo would cost a whole run)."""
    variant = bench.VARIANTS[key]
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(os.path.join(bench.ROOT, variant["config"]))
    cfg.merge_from_list(variant["opts"] + ["MODEL.DEVICE", "meta"])
    with torch.device("meta"):
        build_model(cfg)


# The README's quick start trains this config (test_the_readme_runs_the_main_job).
MAIN_JOB = "configs/Synthetic/maskx_attributes_boxsup_R_18_FPN_synthetic.yaml"


def _config_file(path):
    """The config at ``path`` (relative to the repository root) with the project's keys."""
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(os.path.join(bench.ROOT, path))
    return cfg


def _config_of(key):
    variant = bench.VARIANTS[key]
    cfg = _config_file(variant["config"])
    cfg.merge_from_list(variant["opts"])
    return cfg


@pytest.mark.parametrize("prefix", ["", "a12-"])
@pytest.mark.parametrize(
    "variant, changed",
    [
        ("transfer-mlp-1layer", {"MODEL.MASKX.TRANSFER.NUM_LAYERS"}),
        (
            "transfer-mlp-attributes",
            {"MODEL.MASKX.TRANSFER.INPUT", "MODEL.MASKX.TRANSFER.EMBEDDING_FILE"},
        ),
    ],
)
def test_the_transfer_function_rows_change_only_t(prefix, variant, changed):
    """The 1-layer T and class-attribute rows are the main job's head with one change to T, on
    the main and the twelve-class split."""
    assert (
        _differences(_config_of(prefix + "transfer-mlp"), _config_of(prefix + variant)) == changed
    )


def test_every_registered_scene_variant_has_its_bench_rows():
    assert list(bench.SCENE_VARIANT_LABELS) == list(SCENE_VARIANTS)


@pytest.mark.parametrize("scene", list(bench.SCENE_VARIANT_LABELS))
@pytest.mark.parametrize("main", bench.SCENE_ROWS)
def test_the_scene_variant_rows_change_only_the_images(scene, main):
    """Each scene variant's row is its main-split row trained on the variant's images (and
    scored on their validation set)."""
    key = f"{scene}-{main}"
    assert _differences(_config_of(main), _config_of(key)) == {"DATASETS.TRAIN"}
    assert bench.VARIANTS[key]["test"] == (f"synthetic_shapes_v2_{scene}_val",)
    main_train = _config_of(main).DATASETS.TRAIN[0]
    assert _config_of(key).DATASETS.TRAIN[0] == main_train.replace("_v2_", f"_v2_{scene}_")
    assert _config_of(key).DATASETS.TRAIN[0] in DatasetCatalog.list()


def test_the_1_layer_transfer_row_is_the_transfer_row_with_a_linear_t():
    assert _differences(_config_of("transfer"), _config_of("transfer-1layer")) == {
        "MODEL.MASKX.TRANSFER.NUM_LAYERS"
    }


def _record_training_commands(monkeypatch):
    """Replaces the training subprocess by one that only records its command line; returns the
    list it fills."""
    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        return bench.subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    return commands


def _train_args(work_dir, pretrained_backbone=None):
    return bench.argparse.Namespace(
        work_dir=str(work_dir),
        device="cpu",
        opts=[],
        iters=None,
        threads=1,
        pretrained_backbone=pretrained_backbone,
    )


def test_the_attribute_rows_train_on_the_committed_file_of_the_classes_shape_and_colour(
    tmp_path, monkeypatch
):
    from maskx_d2.data.datasets.synthetic import class_attributes

    commands = _record_training_commands(monkeypatch)
    args = _train_args(tmp_path)
    bench._train("transfer-mlp-attributes", 1, args)
    bench._train("a12-transfer-mlp-attributes", 2, args)
    files = {cmd[cmd.index("MODEL.MASKX.TRANSFER.EMBEDDING_FILE") + 1] for cmd in commands}
    assert files == {"datasets/embeddings/synthetic16_attributes.npy"}
    attributes = np.load(os.path.join(bench.ROOT, files.pop()))
    assert attributes.shape == (16, 8)
    np.testing.assert_array_equal(attributes, class_attributes())
    # yellow_ring: shape "ring" (2nd of circle, ring, cross, bar), colour "yellow" (2nd of red,
    # yellow, green, blue).
    row = attributes[SYNTHETIC_CLASSES.index("yellow_ring")]
    assert row.tolist() == [0, 1, 0, 0, 0, 1, 0, 0]
    assert (attributes.sum(axis=1) == 2).all() and len({tuple(r) for r in attributes}) == 16


def test_the_attribute_config_is_the_attribute_row():
    """configs/Synthetic/maskx_attributes_R_18_FPN_synthetic.yaml (the main job without box
    supervision: Mask^X R-CNN alone) trains what the bench's transfer-mlp-attributes-linear row
    trains, so that row's seeds are its spread; each scene variant's row is the same head on the
    variant's images."""
    config = _config_file("configs/Synthetic/maskx_attributes_R_18_FPN_synthetic.yaml")
    assert _differences(config, _config_of("transfer-mlp-attributes-linear")) == {"OUTPUT_DIR"}
    assert _differences(config, _config_of("wholebars-transfer-mlp-attributes-linear")) == {
        "DATASETS.TRAIN",
        "OUTPUT_DIR",
    }
    assert config.MODEL.MASKX.TRANSFER.NUM_LAYERS == 1
    committed = np.load(os.path.join(bench.ROOT, config.MODEL.MASKX.TRANSFER.EMBEDDING_FILE))
    assert committed.dtype == np.float32


def test_the_readme_runs_the_main_job():
    """The quick start's training command and the demo after it name the main job's config, and
    the demo reads the weights from where that config writes them."""
    with open(os.path.join(bench.ROOT, "README.md")) as f:
        quick_start = f.read().split("## Quick start")[1].split("\n## ")[0]
    train = [line for line in quick_start.splitlines() if "train_net.py" in line]
    assert train == [f".venv/bin/python train_net.py --config-file {MAIN_JOB}"]
    assert f"demo.py --config-file {MAIN_JOB}" in quick_start
    weights = os.path.join(_config_file(MAIN_JOB).OUTPUT_DIR, "model_final.pth")
    assert f"MODEL.WEIGHTS {weights}" in quick_start


def test_the_main_job_is_the_attribute_config_plus_the_box_supervision():
    """The main job (maskx_attributes_boxsup_R_18_FPN_synthetic.yaml) differs from the attribute
    config only in the box-supervision keys of maskx_boxsup, from maskx_boxsup only in T's input
    and depth, and from the bench's transfer-mlp-attributes-linear-boxsup row in nothing, so
    that row's seeds are the main job's spread."""
    combined = _config_file(MAIN_JOB)
    attributes = _config_file("configs/Synthetic/maskx_attributes_R_18_FPN_synthetic.yaml")
    boxsup = _config_file("configs/Synthetic/maskx_boxsup_R_18_FPN_synthetic.yaml")
    assert _differences(combined, _config_of("transfer-mlp-attributes-linear-boxsup")) == set()
    assert _differences(combined, attributes) == {
        "MODEL.MASKX.BOX_SUPERVISION.PROJECTION_WEIGHT",
        "MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WEIGHT",
        "MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_COLOUR_SMOOTHING",
        "MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WARMUP_ITERS",
        "MODEL.MASKX.BOX_SUPERVISION.GT_BOX_PADDING",
        "MODEL.MASKX.MASK_TRAIN_BOXES",
        "MODEL.MASKX.GT_BOX_JITTER",
        "OUTPUT_DIR",
    }
    assert _differences(combined, boxsup) == {
        "MODEL.MASKX.TRANSFER.INPUT",
        "MODEL.MASKX.TRANSFER.EMBEDDING_FILE",
        "MODEL.MASKX.TRANSFER.NUM_LAYERS",
        "OUTPUT_DIR",
    }
    assert _differences(combined, _config_of("transfer-mlp-attributes-linear-boxsup")) == set()


def _differences(a, b, prefix=""):
    """The dotted keys whose values differ between two configs."""
    out = set()
    for key in a:
        if isinstance(a[key], dict):
            out |= _differences(a[key], b[key], prefix + key + ".")
        elif a[key] != b[key]:
            out.add(prefix + key)
    return out


@pytest.mark.parametrize(
    "ablation, undone",
    [
        ("transfer-mlp-boxinst-padded-quarter", "PAIRWISE_COLOUR_SMOOTHING"),
        ("transfer-mlp-boxinst-padded-smoothed", "PAIRWISE_WEIGHT"),
    ],
)
def test_each_gentle_pairwise_ablation_undoes_exactly_one_change(ablation, undone):
    """The ablations differ from the best combination in one key each, on both splits, and the
    best combination differs from the padded BoxInst row in exactly those two keys."""
    for prefix in ("", "shifted-"):
        best = _config_of(prefix + "transfer-mlp-boxinst-padded-gentle")
        assert _differences(best, _config_of(prefix + ablation)) == {
            "MODEL.MASKX.BOX_SUPERVISION." + undone
        }
        assert _differences(best, _config_of(prefix + "transfer-mlp-boxinst-padded")) == {
            "MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WEIGHT",
            "MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_COLOUR_SMOOTHING",
            "OUTPUT_DIR",
        }


def test_the_class_agnostic_counterpart_differs_only_in_its_head():
    best = _config_of("transfer-mlp-boxinst-padded-gentle")
    counterpart = _config_of("class-agnostic-boxinst-padded-gentle")
    assert _differences(best, counterpart) == {
        "MODEL.MASKX.MASK_PREDICTOR",
        "MODEL.MASKX.MLP_BRANCH.ENABLED",
    }


def test_report_has_a_mask_ar_table_for_the_runs_that_measure_it(tmp_path):
    work = str(tmp_path)
    ar = {
        "proposals_segm_A/AR@10": 30.0,
        "proposals_segm_A/AR@100": 50.0,
        "proposals_segm_B/AR@10": 20.0,
        "proposals_segm_B/AR@100": 40.0,
    }
    for seed, shift in ((1, 0.0), (2, 2.0)):
        extra = {k: v + shift for k, v in ar.items()}
        _write_metrics(os.path.join(work, f"seed{seed}", "deepmask"), [_eval(60.0, **extra)])
        _write_metrics(os.path.join(work, f"seed{seed}", "transfer-mlp"), [_eval(60.0)])
    text = bench.report(work, [1, 2], "cmd", "machine")
    assert [h for h, _ in bench.AR_COLUMNS] == [
        "mask AR@10 A",
        "mask AR@100 A",
        "mask AR@10 B",
        "mask AR@100 B",
    ]
    recall = text.split("Proposal recall")[1]
    row = next(line for line in recall.splitlines() if line.startswith("| DeepMask, masks of A"))
    cells = ["31.0 (30.0-32.0)", "51.0 (50.0-52.0)", "21.0 (20.0-22.0)", "41.0 (40.0-42.0)"]
    assert row == "| DeepMask, masks of A, score on every box | 2 | " + " | ".join(cells) + " |"
    assert "transfer+MLP" not in recall  # no proposal recall in its metrics
    # The AP table still lists both.
    assert "| DeepMask, masks of A" in text.split("Proposal recall")[0]


def test_pretrained_backbone_is_made_once_and_given_to_every_run(tmp_path, monkeypatch):
    """--pretrained-backbone: the "ImageNet" stage is trained when its checkpoint is missing (a
    shortened run of the real tool here), reused when present, and becomes each run's weights."""
    path = str(tmp_path / "pretrained" / "R18_shapes.pth")
    short = ("--iters", "2", "--batch", "4", "--size", "32", "--val", "8", "--warmup", "1")
    assert bench.ensure_pretrained_backbone(path, 1, short) == path
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["pretraining"]["iters"] == 2
    assert any(k.startswith("backbone.bottom_up.res5.") for k in checkpoint["model"])
    assert (
        not os.path.exists(path + ".partial") and "held-out accuracy" in open(path + ".log").read()
    )

    made = os.path.getmtime(path)
    bench.ensure_pretrained_backbone(path, 1, short)  # present: not trained again
    assert os.path.getmtime(path) == made
    described = bench.describe_backbone(path)
    assert '"ImageNet" stage' in described and "2 iterations of 4 images" in described
    assert "from scratch" in bench.describe_backbone(None)
    assert "not found" in bench.describe_backbone(str(tmp_path / "missing.pth"))

    commands = _record_training_commands(monkeypatch)
    bench._train("transfer-mlp", 1, _train_args(tmp_path / "work", path))
    cmd = commands[0]
    assert cmd[cmd.index("MODEL.WEIGHTS") + 1] == os.path.abspath(path)
    assert cmd[cmd.index("MODEL.BACKBONE.FREEZE_AT") + 1] == "2"  # frozen at the pretraining
    assert cmd[cmd.index("SEED") + 1] == "1"


def test_report_names_the_backbone(tmp_path):
    run = os.path.join(str(tmp_path), "seed1", "transfer-mlp")
    _write_metrics(run, [_eval(60.0)])
    assert "Backbone: ResNet-18 from scratch" in bench.report(str(tmp_path), [1], "cmd", "m")
    with open(os.path.join(run, "config.yaml"), "w") as f:
        f.write("MODEL:\n  BACKBONE:\n    FREEZE_AT: 0\n")
    assert "every layer trained (FREEZE_AT 0)" in bench.report(str(tmp_path), [1], "cmd", "m")
    with open(os.path.join(run, "config.yaml"), "w") as f:
        f.write("MODEL:\n  BACKBONE:\n    FREEZE_AT: 2\n")
    assert "stem and res2 frozen at their random" in bench.report(str(tmp_path), [1], "cmd", "m")


def test_a_failed_run_costs_neither_the_other_runs_nor_the_report(tmp_path, monkeypatch):
    """A run whose training fails (a diverged 5-stage MNC, say) is reported as failed; the bench
    trains the rest and still writes the table of what finished."""
    work = str(tmp_path)
    trained = []

    def fake_run(cmd, **kwargs):
        out = cmd[cmd.index("OUTPUT_DIR") + 1]
        trained.append(out)
        if out.endswith("class-agnostic"):
            return bench.subprocess.CompletedProcess(cmd, 1)
        _write_metrics(out, [_eval(60.0)])
        return bench.subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    output = str(tmp_path / "table.md")
    argv = ["bench", "--seeds", "1", "--variants", "class-agnostic", "transfer-mlp"]
    monkeypatch.setattr(bench.sys, "argv", argv + ["--work-dir", work, "--output", output])
    bench.main()
    assert len(trained) == 2
    text = open(output).read()
    assert "| transfer+MLP, cls+box (the paper's default T) | 1 |" in text
    failed = text.split("Runs that failed")[1]
    assert failed.strip().endswith("left out of the means: class-agnostic (seed 1).")


def _log_numerics(path, threads):
    line = f"[12/03 18:00:00 maskx_d2.train_net]: Numerics: cpu X, torch intra-op threads {threads}"
    with open(os.path.join(path, "log.txt"), "w") as f:
        f.write("[12/03 17:59:59 detectron2]: Rank of current process: 0.\n" + line + "\n")


def test_report_says_whether_its_runs_share_their_numerics(tmp_path):
    work = str(tmp_path)
    runs = [os.path.join(work, f"seed{seed}", "transfer-mlp") for seed in (1, 2)]
    for run in runs:
        _write_metrics(run, [_eval(60.0)])
        _log_numerics(run, 1)
    assert bench.run_numerics(runs[0]) == "cpu X, torch intra-op threads 1"
    text = bench.report(work, [1, 2], "cmd", "m")
    assert "Numerics of every run: cpu X, torch intra-op threads 1." in text
    _log_numerics(runs[1], 2)  # the same seed list, one run made with two threads
    text = bench.report(work, [1, 2], "cmd", "m")
    assert "made under 2 different numerics" in text and "threads 2 (1 runs" in text
    os.remove(os.path.join(runs[1], "log.txt"))  # a run from before the line was logged
    assert bench.run_numerics(runs[1]) is None
    assert "not logged (1 runs, e.g. transfer-mlp 2)" in bench.report(work, [1, 2], "cmd", "m")


@pytest.mark.parametrize("key", bench.STAGEWISE_ROWS)
def test_each_stagewise_row_is_its_end_to_end_row_on_a_frozen_detector(key):
    end_to_end = key[len("sw-") :]
    # The synthetic base already builds MaskXRCNN, which only a frozen detector changes.
    assert _differences(_config_of(end_to_end), _config_of(key)) == {"MODEL.MASKX.FREEZE_DETECTOR"}
    assert _config_of(key).MODEL.META_ARCHITECTURE == "MaskXRCNN"


def _detector_stage_config():
    cfg = _config_file(f"{bench.CONFIGS}/{bench.DETECTOR_STAGE_CONFIG}")
    cfg.merge_from_list(list(bench.DETECTOR_STAGE_OPTS) + ["MODEL.DEVICE", "cpu"])
    return cfg


@pytest.mark.parametrize("key", ["sw-transfer-mlp", "sw-class-agnostic"])
def test_the_stagewise_model_takes_every_weight_of_the_stage_1_detector(key, tmp_path):
    """Stage 2 loads the whole Faster R-CNN of stage 1 (no detector weight left at its random
    init, none ignored) and trains only the mask branch, which stage 1 does not have."""
    from detectron2.checkpoint import DetectionCheckpointer

    torch.manual_seed(0)
    detector = build_model(_detector_stage_config())
    assert not any(name.startswith("roi_heads.mask_head") for name in detector.state_dict())
    path = str(tmp_path / "model_final.pth")
    torch.save({"model": detector.state_dict()}, path)

    cfg = _config_of(key)
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    loaded = DetectionCheckpointer(model).load(path)  # noqa: F841 (returns extra checkpoint data)
    state = model.state_dict()
    for name, value in detector.state_dict().items():
        assert torch.equal(state[name], value), name
    missing = set(state) - set(detector.state_dict())
    assert missing and all(name.startswith("roi_heads.mask_head.") for name in missing)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("roi_heads.mask_head.") for n in trainable)


def test_stagewise_rows_share_the_seeds_detector_trained_once(tmp_path, monkeypatch, capsys):
    """The first stage-wise row of a seed trains the seed's detector (no mask branch, no
    evaluation), the others reuse it; each stage-2 run starts from its checkpoint. A detector
    that fails costs its rows only."""
    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        out = cmd[cmd.index("OUTPUT_DIR") + 1]
        if out.endswith(os.path.join("seed1", bench.DETECTOR_STAGE)):
            with open(os.path.join(out, "model_final.pth"), "w") as f:
                f.write("weights")
        return bench.subprocess.CompletedProcess(cmd, 1 if "seed2" in out else 0)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    args = _train_args(tmp_path / "work")
    bench._train("sw-transfer", 1, args)
    bench._train("sw-class-agnostic", 1, args)
    detector_runs = [c for c in commands if c[c.index("OUTPUT_DIR") + 1].endswith("detector")]
    assert len(detector_runs) == 1 and len(commands) == 3
    stage1 = detector_runs[0]
    assert stage1[stage1.index("MODEL.MASK_ON") + 1] == "False"
    assert stage1[stage1.index("DATASETS.TEST") + 1] == "()"
    checkpoint = os.path.abspath(bench.detector_checkpoint(args.work_dir, 1))
    for cmd in commands[1:]:
        assert cmd[len(cmd) - 1 - cmd[::-1].index("MODEL.WEIGHTS") + 1] == checkpoint
        assert cmd[cmd.index("MODEL.MASKX.FREEZE_DETECTOR") + 1] == "True"
        assert cmd[cmd.index("SEED") + 1] == "1"

    commands.clear()
    assert bench._train("sw-transfer", 2, args) == ("sw-transfer", 2, None)
    assert len(commands) == 1  # the failed detector only: no stage 2 without it
    err = capsys.readouterr().err
    assert "detector seed 2: FAILED" in err and "sw-transfer seed 2: FAILED" in err
    bench._train("sw-class-agnostic", 2, args)
    assert len(commands) == 1  # the seed's next row does not train the failed detector again


def test_report_has_a_stagewise_table_with_its_own_oracle(tmp_path):
    work = str(tmp_path)
    for key, gtbox_b in [
        ("sw-class-agnostic", 30.0),
        ("sw-transfer", 45.0),
        ("sw-oracle-maskx", 60.0),
        ("class-agnostic", 20.0),
        ("oracle-maskx", 90.0),
    ]:
        _write_metrics(os.path.join(work, "seed1", key), [_eval(gtbox_b)])
    text = bench.report(work, [1], "cmd", "machine")
    main, stagewise = text.split("Stage-wise (the paper's sw rows")
    assert "| stage-wise" not in main
    rows = [line for line in stagewise.splitlines() if line.startswith("| stage-wise")]
    assert [r.split(" | ")[0] for r in rows] == [
        "| stage-wise class-agnostic",
        "| stage-wise transfer, cls+box",
        "| stage-wise oracle: transfer+MLP, every class with masks",
    ]
    assert rows[1].endswith("| 50% | - |")  # (45 - 30) / (60 - 30), to the stage-wise oracle


def test_each_seeds_first_stagewise_row_goes_first(tmp_path, monkeypatch):
    """A seed's first stage-wise row trains its detector: those rows lead, one per seed, so
    that the workers train detectors side by side and no row waits for another's."""
    outputs = []

    def fake_run(cmd, **kwargs):
        out = cmd[cmd.index("OUTPUT_DIR") + 1]
        outputs.append(os.path.relpath(out, str(tmp_path)))
        if out.endswith(bench.DETECTOR_STAGE):
            with open(os.path.join(out, "model_final.pth"), "w") as f:
                f.write("weights")
        return bench.subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    variants = ["class-agnostic", "sw-class-agnostic", "sw-transfer"]
    argv = ["bench", "--seeds", "42", "1", "--variants", *variants, "--work-dir", str(tmp_path)]
    monkeypatch.setattr(bench.sys, "argv", argv)
    bench.main()
    assert outputs == [
        "seed42/detector",
        "seed42/sw-class-agnostic",
        "seed1/detector",
        "seed1/sw-class-agnostic",
        "seed42/class-agnostic",
        "seed42/sw-transfer",
        "seed1/class-agnostic",
        "seed1/sw-transfer",
    ]
