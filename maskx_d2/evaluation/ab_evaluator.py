"""COCO box and mask AP on all classes, on set A (trained with masks) and on set B (boxes only).

The numbers follow the paper's protocol: detections of *all* classes are submitted once, and
AP on a group is COCO AP averaged over that group's categories only, on all evaluation images.
This equals pycocotools' ``COCOeval`` run with ``params.catIds`` set to the group.

A group with no ground-truth instance in the evaluation set gets NaN for every metric (COCO
defines no precision for a category without ground truth), the same convention detectron2 uses
for metrics it cannot compute. Ground truth with box-only instances is evaluated as
box_only_ground_truth.py says: no mask AP when no instance has a mask, box-only instances as
ignore regions for mask AP when some have one.

When the model's outputs carry masks predicted on the ground-truth boxes (``train_net.py`` with
``TEST.MASKX.GT_BOX_EVAL``, see gt_box_inference.py), the same table also reports their mean
mask IoU and mask AP (``segm_gtbox``, ``segm_gtbox_A``, ``segm_gtbox_B``; gt_box_metrics.py).
"""

import contextlib
import itertools
import logging
from typing import Dict, List, Optional

from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator, DatasetEvaluators
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.utils import comm

from maskx_d2.compat import CompiledOpsUnavailable, compiled_ops_available

from .box_only_ground_truth import box_only_annotation_ids, masks_with_box_only_ignored
from .category_summary import (
    METRICS,
    category_groups,
    format_ab_table,
    summarize_categories,
)
from .gt_box_inference import OUTPUT_KEY as GT_BOX_OUTPUT_KEY
from .gt_box_metrics import gt_box_mask_metrics
from .proposal_recall import ProposalRecallEvaluator

__all__ = [
    "PartiallySupervisedCOCOEvaluator",
    "build_partially_supervised_evaluator",
    "format_ab_table",
    "summarize_categories",
]

logger = logging.getLogger("maskx_d2.evaluation")

GROUPS = ("A", "B")


