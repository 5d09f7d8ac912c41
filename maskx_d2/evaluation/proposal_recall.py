"""Average recall (AR) of class-agnostic proposals, box and mask, on all classes, set A and set B.

As COCO evaluates proposals: pycocotools' ``COCOeval`` with ``params.useCats = 0`` (a proposal
may cover a ground-truth instance of any category; classes are neither needed nor used) and
``params.maxDets = [10, 100, 1000]``. ``AR@n`` is the recall with each image's ``n``
highest-scored proposals, averaged over IoU thresholds 0.50:0.05:0.95; ``ARs@1000``,
``ARm@1000``, ``ARl@1000`` the same with 1000 proposals for small / medium / large ground truth
(COCO's areas: < 32², < 96², the rest). These are ``COCOeval.summarize``'s ``stats[6:12]``.

Any model's outputs serve: a detector's ``instances`` (``pred_boxes``, ``scores``, optional
``pred_masks``; ``pred_classes`` is ignored), e.g. Mask^X R-CNN's detections seen class-agnostic,
or an RPN's ``proposals`` (``proposal_boxes``, ``objectness_logits``; detectron2's
``ProposalNetwork``). At most 1000 proposals per image are kept, highest score first.

On a group (A or B) the ground truth is restricted to the group's categories, on the same images,
and every proposal takes part (with useCats=0 proposals belong to no class): AR on B says how
many objects of B the proposals cover. Ground truth as for AP (box_only_ground_truth.py): crowd
regions are ignored (not objects to recall; a proposal on one is no hit); mask AR is computed
only if the ground truth has masks, box-only instances are then ignore regions, and a group
whose instances are all box-only gets no mask AR (one log line). Edge cases, as pycocotools
gives them: a metric without ground truth (a group, or an object size, with no instance) is NaN;
images with ground truth but no proposals count their objects as missed (AR 0).
"""

import contextlib
import copy
import io
import itertools
import logging
import os
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data import MetadataCatalog
from detectron2.data.datasets.coco import convert_to_coco_json
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import BoxMode
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .box_only_ground_truth import box_only_annotation_ids, masks_with_box_only_ignored
from .category_summary import category_groups, format_ab_table

__all__ = [
    "AR_METRICS",
    "MAX_DETS",
    "ProposalRecallEvaluator",
    "average_recall",
    "proposals_to_coco_json",
]

logger = logging.getLogger("maskx_d2.evaluation")

# COCO's proposal evaluation: proposals per image.
MAX_DETS = (10, 100, 1000)
# The metrics, in the order of COCOeval.stats[6:12] for detection params with MAX_DETS.
AR_METRICS = tuple(f"AR@{n}" for n in MAX_DETS) + tuple(
    f"AR{size}@{MAX_DETS[-1]}" for size in ("s", "m", "l")
)
# Result key prefix per COCO iou type, and the table's row label.
TASKS = {"bbox": ("proposals_box", "box"), "segm": ("proposals_segm", "segm")}


def _output_fields(output: dict):
    """(boxes Nx4 XYXY, scores N, masks NxHxW or None) of a model output, or None if it has none."""
    if "instances" in output:
        instances = output["instances"]
        masks = instances.pred_masks if instances.has("pred_masks") else None
        return instances.pred_boxes.tensor, instances.scores, masks
    if "proposals" in output:
        proposals = output["proposals"]
        return proposals.proposal_boxes.tensor, proposals.objectness_logits, None
    return None


