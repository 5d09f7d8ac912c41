"""The partial-supervision rule: which RoIs train the mask branch.

A ground-truth instance may come with a mask or only a box (per instance, not per image).
:class:`maskx_d2.data.PartiallySupervisedDatasetMapper` marks each one with a bool field
``gt_has_mask``; ``label_and_sample_proposals`` copies it (like every ``gt_*`` field) onto the
proposals matched to that instance.
"""

from typing import List

import torch
from detectron2.structures import Instances

__all__ = ["select_mask_supervised", "mask_availability"]


def mask_availability(instances: Instances) -> torch.Tensor:
    """(N,) bool: whether each instance's matched ground truth has a usable mask.

    - ``gt_has_mask`` present: it decides (partially supervised data);
    - no ``gt_has_mask`` but ``gt_masks`` present: every instance has one (detectron2's own
      mapper on fully annotated data);
    - neither (box-only images, or images without any ground truth): none has one.
    """
    if instances.has("gt_has_mask"):
        return instances.gt_has_mask.to(dtype=torch.bool)
    device = instances.proposal_boxes.device if instances.has("proposal_boxes") else "cpu"
    return torch.full((len(instances),), instances.has("gt_masks"), dtype=torch.bool, device=device)


def select_mask_supervised(fg_proposals: List[Instances]) -> List[Instances]:
    """Keep, per image, only the foreground proposals whose ground truth has a mask.

    Args:
        fg_proposals: per image, foreground proposals with ``gt_classes``/``gt_*`` fields.
    Returns:
        Per image, the subset that the mask loss may use (possibly empty Instances).
    """
    return [p[mask_availability(p)] for p in fg_proposals]
