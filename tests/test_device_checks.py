"""bench/device/gpu_checks.py: the prepared GPU command's arithmetic and the names it passes on.

The command itself runs on the lent GPU machine; its whole table path was tried on this CPU with
the command in its docstring. These tests keep the parts that decide what it trains from rotting.
"""

import json
import os
import sys

import bench_speed_vs_mask_rcnn
import bench_synthetic_table1c
import pytest
from detectron2.data import DatasetCatalog

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench", "device"))
import gpu_checks  # noqa: E402


def test_the_ten_x_schedule_when_it_fits():
    # 1 round: 60 s overhead + 16000 it x 0.02 s = 380 s <= 400 s.
    assert gpu_checks.fit_iterations(0.02, 60, 1, 400) == 16000


def test_the_largest_multiple_of_the_main_job_that_fits():
    # 2 rounds in 400 s: 200 s each, 140 s of training at 0.03 s/it = 4666 it -> 2 x 1600.
    assert gpu_checks.fit_iterations(0.03, 60, 2, 400) == 3200


def test_nothing_when_not_even_the_main_job_fits():
    assert gpu_checks.fit_iterations(0.1, 60, 1, 200) == 0  # 140 s / 0.1 = 1400 < 1600
    assert gpu_checks.fit_iterations(0.01, 500, 1, 400) == 0  # the overhead alone is over


def test_seconds_per_iteration_is_the_median_after_the_warm_up(tmp_path):
    path = tmp_path / "metrics.json"
    records = [{"iteration": 19, "time": 9.0}] + [
        {"iteration": 39 + 20 * i, "time": t} for i, t in enumerate([0.3, 0.1, 0.2, 0.4])
    ]
    records.append({"iteration": 119, "bbox/AP": 50.0})  # the final evaluation: no time
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert gpu_checks.seconds_per_iteration(str(path)) == pytest.approx(0.25)
    assert gpu_checks.seconds_per_iteration(str(path), skip=0) == pytest.approx(0.3)


def test_no_rate_from_a_run_that_logged_no_iteration(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"iteration": 0, "bbox/AP": 1.0}) + "\n")
    assert gpu_checks.seconds_per_iteration(str(path)) is None


def test_the_names_it_passes_exist():
    assert set(gpu_checks.DEFAULT_VARIANTS) <= set(bench_synthetic_table1c.VARIANTS)
    assert set(gpu_checks.SPEED_VARIANTS) <= set(bench_speed_vs_mask_rcnn.VARIANTS)
    assert set(gpu_checks.DATASETS) <= set(DatasetCatalog.list())
    # The 10x schedule is ten times the main job's, read from the main job's config.
    with open(os.path.join(gpu_checks.ROOT, "configs/Synthetic/Base-Synthetic-R-18-FPN.yaml")) as f:
        assert f"MAX_ITER: {gpu_checks.MAIN_JOB_ITERS}" in f.read()
    assert gpu_checks.TEN_X == 10 * gpu_checks.MAIN_JOB_ITERS


def test_the_packed_site_and_the_checkout_come_first_on_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_checks, "SITE", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = gpu_checks.child_env()
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(tmp_path), gpu_checks.ROOT]


def test_a_run_counts_as_evaluated_only_with_the_gap_metric(tmp_path):
    path = tmp_path / "metrics.json"
    assert not gpu_checks.evaluated(str(path))  # no file: not finished
    path.write_text(json.dumps({"iteration": 19, "time": 0.3}) + "\n")
    assert not gpu_checks.evaluated(str(path))
    with path.open("a") as f:
        f.write(json.dumps({"iteration": 39, "synthetic_shapes_v2_val/segm_gtbox_B/mIoU": 40}))
    assert gpu_checks.evaluated(str(path))
    assert gpu_checks.GAP_KEY == bench_synthetic_table1c.GAP_KEY