def proposals_to_coco_json(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    masks: Optional[torch.Tensor],
    image_id: int,
    category_id: int,
    max_proposals: int = MAX_DETS[-1],
) -> List[dict]:
    """COCO results of one image's ``max_proposals`` highest-scored proposals.

    Args:
        boxes: (N, 4) XYXY in pixels of the original image; scores: (N,), any monotonic score.
        masks: (N, H, W) binary masks at the original image size, or None (box results only).
        category_id: written into every result. With ``useCats=0`` pycocotools pools proposals
            and ground truth over ``params.catIds``, so it must be one of the json's ids; which
            one does not matter.
    Returns results with ``image_id``, ``category_id``, ``bbox`` (XYWH), ``score`` and, with
    masks, ``segmentation`` (compressed RLE, ``counts`` as str), highest score first.
    """
    order = torch.argsort(scores, descending=True, stable=True)[:max_proposals]
    cpu = torch.device("cpu")
    xywh = BoxMode.convert(boxes[order].to(cpu).numpy(), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    results = [
        {"image_id": image_id, "category_id": category_id, "bbox": box, "score": score}
        for box, score in zip(xywh.tolist(), scores[order].to(cpu).tolist())
    ]
    if masks is not None:
        for result, mask in zip(results, masks[order].to(cpu).numpy()):
            rle = mask_util.encode(np.asfortranarray(mask[:, :, None], dtype=np.uint8))[0]
            rle["counts"] = rle["counts"].decode("utf-8")  # as detectron2: json-ready
            result["segmentation"] = rle
    return results


def _with_annotations(coco_gt: COCO, annotations: List[dict]) -> COCO:
    """A COCO api with ``coco_gt``'s images and categories and the given annotations."""
    coco = COCO()
    coco.dataset = dict(coco_gt.dataset, annotations=annotations)
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
        coco.createIndex()
    return coco


def _restricted(coco_gt: COCO, cat_ids: Optional[Sequence[int]]) -> COCO:
    """``coco_gt`` with the annotations of ``cat_ids`` only (all if None), images unchanged.

    Annotations are copied: COCOeval writes into them (``ignore``, RLE masks).
    """
    keep = None if cat_ids is None else set(cat_ids)
    annotations = [
        dict(ann)
        for ann in coco_gt.dataset.get("annotations", [])
        if keep is None or ann["category_id"] in keep
    ]
    return _with_annotations(coco_gt, annotations)


def average_recall(
    coco_gt: COCO, results: Sequence[dict], iou_type: str, img_ids=None
) -> Dict[str, float]:
    """:data:`AR_METRICS` (in percent, NaN where undefined) of ``results`` as proposals.

    Args:
        coco_gt: the ground truth; every instance of it is an object to recall (crowd regions
            are ignored), whatever its category.
        results: COCO results (see :func:`proposals_to_coco_json`); not modified.
        iou_type: "bbox" or "segm" (results need ``segmentation``).
        img_ids: evaluate on these images (default: every image of ``coco_gt``).
    """
    if iou_type == "bbox":
        detections = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    else:  # as detectron2: without a box, loadRes takes box and area from the mask
        detections = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        # loadRes cannot read an empty list; no proposal at all is a valid (AR 0) answer.
        coco_dt = coco_gt.loadRes(detections) if detections else _with_annotations(coco_gt, [])
        coco_eval = COCOeval(coco_gt, coco_dt, iou_type)
        coco_eval.params.useCats = 0
        coco_eval.params.maxDets = list(MAX_DETS)
        if img_ids is not None:
            coco_eval.params.imgIds = sorted(img_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    # summarize() writes -1 for a metric without ground truth.
    return {
        m: float(s * 100) if s >= 0 else float("nan")
        for m, s in zip(AR_METRICS, coco_eval.stats[6:12])
    }


class ProposalRecallEvaluator(DatasetEvaluator):
    """Box and mask AR@10/100/1000 (and by size) of a model's outputs as class-agnostic proposals.

    Results (in percent, like detectron2): ``proposals_box`` and ``proposals_segm`` on all
    classes, ``proposals_box_A``, ``proposals_box_B``, ``proposals_segm_A``, ``proposals_segm_B``
    on the groups (the dataset metadata's ``mask_category_ids`` and the other categories; no
    group keys without them), each with :data:`AR_METRICS`. Mask keys only when the model
    predicts masks and the ground truth has some (see the module docstring). With several
    processes the proposals are gathered to the main one, which alone returns results. After
    :meth:`evaluate`, :attr:`summary_table` holds the table that was logged.
    """

    def __init__(
        self,
        dataset_name: str,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        *,
        coco_api: Optional[COCO] = None,
        mask_coco_api: Optional[COCO] = None,
    ):
        """
        Args:
            dataset_name: a registered dataset with COCO-format ground truth (``json_file`` in
                its metadata, or dicts that detectron2 converts into ``output_dir``, as
                ``COCOEvaluator`` does).
            distributed: gather proposals from every process (``comm.gather``).
            output_dir: only for that conversion.
            coco_api: the dataset's ground truth, already loaded (an AP evaluator's): the json
                is then not read a second time (COCO val's takes seconds and hundreds of MB).
            mask_coco_api: with ``coco_api``, its copy with box-only instances as crowd regions
                (:func:`masks_with_box_only_ignored`), if the caller has built it.
        """
        self._dataset_name = dataset_name
        self._distributed = distributed
        self._metadata = MetadataCatalog.get(dataset_name)
        if coco_api is not None:
            self._coco_api = coco_api
        else:
            self._coco_api = self._load_ground_truth(output_dir)
        self._mask_coco_api = mask_coco_api
        # Test-set jsons have no annotations: nothing to evaluate against.
        self._do_evaluation = "annotations" in self._coco_api.dataset
        self._groups = category_groups(
            dataset_name, self._metadata, self._coco_api, metric="AR", warn=self._do_evaluation
        )
        cat_ids = sorted(self._coco_api.getCatIds())
        self._category_id = cat_ids[0] if cat_ids else 0
        self._predictions: List[dict] = []
        self.summary_table = ""

    def _load_ground_truth(self, output_dir: Optional[str]) -> COCO:
        """The dataset's json as a COCO api, converted from its dicts first if it has none."""
        if not hasattr(self._metadata, "json_file"):
            if output_dir is None:
                raise ValueError(
                    f"Dataset '{self._dataset_name}' has no json_file: ProposalRecallEvaluator "
                    "needs an output_dir to convert it to COCO format."
                )
            cache_path = os.path.join(output_dir, f"{self._dataset_name}_coco_format.json")
            self._metadata.json_file = cache_path
            convert_to_coco_json(self._dataset_name, cache_path)
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(PathManager.get_local_path(self._metadata.json_file))

    def reset(self):
        self._predictions = []
        self.summary_table = ""

    def process(self, inputs, outputs):
        for input, output in zip(inputs, outputs):
            fields = _output_fields(output)
            if fields is None:
                continue
            boxes, scores, masks = fields
            self._predictions.append(
                {
                    "image_id": input["image_id"],
                    "has_masks": masks is not None,
                    "proposals": proposals_to_coco_json(
                        boxes, scores, masks, input["image_id"], self._category_id
                    ),
                }
            )

    def evaluate(self, img_ids=None):
        """Results as in the class docstring on the main process, {} elsewhere.

        Args:
            img_ids: evaluate on these images (default: every image of the dataset, as
                ``COCOEvaluator``).
        """
        if self._distributed:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return {}
        else:
            predictions = self._predictions
        if not predictions:
            logger.warning("[ProposalRecallEvaluator] Did not receive valid predictions.")
            return {}
        if not self._do_evaluation:
            logger.info(f"'{self._dataset_name}' has no annotations: no proposal recall.")
            return {}
        proposals = list(itertools.chain(*[p["proposals"] for p in predictions]))
        ground_truth = {"bbox": (self._coco_api, set())}
        if all(p["has_masks"] for p in predictions):
            segm_gt = self._mask_ground_truth()
            if segm_gt is not None:
                ground_truth["segm"] = segm_gt

        results = {}
        for iou_type, (coco_gt, skipped_groups) in ground_truth.items():
            prefix, _ = TASKS[iou_type]
            for group, cat_ids in {"all": None, **self._groups}.items():
                if group in skipped_groups:
                    continue
                key = prefix if group == "all" else f"{prefix}_{group}"
                results[key] = average_recall(
                    _restricted(coco_gt, cat_ids), proposals, iou_type, img_ids
                )
        self.summary_table = format_ab_table(
            results, tasks=[(label, key) for key, label in TASKS.values()], columns=AR_METRICS
        )
        logger.info(
            "Average recall of the model's outputs as class-agnostic proposals (at most "
            f"{MAX_DETS[-1]} per image) on all classes, set A and set B:\n" + self.summary_table
        )
        return copy.deepcopy(results)

    def _mask_ground_truth(self) -> Optional[Tuple[COCO, Set[str]]]:
        """The ground truth for mask AR and the groups to skip, or None without any mask.

        Box-only instances become ignore regions. A group is skipped, with a log line, when it
        has instances but none with a mask; a group without any instance is evaluated (its AR
        is NaN, as for boxes).
        """
        box_only = set(box_only_annotation_ids(self._coco_api))
        annotations = self._coco_api.dataset.get("annotations", [])
        if annotations and len(box_only) == len(annotations):
            logger.info(
                f"No ground-truth instance of '{self._dataset_name}' has a mask: only box AR of "
                "the proposals is computed."
            )
            return None
        skipped = set()
        for group, cat_ids in self._groups.items():
            cats = set(cat_ids)
            in_group = [a["id"] for a in annotations if a["category_id"] in cats]
            if in_group and box_only.issuperset(in_group):
                logger.info(
                    f"No ground-truth instance of set {group} of '{self._dataset_name}' has a "
                    "mask: no mask AR of the proposals on it."
                )
                skipped.add(group)
        if not box_only:
            return self._coco_api, skipped
        if self._mask_coco_api is None:
            self._mask_coco_api = masks_with_box_only_ignored(self._coco_api, box_only)
        return self._mask_coco_api, skipped
