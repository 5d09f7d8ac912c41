#!/usr/bin/env python
"""Box AP of finished runs on a synthetic shapes v2 evaluation set, by shape and by the object's
role in the scene: where does detection lose its points?

    RESULTS=inference/synthetic_shapes_v2_val/coco_instances_results.json
    python tools/box_ap_breakdown.py --gt datasets/synthetic_shapes_v2/val/instances.json \\
        --run main-job=output/synthetic/maskx_mlp/$RESULTS

Each ``--run NAME=RESULTS`` is the ``coco_instances_results.json`` that the evaluator writes
(``<OUTPUT_DIR>/inference/<dataset>/``). Rows: every object, then those of each role
(annotation field ``synthetic_role``: ``single``, ``front`` or ``back`` of a stack); columns: COCO
box AP (x 100, IoU 0.50:0.95) over every class, then over the classes of each shape (the
categories' ``supercategory``). For a role, the ground truth of the other roles is marked as
crowd, so a detection of one of those objects is ignored rather than counted as a false
positive (a crowd region matches a detection by intersection over the detection's area, a
close stand-in for IoU on these compact boxes). Prints a markdown table per run.
"""

import argparse
import contextlib
import copy
import io
import json
from typing import Dict, List, Optional, Sequence, Tuple

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ["add_run_arguments", "box_ap", "box_ap_table", "read_runs", "ROLES"]

ROLES = ("single", "front", "back")


def box_ap(
    ground_truth: dict,
    detections: List[dict],
    role: Optional[str] = None,
    category_ids: Optional[Sequence[int]] = None,
) -> float:
    """COCO box AP x 100 of ``detections`` (result dicts with ``image_id``, ``category_id``,
    ``bbox`` in XYWH, ``score``) on ``ground_truth`` (a COCO instances dict), counting only the
    objects of ``role`` (all when None) and the categories ``category_ids`` (all when None).
    NaN when no counted object exists."""
    gt = copy.deepcopy(ground_truth)
    if role is not None:
        for annotation in gt["annotations"]:
            if annotation.get("synthetic_role") != role:
                annotation["iscrowd"] = 1
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        if not detections:  # pycocotools cannot load an empty result list
            counted = coco.getAnnIds(catIds=list(category_ids or []), iscrowd=False)
            return 0.0 if counted else float("nan")
        evaluation = COCOeval(coco, coco.loadRes(copy.deepcopy(detections)), "bbox")
        if category_ids is not None:
            evaluation.params.catIds = list(category_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ap = evaluation.stats[0]
    return float("nan") if ap < 0 else 100.0 * ap


def box_ap_table(ground_truth: dict, detections: List[dict]) -> str:
    """Markdown: rows all / each role present, columns all classes / each shape."""
    shapes: Dict[str, List[int]] = {}
    for category in ground_truth["categories"]:
        shapes.setdefault(category.get("supercategory", category["name"]), []).append(
            category["id"]
        )
    present = {a.get("synthetic_role") for a in ground_truth["annotations"]}
    roles = [None] + [role for role in ROLES if role in present]
    counts = {
        role: sum(
            role is None or a.get("synthetic_role") == role for a in ground_truth["annotations"]
        )
        for role in roles
    }
    header = "| objects | all classes | " + " | ".join(shapes) + " |"
    lines = [header, "|---" * (len(shapes) + 2) + "|"]
    for role in roles:
        cells = [box_ap(ground_truth, detections, role)]
        cells += [box_ap(ground_truth, detections, role, ids) for ids in shapes.values()]
        name = f"{role or 'all'} ({counts[role]})"
        lines.append(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    return "\n".join(lines)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--gt`` and the repeated ``--run NAME=RESULTS_JSON`` (read by :func:`read_runs`)."""
    parser.add_argument("--gt", required=True, help="the evaluation set's COCO instances json")
    parser.add_argument("--run", action="append", required=True, help="NAME=RESULTS_JSON")


def read_runs(parser: argparse.ArgumentParser, args) -> Tuple[dict, List[Tuple[str, list]]]:
    """The ground truth of ``args.gt`` and ``[(name, detections)]`` of each ``args.run``."""

    def load(path, what):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError) as e:  # missing, unreadable or not json
            parser.error(f"{what} {path}: {e}")

    ground_truth = load(args.gt, "--gt")
    runs = []
    for run in args.run:
        name, sep, path = run.partition("=")
        if not sep:
            parser.error(f"--run {run!r}: expected NAME=RESULTS_JSON")
        runs.append((name, load(path, f"--run {name}:")))
    return ground_truth, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(parser)
    ground_truth, runs = read_runs(parser, parser.parse_args())
    for name, detections in runs:
        print(f"\n{name}: box AP by role (object count) and shape\n")
        print(box_ap_table(ground_truth, detections))


if __name__ == "__main__":
    main()
