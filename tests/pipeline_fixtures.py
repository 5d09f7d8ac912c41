"""Shared by the tests that run the whole pipeline through train_net.py."""

import os

import train_net

QUICK_SCHEDULES = os.path.join(
    os.path.dirname(__file__), "..", "configs", "Synthetic", "quick_schedules"
)


def quick_schedule(name: str) -> str:
    """Path of configs/Synthetic/quick_schedules/<name>.yaml (a few iterations on the synthetic
    data: train, checkpoint, evaluate)."""
    return os.path.join(QUICK_SCHEDULES, f"{name}.yaml")


# A few iterations of the main job.
INSTANT = quick_schedule("maskx_R_18_FPN_synthetic_instant_test")


def train_then_evaluate(config: str, output_dir: str) -> dict:
    """Train ``config`` through train_net.py into ``output_dir``, then evaluate its final
    checkpoint with ``--eval-only``; returns the evaluation's results. Asserts the checkpoint."""
    run = ["--config-file", config, "OUTPUT_DIR", output_dir]
    train_net.main(train_net.argument_parser().parse_args(run))
    final = os.path.join(output_dir, "model_final.pth")
    assert os.path.exists(final)
    eval_only = ["--config-file", config, "--eval-only", "OUTPUT_DIR", output_dir]
    return train_net.main(
        train_net.argument_parser().parse_args(eval_only + ["MODEL.WEIGHTS", final])
    )


def assert_ab_and_gt_box_results(results: dict) -> None:
    """The A/B evaluator's standard and GT-box groups are all there, with a GT-box mIoU."""
    for key in ("bbox_A", "bbox_B", "segm_A", "segm_B", "segm_gtbox_A", "segm_gtbox_B"):
        assert key in results, key
    assert 0.0 < results["segm_gtbox_B"]["mIoU"] <= 100.0


def model_of_run(output_dir: str):
    """The model that the config.yaml of a train_net.py run builds (random weights)."""
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    from maskx_d2 import add_maskx_config

    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(os.path.join(output_dir, "config.yaml"))
    return build_model(cfg)
