#!/usr/bin/env python
"""The GPU parts of issues 9 and 11 as prepared commands for the lent GPU machine.

Here, once per session (packs detectron2 & co. for the device's Python 3.12, about 7 MB)::

    bash bench/device/pack_site.sh

Then with the device tool (/work/.library/device/), one call per part, each within its 10 min::

    run(command="python3 bench/device/gpu_checks.py --speed", carry=[".device_site"], timeout_s=600)
    run(command="python3 bench/device/gpu_checks.py --table", carry=[".device_site"], timeout_s=600)

- ``--speed``: bench/bench_speed_vs_mask_rcnn.py with R-50-FPN at 800 x 1333 (the paper's input),
  every mask head and option against detectron2's Mask R-CNN, as ratios from one run.
- ``--table``: Table 1c v2 (bench/bench_synthetic_table1c.py) at the 10x schedule (16000
  iterations, the main job's 1600 x 10) for the given variants and seeds, ``--jobs`` trainings
  sharing the GPU at once. A probe first trains ``--jobs`` runs of ``--probe-iters`` at once and
  measures the seconds per iteration and the fixed cost of a run (start, evaluation) under that
  sharing. When the 10x schedule does not fit ``--budget-s``, the largest multiple of 1600
  iterations that does is run instead and the report says so (it is never called 10x); when
  not even 1600 fit, no table is trained. ``--probe-iters 0`` skips the probe and trains
  ``--iters`` directly (stopped at ``--budget-s`` + 60 s).

Measured on the H200 (2026-12-04, docs/table1c_synthetic.md "On a GPU at twice the schedule"):
these runs are too small to fill the GPU, and runs sharing it take turns, so the whole machine
trains about 23-25 iterations a second whatever the sharing: 9 runs at once 0.337 s/iteration
each, 3 runs at once (5 threads each) 0.127-0.132. The 10x table (3 variants x 3 seeds x 16000
iterations) would need about 100 minutes of it; a session's 15 device minutes buy one seed of
three variants at 2x (3200 iterations, 7.5 minutes) in one call that skips the probe::

    python3 bench/device/gpu_checks.py --table --probe-iters 0 --iters 3200 --budget-s 440 \
        --jobs 3 --seeds 1 --variants class-agnostic transfer-mlp oracle-maskx

Everything lands in ``--out`` (default: ``$OUT``, the device tool's folder, else output/device):
``gpu_checks.log`` (what ran, with the probe's figures), ``speed.txt``,
``table1c_v2_gpu.md`` and ``table1c_runs.tgz`` (each run's metrics.json, log.txt and
config.yaml): at most 8 files, as the device tool returns. Try it on a CPU with
``--device cpu --probe-iters 20 --iters 40 --budget-s 600 --variants transfer-mlp --jobs 1`` and
``--speed --device cpu --speed-config configs/Synthetic/Base-Synthetic-R-18-FPN.yaml
--speed-size 128 128``.
"""

import argparse
import glob
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITE = os.path.join(ROOT, ".device_site")
MAIN_JOB_ITERS = 1600  # configs/Synthetic/Base-Synthetic-R-18-FPN.yaml SOLVER.MAX_ITER
TEN_X = 10 * MAIN_JOB_ITERS
# Issue 11 asks for the best combination and transfer+MLP; class-agnostic and the oracle give
# the gap that both are measured against (issue 9).
DEFAULT_VARIANTS = [
    "class-agnostic",
    "transfer-mlp",
    "transfer-mlp-projection-gt-boxes",
    "oracle-maskx",
]
SPEED_VARIANTS = [
    "transfer",
    "transfer+mlp",
    "+gt-boxes",
    "+boxinst",
    "+residual",
    "+hourglass",
    "+cam-prior",
]
# A device call may run 600 s; the speed part is a call of its own (its 16 processes take about
# 5 minutes at 800 x 1333, an estimate: it has not run on the GPU yet).
SPEED_TIMEOUT_S = 540
# The metric the table's gap is computed from (bench_synthetic_table1c.GAP_KEY, pinned equal by
# a test): a run whose metrics.json lacks it did not finish its evaluation. Not imported from
# there, nor read with its final_results: that module imports maskx_d2 and so detectron2, which
# this process (the device's bare python3, without .device_site on its path) lacks.
GAP_KEY = "segm_gtbox_B/mIoU"
# One dataset per split folder: the others of the main split (train_full, shifted_*) read the
# same two folders, so generating these two in parallel races on nothing.
DATASETS = ("synthetic_shapes_v2_train", "synthetic_shapes_v2_val")


def seconds_per_iteration(metrics_path, skip=1):
    """Median of detectron2's per-iteration ``time`` records in a run's metrics.json.

    The first ``skip`` records are left out: they hold the warm-up (cuDNN autotuning, the data
    loader's start). Returns None when the file has no usable record.
    """
    times = []
    with open(metrics_path) as f:
        for line in f:
            record = json.loads(line)
            if "time" in record:
                times.append(record["time"])
    times = times[skip:] or times
    return statistics.median(times) if times else None


