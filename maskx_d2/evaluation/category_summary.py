"""Which categories form sets A and B, COCO AP of a category subset, and the all / A / B table.

:func:`category_groups` reads the A/B split from dataset metadata; :func:`summarize_categories`
is a pure function over pycocotools' (or detectron2's fast) ``COCOeval`` after ``accumulate()``;
:func:`format_ab_table` prints any evaluator's all / A / B results (AP, and proposal AR).
"""

import logging
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
from tabulate import tabulate

__all__ = ["METRICS", "category_groups", "format_ab_table", "summarize_categories"]

logger = logging.getLogger("maskx_d2.evaluation")

# The metrics of one task, in the order of pycocotools' ``COCOeval.stats[:6]``.
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")

# The rows of the AP table: (row label, result key of the task on all classes).
AP_TASKS = (("bbox", "bbox"), ("segm", "segm"), ("segm_gtbox", "segm_gtbox"))


def category_groups(
    dataset_name: str, metadata, coco_api, *, metric: str = "AP", warn: bool = True
) -> Dict[str, List[int]]:
    """{"A": ids, "B": ids} of dataset category ids, or {} when the dataset has no A/B split.

    Args:
        dataset_name: for messages.
        metadata: the dataset's ``MetadataCatalog`` entry; A is its ``mask_category_ids``.
        coco_api: the evaluation ground truth (pycocotools ``COCO``); B is every other category
            of it.
        metric, warn: log a warning naming ``metric`` for a group without ground-truth instances
            (its ``metric`` will be NaN), unless ``warn`` is False.
    Raises ValueError when ``mask_category_ids`` names a category the json does not have.
    """
    mask_ids = metadata.get("mask_category_ids", None)
    if mask_ids is None:
        return {}
    all_ids = sorted(coco_api.getCatIds())
    unknown = sorted(set(mask_ids) - set(all_ids))
    if unknown:
        raise ValueError(
            f"Dataset '{dataset_name}': mask_category_ids {unknown} are not categories of "
            f"{metadata.json_file}."
        )
    groups = {"A": sorted(mask_ids), "B": [c for c in all_ids if c not in set(mask_ids)]}
    if warn:
        for name, ids in groups.items():
            # getAnnIds(catIds=[]) would return every annotation.
            if not ids or not coco_api.getAnnIds(catIds=ids):
                logger.warning(
                    f"Set {name} of '{dataset_name}' has no ground-truth instances: its {metric} "
                    "will be NaN."
                )
    return groups


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


def format_ab_table(
    results: Mapping[str, Mapping[str, float]],
    tasks: Sequence[Tuple[str, str]] = AP_TASKS,
    columns: Sequence[str] = METRICS + ("mIoU",),
) -> str:
    """One table, rows tasks x (all, A, B), one column per metric.

    ``results`` maps a task's key (all classes) and the key + ``_A`` / ``_B`` (the groups) to
    {metric: value}. By default: what :class:`PartiallySupervisedCOCOEvaluator` returns (rows
    bbox, segm, segm_gtbox; columns AP AP50 AP75 APs APm APl mIoU). ``tasks`` gives (row label,
    key) pairs in row order, ``columns`` the metrics. Missing tasks, groups and fields are left
    out (empty cells; a column empty in every row is dropped).
    """
    columns = tuple(columns)
    rows = []
    for label, task in tasks:
        for group, key in (("all", task), ("A", f"{task}_A"), ("B", f"{task}_B")):
            if key in results:
                rows.append([label, group] + [results[key].get(m, "") for m in columns])
    used = [i for i, _ in enumerate(columns) if any(row[2 + i] != "" for row in rows)]
    return tabulate(
        [row[:2] + [row[2 + i] for i in used] for row in rows],
        headers=["task", "classes"] + [columns[i] for i in used],
        tablefmt="pipe",
        floatfmt=".3f",
        numalign="left",
    )
