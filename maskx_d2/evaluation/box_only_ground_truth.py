"""Evaluation ground truth in which some or all instances have a box but no mask.

COCO mask AP needs a mask for every ground-truth instance (pycocotools fails on a missing or
empty ``segmentation``). Partially supervised data often has box-only instances in its
evaluation set too: Visual Genome's val/test have no masks at all, and users' own sets may mix.
The policy, applied by :class:`~maskx_d2.evaluation.PartiallySupervisedCOCOEvaluator`:

- no instance has a mask: mask AP is not computed (there is nothing to compare masks with);
  box AP is.
- some instances have masks: mask AP is computed against those, and each box-only instance
  becomes an ignore region, as COCO treats crowd regions: a detection inside its box is neither
  a true nor a false positive, and not detecting it is not a miss. Box AP uses every instance.
"""

import contextlib
import copy
import io
from typing import Iterable, List

from pycocotools.coco import COCO

from maskx_d2.data.mapper import has_usable_segmentation

__all__ = ["box_only_annotation_ids", "box_polygon", "masks_with_box_only_ignored"]


def box_only_annotation_ids(coco_api: COCO) -> List[int]:
    """Ids of the annotations whose ``segmentation`` is missing or holds no mask."""
    return [
        ann["id"]
        for ann in coco_api.dataset.get("annotations", [])
        if not has_usable_segmentation(ann.get("segmentation"))
    ]


def box_polygon(bbox) -> List[List[float]]:
    """The COCO polygon segmentation ``[[x0, y0, x1, y0, x1, y1, x0, y1]]`` of an XYWH box."""
    x, y, w, h = bbox
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def masks_with_box_only_ignored(coco_api: COCO, box_only_ids: Iterable[int]) -> COCO:
    """A copy of ``coco_api`` for mask AP: each box-only annotation becomes a crowd region.

    ``box_only_ids`` is :func:`box_only_annotation_ids` of ``coco_api`` (the caller has it).
    Crowd ground truth is ignored by COCOeval, and matched by the fraction of a detection's
    mask inside it, so a detection within the box (all of it, at every IoU threshold) is left
    out of precision and recall. ``coco_api`` itself is not modified.
    """
    box_only = set(box_only_ids)
    dataset = copy.copy(coco_api.dataset)
    dataset["annotations"] = [
        (
            dict(ann, iscrowd=1, segmentation=box_polygon(ann["bbox"]))
            if ann["id"] in box_only
            else ann
        )
        for ann in coco_api.dataset.get("annotations", [])
    ]
    ignored = COCO()
    ignored.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
        ignored.createIndex()
    return ignored
