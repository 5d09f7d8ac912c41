"""Pictures like the paper's: every detection with its mask, boxes of set A green, of set B red.

The box colour tells whether the class had masks in training (A, green) or only boxes (B, red):
masks of red boxes are what weight transfer predicted for classes it never saw segmented.
"""

from typing import List, Sequence, Tuple

import cv2
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Instances
from detectron2.utils.colormap import colormap

__all__ = [
    "MASK_CLASS_COLOR",
    "BOX_ONLY_CLASS_COLOR",
    "draw_partial_predictions",
    "partial_supervision_classes",
]

MASK_CLASS_COLOR = (0, 255, 0)  # RGB; classes with masks in training (set A)
BOX_ONLY_CLASS_COLOR = (255, 0, 0)  # RGB; box-only classes (set B)
_MASK_COLORS = colormap(rgb=True, maximum=255)


def partial_supervision_classes(dataset_name: str) -> Tuple[List[str], List[int]]:
    """Class names and contiguous ids of set A of a registered training dataset.

    A comes from the metadata's ``mask_category_ids`` (dataset ids) mapped through
    ``thing_dataset_id_to_contiguous_id``; the dataset is loaded once when the mapping is not
    known yet (loading sets it). Without ``mask_category_ids`` every class had masks.
    """
    meta = MetadataCatalog.get(dataset_name)
    if not hasattr(meta, "thing_dataset_id_to_contiguous_id"):
        DatasetCatalog.get(dataset_name)
    names = list(meta.thing_classes)
    mask_ids = meta.get("mask_category_ids", None)
    if mask_ids is None:
        return names, list(range(len(names)))
    id_map = meta.thing_dataset_id_to_contiguous_id
    return names, sorted(id_map[i] for i in mask_ids)


def draw_partial_predictions(
    image_rgb: np.ndarray,
    instances: Instances,
    class_names: Sequence[str],
    mask_class_ids: Sequence[int],
    alpha: float = 0.5,
) -> np.ndarray:
    """Draw masks (semi-transparent), boxes (green for A, red for B), class names and scores.

    Args:
        image_rgb: (H, W, 3) uint8 RGB image.
        instances: predictions on this image: ``pred_boxes``, ``pred_classes`` and optionally
            ``scores`` and ``pred_masks`` ((N, H, W) bool, at image resolution).
        class_names: names indexed by contiguous class id.
        mask_class_ids: contiguous ids of the classes that had masks in training (A).
        alpha: mask opacity.

    Returns:
        a new (H, W, 3) uint8 RGB image.
    """
    instances = instances.to("cpu")
    out = image_rgb.astype(np.float32)
    n = len(instances)
    scores = instances.scores.numpy() if instances.has("scores") else np.ones(n)
    order = np.argsort(scores, kind="stable")  # best last, so drawn on top
    if instances.has("pred_masks"):
        masks = instances.pred_masks.numpy().astype(bool)
        for rank, i in enumerate(order):
            color = _MASK_COLORS[rank % len(_MASK_COLORS)]
            out[masks[i]] = (1 - alpha) * out[masks[i]] + alpha * color
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)

    height, width = out.shape[:2]
    thickness = max(1, round(min(height, width) / 300))
    font_scale = max(0.3, min(height, width) / 1200)
    boxes = instances.pred_boxes.tensor.numpy().round().astype(int)
    classes = instances.pred_classes.numpy()
    mask_classes = set(int(c) for c in mask_class_ids)
    for i in order:  # boxes after all masks, so no mask tints a box
        color = MASK_CLASS_COLOR if classes[i] in mask_classes else BOX_ONLY_CLASS_COLOR
        x0, y0, x1, y1 = boxes[i]
        cv2.rectangle(out, (x0, y0), (x1, y1), color, thickness)
    for i in order:  # labels last, so no box hides a label
        color = MASK_CLASS_COLOR if classes[i] in mask_classes else BOX_ONLY_CLASS_COLOR
        _label(out, f"{class_names[classes[i]]} {scores[i]:.2f}", boxes[i][:2], color, font_scale)
    return out


def _label(image: np.ndarray, text: str, corner, color, font_scale: float) -> None:
    """Text on a filled tag of the box colour, above the box's top-left corner when it fits."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), baseline = cv2.getTextSize(text, font, font_scale, 1)
    x = max(0, min(int(corner[0]), image.shape[1] - w))  # keep the text inside the image
    y = int(corner[1])
    top = y - h - baseline if y - h - baseline >= 0 else y + 1
    cv2.rectangle(image, (x, top), (x + w, top + h + baseline), color, cv2.FILLED)
    cv2.putText(image, text, (x, top + h), font, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
