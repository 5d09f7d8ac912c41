"""COCO box and mask AP on all classes, on set A (trained with masks) and on set B (boxes only).

The numbers follow the paper's protocol: detections of *all* classes are submitted once, and
AP on a group is COCO AP averaged over that group's categories only, on all evaluation images.
This equals pycocotools' ``COCOeval`` run with ``params.catIds`` set to the group.

A group with no ground-truth instance in the evaluation set gets NaN for every metric (COCO
defines no precision for a category without ground truth), the same convention detectron2 uses
for metrics it cannot compute.
"""

import logging
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from tabulate import tabulate

from maskx_d2.compat import CompiledOpsUnavailable, compiled_ops_available

__all__ = [
    "PartiallySupervisedCOCOEvaluator",
    "build_partially_supervised_evaluator",
    "format_ab_table",
    "summarize_categories",
]

logger = logging.getLogger("maskx_d2.evaluation")

# The metrics of one task, in the order of pycocotools' ``COCOeval.stats[:6]``.
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
GROUPS = ("A", "B")


def _resolve_use_fast_impl(use_fast_impl: Optional[bool]) -> bool:
    """Default to the fast COCOeval only when detectron2's compiled ops are loaded.

    Without them detectron2 still imports its ``COCOeval_opt`` (our ``_C`` stand-in satisfies
    the import) and would only fail at the end of a long evaluation, so refuse up front.
    """
    if use_fast_impl is None:
        return compiled_ops_available()
    if use_fast_impl and not compiled_ops_available():
        raise CompiledOpsUnavailable(
            "use_fast_impl=True needs detectron2's compiled extension detectron2._C (its "
            "COCOeval_opt is written in C++), which is not loaded in this installation. Pass "
            "use_fast_impl=False (or leave it unset) to use the official pycocotools COCOeval."
        )
    return bool(use_fast_impl)


def _log_implementation(use_fast_impl: bool) -> None:
    if use_fast_impl:
        logger.info("COCO AP is computed with detectron2's fast COCOeval_opt (unofficial, C++).")
    else:
        logger.info("COCO AP is computed with the official pycocotools COCOeval (pure Python).")


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
    """One table, rows (bbox, segm) x (all, A, B), columns AP AP50 AP75 APs APm APl.

    ``results`` is what :class:`PartiallySupervisedCOCOEvaluator` returns (the keys ``bbox``,
    ``segm``, ``bbox_A``, ...); missing tasks or groups are left out.
    """
    rows = []
    for task in ("bbox", "segm"):
        for group, key in (("all", task), ("A", f"{task}_A"), ("B", f"{task}_B")):
            if key in results:
                rows.append([task, group] + [results[key].get(m, float("nan")) for m in METRICS])
    return tabulate(
        rows,
        headers=["task", "classes", *METRICS],
        tablefmt="pipe",
        floatfmt=".3f",
        numalign="left",
    )


