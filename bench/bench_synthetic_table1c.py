#!/usr/bin/env python
"""Table 1c on the embedded synthetic data: class-agnostic vs transfer vs transfer+MLP vs oracle.

Trains each variant with train_net.py on the same data, schedule and seed, in one go, and
writes the table of box and mask AP on A and B (markdown) to stdout and to --output.

    python bench/bench_synthetic_table1c.py --output docs/table1c_synthetic.md
    python bench/bench_synthetic_table1c.py --iters 20000 --device cuda   # longer, on a GPU
    python bench/bench_synthetic_table1c.py --report-only --output ...   # re-tabulate runs
    python bench/bench_synthetic_table1c.py --variants class-agnostic transfer \
        --work-dir output/seed1 SEED 1                                    # another seed
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
VARIANTS = [
    ("class-agnostic", "configs/Synthetic/class_agnostic_R_18_FPN_synthetic.yaml"),
    ("transfer", "configs/Synthetic/transfer_R_18_FPN_synthetic.yaml"),
    ("transfer+MLP", "configs/Synthetic/maskx_R_18_FPN_synthetic.yaml"),
    ("oracle (all masks)", "configs/Synthetic/oracle_R_18_FPN_synthetic.yaml"),
]


def _final_results(output_dir):
    """The last evaluation's results from detectron2's metrics.json."""
    with open(os.path.join(output_dir, "metrics.json")) as f:
        records = [json.loads(line) for line in f]
    evals = [r for r in records if any(k.startswith("segm_B/") for k in r)]
    if not evals:
        raise RuntimeError(f"no A/B evaluation in {output_dir}/metrics.json")
    return evals[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iters", type=int, default=None, help="override SOLVER.MAX_ITER")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", default="output/bench_table1c")
    parser.add_argument("--output", default=None, help="markdown file to write")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=[name.split()[0] for name, _ in VARIANTS],
        default=None,
        help="run only these rows (default: all)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only tabulate the runs already in --work-dir (no training)",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="extra config overrides")
    args = parser.parse_args()

    rows = []
    for name, config in VARIANTS:
        if args.variants and name.split()[0] not in args.variants:
            continue
        out = os.path.join(args.work_dir, name.split()[0].replace("+", "_"))
        cmd = [
            sys.executable,
            "train_net.py",
            "--config-file",
            config,
            "OUTPUT_DIR",
            out,
            "MODEL.DEVICE",
            args.device,
            *args.opts,
        ]
        if args.iters:
            steps = f"({int(args.iters * 0.8)},{int(args.iters * 0.93)})"
            cmd += ["SOLVER.MAX_ITER", str(args.iters), "SOLVER.STEPS", steps]
        start = time.time()
        if not args.report_only:
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        r = _final_results(os.path.join(ROOT, out))
        rows.append((name, time.time() - start, r))
        print(f"{name}: done in {time.time() - start:.0f} s", file=sys.stderr, flush=True)

    def value(r, key):
        return f"{r[key]:.1f}" if key in r and r[key] == r[key] else "n/a"

    lines = [
        "| method | box AP A | box AP B | mask AP A | mask AP B | mask AP50 B | mask/box AP B |",
        "|---|---|---|---|---|---|---|",
    ]
    # Training is iteration-based and seeded, so AP does not depend on machine load; wall time
    # does, and is only printed to stderr above.
    for name, _, r in rows:
        lines.append(
            f"| {name} | {value(r, 'bbox_A/AP')} | {value(r, 'bbox_B/AP')} | "
            f"{value(r, 'segm_A/AP')} | {value(r, 'segm_B/AP')} | {value(r, 'segm_B/AP50')} | "
            f"{r['segm_B/AP'] / r['bbox_B/AP']:.2f} |"
            if r.get("bbox_B/AP")
            else "n/a |"
        )
    command = "python bench/bench_synthetic_table1c.py " + " ".join(sys.argv[1:])
    machine = f"{platform.machine()}, {os.cpu_count()} cores, device={args.device}"
    source = (
        f"Tabulated by `{command}` from the runs in `{args.work_dir}`"
        if args.report_only
        else f"Command: `{command}`"
    )
    text = "\n".join(lines) + f"\n\n{source}; machine: {machine}.\n"
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
