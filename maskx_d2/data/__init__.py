"""Partially supervised datasets, their registration and the training mapper.

Importing this package registers the predefined datasets (COCO A/B splits, random splits,
Visual Genome 3000 classes, the synthetic default) under ``$DETECTRON2_DATASETS``.
"""

from . import coco_partial, synthetic, visual_genome  # noqa: F401  (register datasets)
from .custom import register_partially_supervised_coco_json, strip_masks_outside
from .mapper import PartiallySupervisedDatasetMapper

__all__ = [
    "PartiallySupervisedDatasetMapper",
    "register_partially_supervised_coco_json",
    "strip_masks_outside",
]
