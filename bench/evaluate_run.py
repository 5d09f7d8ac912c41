#!/usr/bin/env python
"""Evaluate a finished train_net.py run on another evaluation set, and record the results as
the training-end evaluation does (one ``metrics.json`` record), so that the Table 1c bench reads
both alike.

    python bench/evaluate_run.py --run output/table1c_v2/seed42/oracle-maskx \\
        --dataset synthetic_shapes_v2_a12_val --output output/table1c_v2/seed42/a12-oracle-maskx

A model trained with every class's masks is the same model for every A/B split of its classes;
only the grouping of the classes into A and B differs. This gives an oracle its numbers on a
new split without training it again. The run's ``config.yaml`` and ``model_final.pth`` are
used, evaluated exactly as ``train_net.py --eval-only`` does.
"""

import argparse
import json
import os
import sys

from detectron2.evaluation.testing import flatten_results_dict

from maskx_d2.atomic_files import write_atomic

# train_net.py lives at the repository root, one level up.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import train_net  # noqa: E402


def evaluate_run(run_dir, dataset, output_dir, device="cpu", opts=()):
    """Evaluates the final model of ``run_dir`` on ``dataset``; writes ``output_dir/metrics.json``
    (one record: the flattened results, as ``{"segm_gtbox_B/mIoU": ...}``, with the run
    evaluated) and returns the results dict."""
    weights = os.path.join(run_dir, "model_final.pth")
    config = os.path.join(run_dir, "config.yaml")
    for path in (weights, config):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: not found; is {run_dir} a finished training run?")
    argv = ["--config-file", config, "--eval-only", "OUTPUT_DIR", output_dir]
    argv += ["MODEL.WEIGHTS", weights, "MODEL.DEVICE", device, "DATASETS.TEST", f"('{dataset}',)"]
    results = train_net.main(train_net.argument_parser().parse_args(argv + list(opts)))
    record = {"evaluated_run": os.path.abspath(run_dir), **flatten_results_dict(results)}
    # Written under a temporary name, then renamed: a record means the evaluation finished.
    path = os.path.join(output_dir, "metrics.json")
    write_atomic(path, json.dumps(record) + "\n")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a finished train_net.py output folder")
    parser.add_argument("--dataset", required=True, help="a registered evaluation set")
    parser.add_argument("--output", required=True, help="folder of the evaluation's results")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="extra config overrides")
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    evaluate_run(args.run, args.dataset, args.output, args.device, args.opts)


if __name__ == "__main__":
    main()