def _resolve_use_fast_impl(use_fast_impl: Optional[bool]) -> bool:
    """Default to the fast COCOeval only when detectron2's compiled ops are loaded.

    Without them detectron2 replaces its ``COCOeval_opt`` by pycocotools' COCOeval without a
    word, so an explicit request for the fast one is refused rather than silently ignored.
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


class PartiallySupervisedCOCOEvaluator(COCOEvaluator):
    """detectron2's COCO evaluator that also reports AP on set A and on set B.

    Results (in percent, like detectron2): ``bbox`` and ``segm`` over all classes, with
    per-category AP, and ``bbox_A``, ``segm_A``, ``bbox_B``, ``segm_B`` with the six metrics
    only. A is the dataset metadata's ``mask_category_ids``; B is every other category of the
    ground-truth json. Without ``mask_category_ids`` only the overall tasks are reported; for a
    model without masks, or ground truth without masks, only the box tasks. Outputs with
    ``gt_box_instances`` add ``segm_gtbox``, ``segm_gtbox_A`` and ``segm_gtbox_B`` (mIoU, AP,
    AP50, AP75 of the masks predicted on ground-truth boxes, and each class's ``mIoU-<name>``).
    After
    :meth:`evaluate`, :attr:`summary_table` holds the table that was logged (empty if nothing
    was evaluated, e.g. on non-main ranks).
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
        self._groups = category_groups(
            dataset_name, self._metadata, self._coco_api, warn=self._do_evaluation
        )
        self._group_results: Dict[str, Dict[str, float]] = {}
        self.summary_table = ""
        # None: the json's annotations serve every task. Otherwise the ground truth for mask AP.
        self._segm_coco_api = None
        self._no_mask_ground_truth = False
        self._gt_box_predictions: List[dict] = []  # COCO results with "ann_id", this process
        self._all_gt_box_predictions: List[dict] = []  # every process's, after evaluate()
        if self._do_evaluation:
            self._check_mask_ground_truth(dataset_name, tasks)

    def _check_mask_ground_truth(self, dataset_name: str, tasks) -> None:
        box_only = box_only_annotation_ids(self._coco_api)
        num_box_only, num_total = len(box_only), len(self._coco_api.getAnnIds())
        if num_box_only == 0:
            return
        source = self._metadata.get("json_file", dataset_name)
        if num_box_only == num_total:
            if tasks is not None and "segm" in tasks:
                raise ValueError(
                    f"Dataset '{dataset_name}' ({source}) has no ground-truth masks, so mask "
                    "AP ('segm' in tasks) cannot be computed; evaluate tasks=('bbox',)."
                )
            self._no_mask_ground_truth = True
            logger.warning(
                f"No ground-truth instance of '{dataset_name}' ({source}) has a mask: only box "
                "AP will be computed (no mask AP, no mask metrics on ground-truth boxes)."
            )
            return
        self._segm_coco_api = masks_with_box_only_ignored(self._coco_api, box_only)
        logger.warning(
            f"{num_box_only} of {num_total} ground-truth instances of '{dataset_name}' "
            f"({source}) have no mask: mask AP ignores detections inside their boxes and does "
            "not count them as misses; box AP uses every instance."
        )

    def _tasks_from_predictions(self, predictions):
        tasks = super()._tasks_from_predictions(predictions)
        return {t for t in tasks if t != "segm"} if self._no_mask_ground_truth else tasks

    @contextlib.contextmanager
    def _overridden(self, **attributes):
        """Temporarily replace attributes the parent's _eval_predictions reads."""
        saved = {name: getattr(self, name) for name in attributes}
        try:
            for name, value in attributes.items():
                setattr(self, name, value)
            yield
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

    def _eval_with_separate_mask_ground_truth(self, predictions, img_ids):
        """Box tasks against the json's annotations, then segm against ``_segm_coco_api``.

        Two passes of the parent's evaluation instead of a copy of it. The parent maps each
        result's category id to the dataset's in place, so the segm pass gets its own copies.
        """
        results = list(itertools.chain(*[p["instances"] for p in predictions]))
        tasks = set(self._tasks or self._tasks_from_predictions(results))
        if "segm" in tasks:
            segm_predictions = [
                dict(p, instances=[dict(r) for r in p["instances"]]) for p in predictions
            ]
        output_dir = self._output_dir
        if tasks - {"segm"}:
            with self._overridden(_tasks=tasks - {"segm"}):
                super()._eval_predictions(predictions, img_ids=img_ids)
            output_dir = None  # the results file is written once
        if "segm" in tasks:
            with self._overridden(
                _tasks={"segm"}, _coco_api=self._segm_coco_api, _output_dir=output_dir
            ):
                super()._eval_predictions(segm_predictions, img_ids=img_ids)

    def reset(self):
        super().reset()
        self.summary_table = ""
        self._gt_box_predictions = []

    def process(self, inputs, outputs):
        super().process(inputs, outputs)
        for input, output in zip(inputs, outputs):
            if GT_BOX_OUTPUT_KEY not in output:
                continue
            instances = output[GT_BOX_OUTPUT_KEY].to(self._cpu_device)
            results = instances_to_coco_json(instances, input["image_id"])
            for result, ann_id in zip(results, instances.gt_ann_ids.tolist()):
                result["ann_id"] = ann_id
            self._gt_box_predictions.extend(results)

    def evaluate(self, img_ids=None):
        # The parent gathers its own predictions; the GT-box ones are gathered here, on every
        # process (gather is collective), before the parent returns early on non-main ones.
        if self._distributed:
            comm.synchronize()
            gathered = comm.gather(self._gt_box_predictions, dst=0)
            self._all_gt_box_predictions = list(itertools.chain(*gathered))
        else:
            self._all_gt_box_predictions = self._gt_box_predictions
        return super().evaluate(img_ids)

    @property
    def gt_box_predictions(self) -> List[dict]:
        """After :meth:`evaluate`, on the main process: every COCO result of the masks predicted
        on ground-truth boxes, each with the ``ann_id`` of its ground-truth annotation."""
        return list(self._all_gt_box_predictions)

    def _eval_gt_box_predictions(self, img_ids) -> None:
        """Mean mask IoU and mask AP of the masks predicted on ground-truth boxes."""
        results = [dict(r) for r in self._all_gt_box_predictions]
        if not results:
            return
        reverse_id_mapping = {
            v: k for k, v in self._metadata.thing_dataset_id_to_contiguous_id.items()
        }
        for r in results:
            r["category_id"] = reverse_id_mapping[r["category_id"]]
        self._results.update(
            gt_box_mask_metrics(
                self._coco_api,
                results,
                self._groups,
                coco_gt_for_ap=self._segm_coco_api,
                img_ids=img_ids,
            )
        )

    def _eval_predictions(self, predictions, img_ids=None):
        # The parent evaluates each task once over all categories; _derive_coco_results below
        # slices A and B out of that evaluation into self._group_results.
        self._group_results = {}
        if self._segm_coco_api is None:  # set only when this process evaluates
            super()._eval_predictions(predictions, img_ids=img_ids)
        else:
            self._eval_with_separate_mask_ground_truth(predictions, img_ids)
        for task in ("bbox", "segm"):
            for group in GROUPS:
                key = f"{task}_{group}"
                if key in self._group_results:
                    self._results[key] = self._group_results[key]
        self._eval_gt_box_predictions(img_ids)
        if self._results:
            self.summary_table = format_ab_table(self._results)
            logger.info(
                "COCO AP on all classes, set A and set B (segm_gtbox: masks predicted on the "
                "ground-truth boxes, mIoU = mean mask IoU):\n" + self.summary_table
            )

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
    proposal_recall: bool = False,
) -> DatasetEvaluator:
    """The evaluator for ``dataset_name``, chosen by its metadata's ``evaluator_type``.

    ``"coco_partial"``: :class:`PartiallySupervisedCOCOEvaluator`; ``"coco"``: detectron2's
    ``COCOEvaluator``. Both use the fast COCOeval only when compiled ops are loaded (see
    :class:`PartiallySupervisedCOCOEvaluator`). Any other type raises ValueError. With
    ``proposal_recall`` (``TEST.MASKX.PROPOSAL_RECALL``), a ``DatasetEvaluators`` of that
    evaluator and a :class:`ProposalRecallEvaluator` (AR of the same outputs as proposals): both
    log their table, and the results hold both sets of keys.
    """
    evaluator = _build_ap_evaluator(dataset_name, output_dir, distributed, use_fast_impl)
    if not proposal_recall:
        return evaluator
    # The AP evaluator has loaded the json (and built its box-only-ignored copy): share them.
    proposals = ProposalRecallEvaluator(
        dataset_name,
        distributed=distributed,
        output_dir=output_dir,
        coco_api=evaluator._coco_api,
        mask_coco_api=getattr(evaluator, "_segm_coco_api", None),
    )
    return DatasetEvaluators([evaluator, proposals])


def _build_ap_evaluator(dataset_name, output_dir, distributed, use_fast_impl) -> COCOEvaluator:
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
