"""Training mapper that carries per-instance mask availability through augmentation.

Every instance keeps its box and class. Its ``gt_masks`` entry is its real mask when the
annotation has a usable segmentation (polygons or RLE), and an empty placeholder otherwise
(no polygon, or an all-zero bitmap); the bool field ``gt_has_mask`` says which, and the model
trains its mask branch only where it is True. A box-only instance's placeholder is never a
mask: the model never sees a mask for it.
"""

import copy
import logging
from typing import List

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.structures import BitMasks, Instances, PolygonMasks
from PIL import Image

from .annotation_geometry import is_polygon_part

__all__ = ["PartiallySupervisedDatasetMapper", "has_usable_segmentation"]

logger = logging.getLogger(__name__)

# Raised while reading an image: unreadable, truncated or corrupt file, or a size other than
# the dataset dict's (detectron2's SizeMismatchError, checked at load time only for datasets
# under validation.SIZE_CHECK_MAX_IMAGES images).
_UNREADABLE_IMAGE = (OSError, Image.DecompressionBombError, utils.SizeMismatchError)


def has_usable_segmentation(segmentation) -> bool:
    """Whether an annotation's ``segmentation`` holds a mask: non-empty polygons, an RLE dict
    with counts, or a non-empty binary array. None, [] and [[]] mean box-only."""
    if segmentation is None:
        return False
    if isinstance(segmentation, dict):
        return bool(segmentation.get("counts"))
    if isinstance(segmentation, np.ndarray):
        return segmentation.ndim == 2 and bool(segmentation.any())
    if isinstance(segmentation, list):
        return any(is_polygon_part(p) for p in segmentation)
    return False


def _clean_polygons(segmentation):
    """Drop polygon parts with fewer than 3 points (cropping can create them); keep RLE/masks."""
    if isinstance(segmentation, list):
        return [np.asarray(p, dtype=np.float64) for p in segmentation if is_polygon_part(p)]
    return segmentation


class PartiallySupervisedDatasetMapper(DatasetMapper):
    """:class:`DatasetMapper` for data where only some instances have masks.

    Produces, per image, ``Instances`` with ``gt_boxes``, ``gt_classes`` and, when masks are
    on, ``gt_masks`` (PolygonMasks, or BitMasks when any mask of the image is RLE/bitmap or
    ``INPUT.MASK_FORMAT == "bitmask"``) and ``gt_has_mask`` (N,) bool.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_skipped_images = 0

    def __call__(self, dataset_dict):
        """As :class:`DatasetMapper`; in training, an image that cannot be read as recorded
        is skipped (None: detectron2's loader takes another one) with a counted warning, so a
        single bad file among millions does not end a run hours in."""
        try:
            return super().__call__(dataset_dict)
        except _UNREADABLE_IMAGE as e:
            if not self.is_train:
                raise
            self.num_skipped_images += 1
            logger.warning(
                f"Skipping image {dataset_dict.get('file_name')} ({type(e).__name__}: {e}); "
                f"{self.num_skipped_images} image(s) skipped by this loader worker so far"
            )
            return None

    def _transform_annotations(self, dataset_dict, transforms, image_shape):
        annos = []
        for obj in dataset_dict.pop("annotations"):
            if obj.get("iscrowd", 0) != 0:
                continue
            obj = copy.copy(obj)
            if not self.use_keypoint:
                obj.pop("keypoints", None)
            segmentation = obj.pop("segmentation", None)
            with_mask = self.use_instance_mask and has_usable_segmentation(segmentation)
            if with_mask:
                obj["segmentation"] = segmentation
            obj = utils.transform_instance_annotations(
                obj, transforms, image_shape, keypoint_hflip_indices=self.keypoint_hflip_indices
            )
            if with_mask:
                obj["segmentation"] = _clean_polygons(obj["segmentation"])
                if not has_usable_segmentation(obj["segmentation"]):
                    # Cropped away entirely: the object is outside the crop even if a corner of
                    # its box is not, so drop it, as detectron2 does (its box, recomputed from
                    # the empty mask, is empty). Keeping it box-only would train a box on
                    # background.
                    continue
            annos.append(obj)
        instances = utils.annotations_to_instances(
            [{k: v for k, v in a.items() if k != "segmentation"} for a in annos], image_shape
        )
        if self.use_instance_mask:
            self._attach_partial_masks(instances, annos, image_shape)
        instances = utils.filter_empty_instances(instances, by_box=True, by_mask=False)
        if self.use_instance_mask:
            # A mask that became empty in rasterisation is no target: box-only instead.
            instances.gt_has_mask &= instances.gt_masks.nonempty()
        dataset_dict["instances"] = instances

    def _attach_partial_masks(self, instances: Instances, annos: List[dict], image_shape):
        """Set ``gt_masks`` (real masks where available, empty placeholders elsewhere) and
        ``gt_has_mask`` on ``instances``, which are in the same order as ``annos``."""
        n = len(annos)
        masked = [i for i, a in enumerate(annos) if has_usable_segmentation(a.get("segmentation"))]
        has_mask = torch.zeros(n, dtype=torch.bool)
        has_mask[masked] = True
        all_polygons = all(isinstance(annos[i]["segmentation"], list) for i in masked)
        mask_format = self.instance_mask_format if all_polygons else "bitmask"
        sub = None
        if masked:
            sub = utils.annotations_to_instances(
                [annos[i] for i in masked], image_shape, mask_format=mask_format
            ).gt_masks
        if mask_format == "polygon":
            polygons = [[] for _ in range(n)]
            for j, i in enumerate(masked):
                polygons[i] = sub.polygons[j]
            instances.gt_masks = PolygonMasks(polygons)
        else:
            bitmaps = torch.zeros((n, *image_shape), dtype=torch.bool)
            if masked:
                bitmaps[masked] = sub.tensor
            instances.gt_masks = BitMasks(bitmaps)
        if self.recompute_boxes and masked:
            # Tighten boxes of masked instances after cropping; box-only boxes stay as given.
            idx = torch.as_tensor(masked)
            instances.gt_boxes.tensor[idx] = sub.get_bounding_boxes().tensor
        instances.gt_has_mask = has_mask