class PartiallySupervisedCOCOEvaluator(COCOEvaluator):
    """detectron2's COCO evaluator that also reports AP on set A and on set B.

    Results (in percent, like detectron2): ``bbox`` and ``segm`` over all classes, with
    per-category AP, and ``bbox_A``, ``segm_A``, ``bbox_B``, ``segm_B`` with the six metrics
    only. A is the dataset metadata's ``mask_category_ids``; B is every other category of the
    ground-truth json. Without ``mask_category_ids`` only the overall tasks are reported; for a
    model without masks only the box tasks. After :meth:`evaluate`, :attr:`summary_table` holds
    the table that was logged (empty if nothing was evaluated, e.g. on non-main ranks).
    """

    def __init__(
        self,
        dataset_name: str,
        tasks=None,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        *,
        use_fast_impl: Optional[bool] = None,
        **kwargs,
    ):
        """
        Args:
            dataset_name, tasks, distributed, output_dir, kwargs: as for ``COCOEvaluator``.
            use_fast_impl: None picks detectron2's fast COCOeval when its compiled ops are
                loaded and pycocotools' otherwise; True without compiled ops raises
                :class:`maskx_d2.CompiledOpsUnavailable`.
        """
        use_fast_impl = _resolve_use_fast_impl(use_fast_impl)
        super().__init__(
            dataset_name, tasks, distributed, output_dir, use_fast_impl=use_fast_impl, **kwargs
        )
        _log_implementation(self._use_fast_impl)
        self._groups = self._category_groups(dataset_name)
        self._group_results: Dict[str, Dict[str, float]] = {}
        self.summary_table = ""

    def reset(self):
        super().reset()
        self.summary_table = ""

    def _category_groups(self, dataset_name: str) -> Dict[str, List[int]]:
        """{"A": ids, "B": ids} from the metadata, or {} when the dataset has no A/B split."""
        mask_ids = self._metadata.get("mask_category_ids", None)
        if mask_ids is None:
            return {}
        all_ids = sorted(self._coco_api.getCatIds())
        unknown = sorted(set(mask_ids) - set(all_ids))
        if unknown:
            raise ValueError(
                f"Dataset '{dataset_name}': mask_category_ids {unknown} are not categories of "
                f"{self._metadata.json_file}."
            )
        groups = {"A": sorted(mask_ids), "B": [c for c in all_ids if c not in set(mask_ids)]}
        if self._do_evaluation:
            for name, ids in groups.items():
                # getAnnIds(catIds=[]) would return every annotation.
                if not ids or not self._coco_api.getAnnIds(catIds=ids):
                    logger.warning(
                        f"Set {name} of '{dataset_name}' has no ground-truth instances: its AP "
                        "will be NaN."
                    )
        return groups

    def _eval_predictions(self, predictions, img_ids=None):
        # The parent evaluates each task once over all categories; _derive_coco_results below
        # slices A and B out of that evaluation into self._group_results.
        self._group_results = {}
        super()._eval_predictions(predictions, img_ids=img_ids)
        for task in ("bbox", "segm"):
            for group in GROUPS:
                key = f"{task}_{group}"
                if key in self._group_results:
                    self._results[key] = self._group_results[key]
        if self._results:
            self.summary_table = format_ab_table(self._results)
            logger.info("COCO AP on all classes, set A and set B:\n" + self.summary_table)

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        results = super()._derive_coco_results(coco_eval, iou_type, class_names=class_names)
        if iou_type in ("bbox", "segm"):
            for group, cat_ids in self._groups.items():
                self._group_results[f"{iou_type}_{group}"] = (
                    summarize_categories(coco_eval, cat_ids)
                    if coco_eval is not None
                    else {m: float("nan") for m in METRICS}  # no predictions at all
                )
        return results


def build_partially_supervised_evaluator(
    dataset_name: str,
    output_dir: Optional[str],
    distributed: bool = True,
    *,
    use_fast_impl: Optional[bool] = None,
) -> COCOEvaluator:
    """The evaluator for ``dataset_name``, chosen by its metadata's ``evaluator_type``.

    ``"coco_partial"``: :class:`PartiallySupervisedCOCOEvaluator`; ``"coco"``: detectron2's
    ``COCOEvaluator``. Both use the fast COCOeval only when compiled ops are loaded (see
    :class:`PartiallySupervisedCOCOEvaluator`). Any other type raises ValueError.
    """
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
    if evaluator_type == "coco_partial":
        return PartiallySupervisedCOCOEvaluator(
            dataset_name,
            distributed=distributed,
            output_dir=output_dir,
            use_fast_impl=use_fast_impl,
        )
    if evaluator_type == "coco":
        use_fast_impl = _resolve_use_fast_impl(use_fast_impl)
        _log_implementation(use_fast_impl)
        return COCOEvaluator(
            dataset_name,
            distributed=distributed,
            output_dir=output_dir,
            use_fast_impl=use_fast_impl,
        )
    raise ValueError(
        f"No evaluator for dataset '{dataset_name}' with evaluator_type={evaluator_type!r}: "
        "maskx_d2 evaluates 'coco_partial' (AP on all classes, A and B) and 'coco' datasets."
    )
