"""COCO AP numbers for a subset of categories, and the all / A / B table, from one evaluation.

Pure functions over pycocotools' (or detectron2's fast) ``COCOeval`` after ``accumulate()``.
"""

from typing import Dict, Mapping, Sequence

import numpy as np
from tabulate import tabulate

__all__ = ["METRICS", "format_ab_table", "summarize_categories"]

# The metrics of one task, in the order of pycocotools' ``COCOeval.stats[:6]``.
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def summarize_categories(coco_eval, cat_ids: Sequence[int]) -> Dict[str, float]:
    """The six COCO AP numbers (in percent) averaged over the categories ``cat_ids`` only.

    ``coco_eval`` must be accumulated over a superset of ``cat_ids`` with ``useCats=1``. COCO
    matches detections to ground truth within each category (and caps detections per image per
    category), so a category's precision does not depend on which other categories are
    evaluated: slicing them out of ``eval["precision"]`` and averaging exactly as
    ``COCOeval.summarize`` does gives the numbers of a run restricted to ``cat_ids``, without
    evaluating again. Works for both pycocotools' ``COCOeval`` and detectron2's ``COCOeval_opt``.

    Returns NaN for a metric with no defined precision (no ground truth in the group).
    """
    p = coco_eval.params
    precision = coco_eval.eval["precision"]  # (T iou thresholds, R recalls, K, A areas, M)
    k = [p.catIds.index(c) for c in cat_ids]
    # summarize() reports AP at the largest detection limit, maxDets[2] (100 by default).
    m = [i for i, d in enumerate(p.maxDets) if d == p.maxDets[2]]
    queries = {
        "AP": (None, "all"),
        "AP50": (0.5, "all"),
        "AP75": (0.75, "all"),
        "APs": (None, "small"),
        "APm": (None, "medium"),
        "APl": (None, "large"),
    }
    results = {}
    for metric in METRICS:
        iou_thr, area = queries[metric]
        s = precision
        if iou_thr is not None:
            s = s[np.where(iou_thr == p.iouThrs)[0]]
        a = [i for i, lbl in enumerate(p.areaRngLbl) if lbl == area]
        s = s[:, :, k][:, :, :, a][..., m]
        s = s[s > -1]
        results[metric] = float(np.mean(s) * 100) if s.size else float("nan")
    return results


def format_ab_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """One table, rows (bbox, segm, segm_gtbox) x (all, A, B), columns AP AP50 AP75 APs APm APl
    mIoU.

    ``results`` is what :class:`PartiallySupervisedCOCOEvaluator` returns (the keys ``bbox``,
    ``segm``, ``bbox_A``, ..., ``segm_gtbox_B``); missing tasks, groups and fields are left out
    (empty cells).
    """
    columns = METRICS + ("mIoU",)
    rows = []
    for task in ("bbox", "segm", "segm_gtbox"):
        for group, key in (("all", task), ("A", f"{task}_A"), ("B", f"{task}_B")):
            if key in results:
                rows.append([task, group] + [results[key].get(m, "") for m in columns])
    used = [i for i, _ in enumerate(columns) if any(row[2 + i] != "" for row in rows)]
    return tabulate(
        [row[:2] + [row[2 + i] for i in used] for row in rows],
        headers=["task", "classes"] + [columns[i] for i in used],
        tablefmt="pipe",
        floatfmt=".3f",
        numalign="left",
    )
