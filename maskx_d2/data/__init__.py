"""Partially supervised data: the training mapper, the general loader, validation, datasets.

- :mod:`.mapper`: :class:`PartiallySupervisedDatasetMapper` (``gt_has_mask`` per instance);
- :mod:`.coco_json`: load and register any COCO-format json with masks for some classes;
- :mod:`.validation`, :mod:`.annotation_geometry`: what a bad annotation raises or skips;
- :mod:`.json_stream`: a streaming reader for JSON arrays too large to load at once;
- :mod:`.datasets`: the predefined datasets (COCO A/B splits, random splits, Visual Genome
  3000 classes, the synthetic default), registered on import under ``$DETECTRON2_DATASETS``.
"""

from . import datasets  # noqa: F401  (registers the predefined datasets)
from .coco_json import register_partially_supervised_coco_json, strip_masks_outside
from .mapper import PartiallySupervisedDatasetMapper

__all__ = [
    "PartiallySupervisedDatasetMapper",
    "register_partially_supervised_coco_json",
    "strip_masks_outside",
]