def evaluated(metrics_path, key=GAP_KEY):
    """Whether a run's metrics.json holds its training-end evaluation (a record with ``key``,
    detectron2 prefixing it with the dataset's name when there are several test sets)."""
    try:
        with open(metrics_path) as f:
            return any(k == key or k.endswith("/" + key) for line in f for k in json.loads(line))
    except FileNotFoundError:
        return False


def fit_iterations(sec_per_iter, overhead_s, waves, budget_s, target=TEN_X, unit=MAIN_JOB_ITERS):
    """The schedule to train: ``target`` iterations if ``waves`` rounds of runs fit ``budget_s``,
    else the largest multiple of ``unit`` that fits, else 0.

    A round takes ``overhead_s + iterations * sec_per_iter`` seconds (all its runs at once).
    """
    per_wave = budget_s / max(1, waves) - overhead_s
    if per_wave <= 0:
        return 0
    fitting = per_wave / sec_per_iter
    if fitting >= target:
        return target
    return int(fitting // unit) * unit


def child_env():
    """Environment of the benches: the packed site and the checkout on the path. Threads are
    left to the benches (bench_synthetic_table1c.py gives each of its --jobs a share)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("DETECTRON2_DATASETS", os.path.join(ROOT, "datasets"))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (SITE, ROOT, os.environ.get("PYTHONPATH")) if p and os.path.exists(p)
    )
    return env


class Log:
    """Prints and appends to ``gpu_checks.log`` in the output folder."""

    def __init__(self, path):
        self.path = path

    def __call__(self, *parts):
        line = f"[{time.strftime('%H:%M:%S')}] " + " ".join(str(p) for p in parts)
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def run(cmd, log, timeout=None, output=None):
    """Runs ``cmd`` in the checkout; its output goes to ``output`` (a path) or the log."""
    log("$", " ".join(cmd))
    start = time.time()
    with open(output or log.path, "a") as out:
        try:
            code = subprocess.run(
                cmd,
                cwd=ROOT,
                env=child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    log(f"-> {code} after {time.time() - start:.0f} s")
    return code


def describe_environment(args, log):
    code = (
        "import torch, detectron2, pycocotools, maskx_d2; "
        "print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), "
        "torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', "
        "'detectron2', detectron2.__version__)"
    )
    if run([args.python, "-c", code], log) != 0:
        raise SystemExit(
            f"the environment is incomplete: see {log.path} (bench/device/pack_site.sh)"
        )


def generate_data(args, log):
    """Generates the benchmark's splits once, before several trainings would race to do it: one
    process per split, all at once (each split is its own folder; the training split takes about
    25 s on one core)."""
    start = time.time()
    children = []
    for name in DATASETS:
        code = f"import maskx_d2; from detectron2.data import DatasetCatalog as C; C.get({name!r})"
        out = open(os.path.join(args.out, f"generate_{name}.log"), "w")
        child = subprocess.Popen(
            [args.python, "-c", code], cwd=ROOT, env=child_env(), stdout=out, stderr=out
        )
        children.append((name, child, out))
    failed = []
    for name, child, out in children:
        if child.wait() != 0:
            failed.append(name)
        out.close()
    log(f"generated {[name for name, _, _ in children]} in {time.time() - start:.0f} s")
    if failed:
        raise SystemExit(f"could not generate {failed}: see generate_*.log in {args.out}")


def speed(args, log):
    cmd = [
        args.python, "bench/bench_speed_vs_mask_rcnn.py", "--device", args.device,
        "--config", args.speed_config, "--size", *map(str, args.speed_size),
        "--batch", "2", "--rounds", "2", "--box-only-fraction", "0.5",
        "--variants", *SPEED_VARIANTS,
    ]  # fmt: skip
    run(cmd, log, timeout=SPEED_TIMEOUT_S, output=os.path.join(args.out, "speed.txt"))


def table_command(args, iters, seeds, variants, work_dir, threads):
    return [
        args.python, "bench/bench_synthetic_table1c.py", "--device", args.device,
        "--iters", str(iters), "--jobs", str(args.jobs), "--threads", str(threads),
        "--seeds", *map(str, seeds), "--variants", *variants, "--work-dir", work_dir,
    ]  # fmt: skip


def probe(args, log, threads):
    """Trains ``--jobs`` short runs at once; returns (seconds per iteration under that sharing,
    seconds per run besides training). Exits when a probe run did not finish its evaluation."""
    probe_dir = os.path.join(ROOT, "output", "device_probe")
    probe_seeds = list(range(1000, 1000 + args.jobs))
    # A probe left by an earlier call on a still-warm machine would be taken as finished.
    shutil.rmtree(probe_dir, ignore_errors=True)
    start = time.time()
    run(
        table_command(args, args.probe_iters, probe_seeds, ["transfer-mlp"], probe_dir, threads),
        log,
    )
    probe_wall = time.time() - start
    run_dirs = glob.glob(os.path.join(probe_dir, "seed*", "transfer-mlp"))
    metrics = [os.path.join(d, "metrics.json") for d in run_dirs]
    rates = [r for r in map(seconds_per_iteration, filter(os.path.isfile, metrics)) if r]
    if not rates:
        raise SystemExit(f"the probe trained nothing: see {log.path}")
    unfinished = [d for d, path in zip(run_dirs, metrics) if not evaluated(path)]
    if unfinished:
        # Training or its evaluation broke (a missing package, say): the table would too.
        with open(os.path.join(unfinished[0], "stdout.log")) as f:
            log("a probe run did not finish its evaluation; the end of its output:")
            log("".join(f.readlines()[-25:]))
        raise SystemExit(f"{len(unfinished)} probe run(s) did not finish: no table trained")
    sec_per_iter = max(rates)
    return sec_per_iter, max(0.0, probe_wall - args.probe_iters * sec_per_iter)


def table(args, log):
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    work = os.path.join(ROOT, "output", "device_table1c_v2")
    if args.probe_iters > 0:
        sec_per_iter, overhead = probe(args, log, threads)
        waves = math.ceil(len(args.seeds) * len(args.variants) / args.jobs)
        iters = fit_iterations(sec_per_iter, overhead, waves, args.budget_s, target=args.iters)
        log(
            f"probe: {args.jobs} runs at once, {sec_per_iter:.3f} s/iteration, {overhead:.0f} s "
            f"per run besides training; {waves} round(s) in {args.budget_s} s -> {iters} "
            f"iterations ({iters / MAIN_JOB_ITERS:g}x the main job; asked {args.iters})"
        )
        speed_note = f"{sec_per_iter:.3f} s/iteration with {args.jobs} runs sharing the device"
    else:
        # No probe: the schedule asked for, trained as far as --budget-s allows.
        iters, speed_note = args.iters, "no probe"
        log(f"no probe: {iters} iterations ({iters / MAIN_JOB_ITERS:g}x the main job)")
    if iters == 0:
        log("not even the main job's schedule fits the budget: no table trained")
        return
    # Slack for the last round's evaluation; the report below tabulates whatever finished.
    command = table_command(args, iters, args.seeds, args.variants, work, threads)
    run(command, log, timeout=args.budget_s + 60)
    report = os.path.join(args.out, "table1c_v2_gpu.md")
    cmd = [args.python, "bench/bench_synthetic_table1c.py", "--report-only", "--work-dir", work]
    cmd += ["--seeds", *map(str, args.seeds), "--device", args.device, "--output", report]
    run(cmd, log)
    with open(report, "a") as f:
        f.write(
            f"\nTrained by `bench/device/gpu_checks.py --table` ({speed_note}): "
            f"`{' '.join(command[1:])}`, {iters} iterations, {iters / MAIN_JOB_ITERS:g}x the "
            f"main job's {MAIN_JOB_ITERS}.\n"
        )
    with tarfile.open(os.path.join(args.out, "table1c_runs.tgz"), "w:gz") as tar:
        for name in ("metrics.json", "log.txt", "config.yaml"):
            for path in glob.glob(os.path.join(work, "seed*", "*", name)):
                tar.add(path, arcname=os.path.relpath(path, work))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speed", action="store_true", help="R-50-FPN speed/memory at 800x1333")
    parser.add_argument("--table", action="store_true", help="Table 1c v2 at the 10x schedule")
    parser.add_argument(
        "--out", default=os.environ.get("OUT") or os.path.join(ROOT, "output", "device")
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--speed-config", default="configs/Base-MaskX-RCNN-FPN.yaml")
    parser.add_argument("--speed-size", type=int, nargs=2, default=[800, 1333], metavar=("H", "W"))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--budget-s", type=int, default=360, help="seconds for the training part")
    parser.add_argument("--iters", type=int, default=TEN_X, help="schedule asked for")
    parser.add_argument(
        "--probe-iters", type=int, default=100, help="0: no probe, train --iters directly"
    )
    parser.add_argument("--jobs", type=int, default=3, help="trainings sharing the GPU at once")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    args = parser.parse_args(argv)
    if not (args.speed or args.table):
        parser.error("give --speed, --table or both")
    os.makedirs(args.out, exist_ok=True)
    log = Log(os.path.join(args.out, "gpu_checks.log"))
    log("gpu_checks", " ".join(sys.argv[1:]))
    describe_environment(args, log)
    if args.table:
        generate_data(args, log)
    if args.speed:
        speed(args, log)
    if args.table:
        table(args, log)


if __name__ == "__main__":
    main()
