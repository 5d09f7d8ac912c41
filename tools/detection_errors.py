#!/usr/bin/env python
"""What the confident detections of finished runs on a synthetic shapes v2 evaluation set get
wrong, by shape: is box AP lost to shape, colour, localisation or the background?

    RESULTS=inference/synthetic_shapes_v2_val/coco_instances_results.json
    python tools/detection_errors.py --gt datasets/synthetic_shapes_v2/val/instances.json \\
        --run main-job=output/synthetic/maskx_mlp/$RESULTS

Each ``--run NAME=RESULTS`` is the ``coco_instances_results.json`` that the evaluator writes.
Two markdown tables per run, rows by the shape of the predicted (first) or true (second) class:

- every detection scored at least ``--score`` (default 0.3), by what it hit: ``correct`` (box IoU
  >= 0.5 with an object of its class), ``mislocalised`` (an object of its class at IoU 0.1-0.5),
  ``same colour, other shape`` / ``other colour`` (else: the object it overlaps most, at IoU >=
  0.3, is of another class with the same colour / another colour), ``background`` (else);
- every object that is not crowd: ``found`` (a detection of its class at IoU >= 0.5 scored at
  least ``--score``), ``found below the score`` (such a detection exists only with a lower score),
  ``missed``.

Class names are ``<colour>_<shape>`` (the categories' ``supercategory`` is the shape).
"""

import argparse
from typing import Dict, List, Tuple

import numpy as np
from box_ap_breakdown import add_run_arguments, read_runs  # tools/, the script's folder
from pycocotools import mask as mask_util

__all__ = ["DETECTION_OUTCOMES", "OBJECT_OUTCOMES", "detection_errors", "errors_tables"]

DETECTION_OUTCOMES = (
    "correct",
    "mislocalised",
    "same colour, other shape",
    "other colour",
    "background",
)
OBJECT_OUTCOMES = ("found", "found below the score", "missed")


def _box_ious(boxes_a: List[list], boxes_b: List[list]) -> np.ndarray:
    """(len(a), len(b)) IoU of XYWH boxes."""
    if not boxes_a or not boxes_b:
        return np.zeros((len(boxes_a), len(boxes_b)))
    return np.asarray(mask_util.iou(boxes_a, boxes_b, [0] * len(boxes_b)))


def _colour_and_shape(category: dict) -> Tuple[str, str]:
    shape = category.get("supercategory") or category["name"].split("_")[-1]
    return category["name"].split("_")[0], shape


def detection_errors(
    ground_truth: dict, detections: List[dict], score: float = 0.3
) -> Tuple[Dict[str, Dict[str, int]], Dict[str, Dict[str, int]]]:
    """Counts ``({predicted shape: {detection outcome: n}}, {true shape: {object outcome: n}})``
    over the detections scored >= ``score`` and the non-crowd objects (outcomes in the module
    docstring)."""
    kinds = {c["id"]: _colour_and_shape(c) for c in ground_truth["categories"]}
    shapes = list(dict.fromkeys(shape for _, shape in kinds.values()))
    by_detection = {s: dict.fromkeys(DETECTION_OUTCOMES, 0) for s in shapes}
    by_object = {s: dict.fromkeys(OBJECT_OUTCOMES, 0) for s in shapes}
    objects: Dict[int, List[dict]] = {}
    for a in ground_truth["annotations"]:
        if not a.get("iscrowd", 0):
            objects.setdefault(a["image_id"], []).append(a)
    found: Dict[int, float] = {}  # object id: best score of a same-class detection at IoU >= 0.5
    per_image: Dict[int, List[dict]] = {}
    for d in detections:
        per_image.setdefault(d["image_id"], []).append(d)
    for image_id, dets in per_image.items():
        gts = objects.get(image_id, [])
        ious = _box_ious([d["bbox"] for d in dets], [a["bbox"] for a in gts])
        for i, d in enumerate(dets):
            same = [j for j, a in enumerate(gts) if a["category_id"] == d["category_id"]]
            for j in same:
                if ious[i, j] >= 0.5:
                    found[gts[j]["id"]] = max(found.get(gts[j]["id"], 0.0), d["score"])
            if d["score"] < score:
                continue
            colour, shape = kinds[d["category_id"]]
            best_same = max((ious[i, j] for j in same), default=0.0)
            if best_same >= 0.5:
                outcome = "correct"
            elif best_same >= 0.1:
                outcome = "mislocalised"
            elif gts and ious[i].max() >= 0.3:
                other_colour, _ = kinds[gts[int(ious[i].argmax())]["category_id"]]
                outcome = "same colour, other shape" if other_colour == colour else "other colour"
            else:
                outcome = "background"
            by_detection[shape][outcome] += 1
    for gts in objects.values():
        for a in gts:
            best = found.get(a["id"])
            if best is None:
                outcome = "missed"
            else:
                outcome = "found" if best >= score else "found below the score"
            by_object[kinds[a["category_id"]][1]][outcome] += 1
    return by_detection, by_object


def _table(counts: Dict[str, Dict[str, int]], first: str) -> str:
    outcomes = list(next(iter(counts.values())))
    lines = [
        f"| {first} | " + " | ".join(outcomes) + " | total |",
        "|---" * (len(outcomes) + 2) + "|",
    ]
    for shape, row in counts.items():
        total = sum(row.values())
        cells = [f"{n} ({100.0 * n / total:.0f}%)" if total else "0" for n in row.values()]
        lines.append(f"| {shape} | " + " | ".join(cells) + f" | {total} |")
    return "\n".join(lines)


def errors_tables(ground_truth: dict, detections: List[dict], score: float = 0.3) -> str:
    """Markdown: the two tables of :func:`detection_errors`."""
    by_detection, by_object = detection_errors(ground_truth, detections, score)
    detections_table = _table(by_detection, "predicted shape")
    objects_table = _table(by_object, "true shape")
    return (
        f"Detections scored >= {score}, by predicted shape:\n\n{detections_table}\n\n"
        f"Objects, by true shape (found: a detection of the class at box IoU >= 0.5 scored "
        f">= {score}):\n\n{objects_table}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(parser)
    parser.add_argument("--score", type=float, default=0.3, help="a confident detection's score")
    args = parser.parse_args()
    ground_truth, runs = read_runs(parser, args)
    for name, detections in runs:
        print(f"\n{name}\n")
        print(errors_tables(ground_truth, detections, args.score))


if __name__ == "__main__":
    main()
