"""What docs/synthetic_shapes_v2.md claims about the data, measured on a generated split.

Each function takes the split's COCO json (a dict, as written by :mod:`.generate`) and, where
pixels matter, its image folder, and returns per-annotation numbers, so that tests and the docs'
per-class table use the same measurements:

- :func:`other_objects_in_box`: whether an object's box holds pixels of another object;
- :func:`stack_box_ious`: the box IoU of the two objects of each stack;
- :func:`colour_alone_ious`: IoU of "the pixels of the box with the object's colour" and the
  mask (how far colour alone gets);
- :func:`box_fill_ious`: IoU of "every object pixel in the box" and the mask (how far
  "segment whatever fills the box" gets, even with perfect object/background separation).
"""

import os
from typing import Dict, List

import cv2
import numpy as np
from pycocotools import mask as mask_util

__all__ = [
    "annotation_masks",
    "box_fill_ious",
    "colour_alone_ious",
    "other_objects_in_box",
    "stack_box_ious",
]


def annotation_masks(coco: dict) -> Dict[int, np.ndarray]:
    """{annotation id: (H, W) bool visible mask}, decoded from the polygons."""
    sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
    masks = {}
    for ann in coco["annotations"]:
        h, w = sizes[ann["image_id"]]
        rle = mask_util.merge(mask_util.frPyObjects(ann["segmentation"], h, w))
        masks[ann["id"]] = mask_util.decode(rle).astype(bool)
    return masks


def _by_image(coco: dict) -> Dict[int, List[dict]]:
    out: Dict[int, List[dict]] = {im["id"]: [] for im in coco["images"]}
    for ann in coco["annotations"]:
        out[ann["image_id"]].append(ann)
    return out


def _box_region(ann: dict, shape) -> np.ndarray:
    x, y, w, h = ann["bbox"]
    region = np.zeros(shape, dtype=bool)
    region[y : y + h, x : x + w] = True
    return region


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def other_objects_in_box(coco: dict, masks: Dict[int, np.ndarray]) -> Dict[int, bool]:
    """{annotation id: whether its box holds visible pixels of another object}."""
    out = {}
    for anns in _by_image(coco).values():
        for ann in anns:
            box = _box_region(ann, masks[ann["id"]].shape)
            out[ann["id"]] = any((masks[o["id"]] & box).any() for o in anns if o is not ann)
    return out


def stack_box_ious(coco: dict) -> List[float]:
    """Box IoU of the back and front of each stack (the front's ``synthetic_partner``)."""
    anns = {a["id"]: a for a in coco["annotations"]}
    ious = []
    for ann in coco["annotations"]:
        if ann.get("synthetic_role") == "front":
            back = anns[ann["synthetic_partner"]]
            ious.append(float(mask_util.iou([ann["bbox"]], [back["bbox"]], [0]).reshape(-1)[0]))
    return ious


def colour_alone_ious(
    coco: dict, image_dir: str, masks: Dict[int, np.ndarray], tolerance: int = 40
) -> Dict[int, float]:
    """{annotation id: IoU of its mask and the pixels of its box whose colour lies within
    ``tolerance`` (every RGB channel) of the object's median colour, its main colour when it is
    striped}."""
    out = {}
    by_image = _by_image(coco)
    for image in coco["images"]:
        pixels = cv2.imread(os.path.join(image_dir, image["file_name"]))[:, :, ::-1]
        pixels = pixels.astype(np.int32)
        for ann in by_image[image["id"]]:
            mask = masks[ann["id"]]
            close = np.abs(pixels - np.median(pixels[mask], axis=0)).max(axis=-1) <= tolerance
            out[ann["id"]] = _iou(close & _box_region(ann, mask.shape), mask)
    return out


def box_fill_ious(coco: dict, masks: Dict[int, np.ndarray]) -> Dict[int, float]:
    """{annotation id: IoU of its mask and the union of every object's visible pixels in its
    box} -- a class-agnostic segmenter that separated objects from background perfectly."""
    out = {}
    for anns in _by_image(coco).values():
        if not anns:
            continue
        foreground = np.any([masks[a["id"]] for a in anns], axis=0)
        for ann in anns:
            mask = masks[ann["id"]]
            out[ann["id"]] = _iou(foreground & _box_region(ann, mask.shape), mask)
    return out
