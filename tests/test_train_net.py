"""The main job end to end on a few iterations: train, checkpoint, resume, evaluate, eval-only."""

import json
import os
import re
import sys

import pytest
from pipeline_fixtures import INSTANT

import train_net

GROUPS = {"bbox", "segm", "bbox_A", "segm_A", "bbox_B", "segm_B"}
GT_BOX_GROUPS = {"segm_gtbox", "segm_gtbox_A", "segm_gtbox_B"}


def _run(*argv):
    return train_net.main(train_net.argument_parser().parse_args(list(argv)))


def _iterations(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line)["iteration"] for line in f if '"total_loss"' in line]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("instant"))
    results = _run("--config-file", INSTANT, "OUTPUT_DIR", out)
    return out, results


def test_train_writes_checkpoints_logs_and_ab_results(trained):
    out, _ = trained
    for name in (
        "model_0000001.pth",
        "model_0000003.pth",
        "model_final.pth",
        "last_checkpoint",
        "log.txt",
        "config.yaml",
    ):
        assert os.path.exists(os.path.join(out, name)), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out))  # TensorBoard
    assert _iterations(out) == [3]  # detectron2's writers log every 20 iterations and at the end
    # Training ends with an evaluation on DATASETS.TEST that reports sets A and B, as a table.
    with open(os.path.join(out, "log.txt")) as f:
        log = f.read()
    assert "Evaluation results for synthetic_shapes_v2_val_mini" in log
    for task in ("bbox", "segm", "segm_gtbox"):  # one table, masks on GT boxes included
        assert re.search(rf"\| {task} +\| B +\|", log), task
    # What else decides the numbers: the machine's numerics and the data's content digest.
    assert re.search(r"Numerics: cpu .+, torch cpu capability \w+, torch intra-op threads \d+", log)
    assert re.search(r"val_mini: synthetic shapes split, content sha256 [0-9a-f]{64}\n", log)


def test_resume_continues_from_the_last_checkpoint(trained):
    out, _ = trained
    _run("--config-file", INSTANT, "--resume", "OUTPUT_DIR", out, "SOLVER.MAX_ITER", "6")
    assert _iterations(out) == [3, 5]
    with open(os.path.join(out, "log.txt")) as f:
        assert "Starting training from iteration 4" in f.read()
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_final.pth"


def test_eval_only_reports_all_a_and_b(trained):
    out, _ = trained
    eval_only = ["--config-file", INSTANT, "--eval-only", "OUTPUT_DIR", out]
    eval_only += ["MODEL.WEIGHTS", os.path.join(out, "model_final.pth")]
    results = _run(*eval_only)
    assert GROUPS | GT_BOX_GROUPS <= set(results)
    for key in GROUPS:
        assert set(results[key]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    for key in GT_BOX_GROUPS:
        fields = set(results[key])
        per_class = {f for f in fields if f.startswith("mIoU-")}
        assert fields - per_class == {"mIoU", "AP", "AP50", "AP75"}
        assert per_class  # each class of the group with ground truth, by name
    off = _run(*eval_only, "TEST.MASKX.GT_BOX_EVAL", "False")
    assert GROUPS <= set(off) and not GT_BOX_GROUPS & set(off)
    # The standard numbers do not depend on it.
    assert off["segm_B"] == pytest.approx(results["segm_B"], nan_ok=True)


def test_dataset_module_registers_user_data(tmp_path):
    """--dataset-module runs the user's registration before the config names the dataset."""
    from coco_fixtures import coco_categories, make_coco_dataset, write_coco_dataset

    dataset = make_coco_dataset(coco_categories([1, 2, 3]), num_images=2, instances_per_image=3)
    write_coco_dataset(dataset, str(tmp_path / "train.json"), str(tmp_path / "images"))
    module = tmp_path / "my_data.py"
    module.write_text(
        "from maskx_d2.data import register_partially_supervised_coco_json\n"
        f"register_partially_supervised_coco_json('my_fixture_train', r'{tmp_path}/train.json',"
        f" r'{tmp_path}/images', mask_classes=[1])\n"
    )
    out = tmp_path / "out"
    _run(
        "--dataset-module",
        str(module),
        "--config-file",
        INSTANT,
        "OUTPUT_DIR",
        str(out),
        "DATASETS.TRAIN",
        "('my_fixture_train',)",
        "DATASETS.TEST",
        "()",
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "3",
        "SOLVER.MAX_ITER",
        "2",
        "INPUT.MIN_SIZE_TRAIN",
        "(64,)",
    )
    assert os.path.exists(out / "model_final.pth")
    with pytest.raises(FileNotFoundError, match="missing.py"):
        _run("--dataset-module", str(tmp_path / "missing.py"), "--config-file", INSTANT)


def test_ground_truth_box_training_and_box_supervision_train_and_evaluate(tmp_path):
    options = {
        "MODEL.MASKX.MASK_TRAIN_BOXES": "both",
        "MODEL.MASKX.GT_BOX_JITTER": "0.05",
        "MODEL.MASKX.BOX_SUPERVISION.PROJECTION_WEIGHT": "1.0",
        "MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WEIGHT": "1.0",
    }
    argv = ["--config-file", INSTANT, "OUTPUT_DIR", str(tmp_path)]
    _run(*argv, *[x for kv in options.items() for x in kv])
    with open(tmp_path / "log.txt") as f:
        assert re.search(r"\| segm_gtbox +\| B +\|", f.read())
    with open(tmp_path / "metrics.json") as f:
        logged = [json.loads(line) for line in f if '"total_loss"' in line]
    assert logged and all(r["loss_mask_projection"] >= 0 for r in logged)
    assert all(r["loss_mask_pairwise"] >= 0 for r in logged)


def test_a_run_evaluated_on_another_set_is_recorded_as_the_bench_reads_it(trained, tmp_path):
    """bench/evaluate_run.py: an oracle's numbers on another split without training it again."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    import bench_synthetic_table1c as bench
    import evaluate_run

    out, _ = trained
    dataset = "synthetic_shapes_v2_val_mini"
    # The other tests' --eval-only calls rewrite the run's config.yaml (default_setup writes it
    # into OUTPUT_DIR), one of them with the GT-box evaluation off: switched on again here.
    on = ("TEST.MASKX.GT_BOX_EVAL", "True")
    results = evaluate_run.evaluate_run(out, dataset, str(tmp_path), opts=on)
    recorded = bench.final_results(str(tmp_path), dataset)
    assert recorded["evaluated_run"] == os.path.abspath(out)
    for group, metric in (("segm_gtbox_B", "mIoU"), ("segm_B", "AP"), ("bbox_A", "AP")):
        assert recorded[f"{group}/{metric}"] == pytest.approx(results[group][metric], nan_ok=True)
    with pytest.raises(FileNotFoundError, match="model_final.pth: not found"):
        evaluate_run.evaluate_run(str(tmp_path / "nothing"), dataset, str(tmp_path / "x"))
