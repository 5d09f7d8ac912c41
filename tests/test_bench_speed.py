"""The speed benchmark against Mask R-CNN and its schedule estimate.

Nothing here asserts a timing (timings belong in docs/benchmarks.md): the estimate's arithmetic
is checked on round numbers, and the benchmark script is run end to end on a tiny CPU setting so
it cannot rot between the sessions that have a GPU to run it on.
"""

import subprocess
import sys

import pytest
from schedule_estimate import estimate_schedule


def test_eight_gpus_share_the_papers_images():
    # 90k it × 16 img / 8 GPUs = 180k images per GPU at 250 ms each = 12.5 h, / 0.9 efficiency.
    estimate = estimate_schedule(500.0, 2, num_gpus=8, scaling_efficiency=0.9)
    assert estimate.hours == pytest.approx(12.5 / 0.9)
    assert "250.0 ms/img measured at batch 2" in estimate.assumptions
    assert "scaling efficiency 0.90" in estimate.assumptions


def test_one_gpu_has_no_scaling_loss():
    # 1.44M images at 125 ms each = 50 h; the efficiency only applies across GPUs.
    estimate = estimate_schedule(1000.0, 8, num_gpus=1, scaling_efficiency=0.5)
    assert estimate.hours == pytest.approx(50.0)
    assert "efficiency" not in estimate.assumptions.split(";")[0]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(ms_per_iter=0.0, measured_images_per_iter=2, num_gpus=1),
        dict(ms_per_iter=10.0, measured_images_per_iter=0, num_gpus=1),
        dict(ms_per_iter=10.0, measured_images_per_iter=2, num_gpus=0),
        dict(ms_per_iter=10.0, measured_images_per_iter=2, num_gpus=8, scaling_efficiency=1.5),
    ],
)
def test_nonsense_inputs_are_refused(kwargs):
    with pytest.raises(ValueError):
        estimate_schedule(**kwargs)


def _tiny_run(*extra):
    """The benchmark's stdout on a tiny CPU setting: 2 images of 64 x 64, one iteration."""
    command = [
        sys.executable,
        "bench/bench_speed_vs_mask_rcnn.py",
        "--size", "64", "64",
        "--batch", "2",
        "--iters", "1",
        "--warmup", "0",
        "--rounds", "1",
        *extra,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout


def test_benchmark_runs_end_to_end_and_prints_ratios():
    out = _tiny_run("--schedule-gpus", "8")
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["variant"])
    rows = {line.split()[0]: line.split() for line in lines[header + 1 : header + 4]}
    assert set(rows) == {"mask_rcnn", "transfer", "transfer+mlp"}, out
    assert rows["mask_rcnn"][-3:] == ["1.000", "1.000", "1.000"], out  # the baseline's own ratios
    for variant in ("transfer", "transfer+mlp"):
        assert all(float(x) > 0 for x in rows[variant][1:]), out
    assert sum(line.startswith("schedule") for line in lines) == 3, out


def test_largest_batch_search_is_refused_on_cpu():
    command = [sys.executable, "bench/bench_speed_vs_mask_rcnn.py", "--batch", "max"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--batch max" in result.stderr


def test_the_options_beyond_the_paper_are_measured_against_mask_rcnn():
    variants = [
        "+gt-boxes",
        "+boxinst",
        "+boxinst-gentle",
        "+separable-roi-align",
        "+residual",
        "+hourglass",
        "+cam-prior",
    ]
    _assert_every_variant_measured(variants)


def test_the_other_systems_are_measured_against_mask_rcnn():
    _assert_every_variant_measured(["blendmask", "mnc", "mnc-5stage", "deepmask"])


def _assert_every_variant_measured(variants):
    out = _tiny_run("--box-only-fraction", "0.5", "--variants", *variants)
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["variant"])
    rows = {
        line.split()[0]: line.split() for line in lines[header + 1 : header + 2 + len(variants)]
    }
    assert set(rows) == {"mask_rcnn", *variants}, out
    assert all(float(x) > 0 for row in rows.values() for x in row[1:]), out


def test_the_gentle_recipe_is_the_box_supervision_config_without_its_warm_up():
    from bench_speed_vs_mask_rcnn import BOXSUP_CONFIG, VARIANTS
    from detectron2.config import get_cfg

    from maskx_d2 import add_maskx_config

    def config(*merges):
        cfg = get_cfg()
        add_maskx_config(cfg)
        for merge in merges:
            merge(cfg)
        return cfg.MODEL.MASKX

    # The box-supervision config is the main job's config + its recipe.
    main_job = BOXSUP_CONFIG.replace("maskx_boxsup_", "maskx_")
    speed = config(
        lambda cfg: cfg.merge_from_file(main_job),
        lambda cfg: cfg.merge_from_list(VARIANTS["+boxinst-gentle"]),
    )
    boxsup = config(lambda cfg: cfg.merge_from_file(BOXSUP_CONFIG))
    assert boxsup.BOX_SUPERVISION.PAIRWISE_WARMUP_ITERS > 0
    assert speed.BOX_SUPERVISION.PAIRWISE_WARMUP_ITERS == 0
    speed.BOX_SUPERVISION.PAIRWISE_WARMUP_ITERS = boxsup.BOX_SUPERVISION.PAIRWISE_WARMUP_ITERS
    assert speed == boxsup


def test_own_keys_reads_only_what_a_config_sets_itself(tmp_path):
    from config_keys import own_keys

    path = tmp_path / "recipe.yaml"
    path.write_text("_BASE_: base.yaml\nMODEL:\n  MASKX:\n    A: 1\n    B:\n      C: x\n")
    assert own_keys(path, "MODEL.MASKX") == ["MODEL.MASKX.A", 1, "MODEL.MASKX.B.C", "x"]
    with pytest.raises(KeyError, match="recipe.yaml sets nothing under SOLVER"):
        own_keys(path, "SOLVER")
