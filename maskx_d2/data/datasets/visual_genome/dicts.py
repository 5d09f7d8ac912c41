"""Turn :class:`VGTables` arrays into detectron2's box-only dataset dicts, fast.

The arrays select and group the objects per image; Python only builds the final dicts, with
the cyclic garbage collector paused (see :func:`_gc_paused`).
"""

import contextlib
import gc
import os
from typing import List

import numpy as np
from detectron2.structures import BoxMode

from ...validation import log_validation_summary
from .tables import VGTables
from .vocab import VGCategories

__all__ = ["vg_dataset_dicts"]


def vg_dataset_dicts(
    tables: VGTables,
    categories: VGCategories,
    image_root: str,
    keep_images: np.ndarray,
    source: str = "Visual Genome",
) -> List[dict]:
    """Detectron2 dataset dicts of the images where ``keep_images`` (I,) bool is set.

    Annotations are the objects whose synset is in ``categories`` (``category_id`` = its
    contiguous id), boxes XYWH_ABS, no ``segmentation`` key (box-only). Skipped and counted
    in one summary line on the logger ``maskx_d2.data`` (named by ``source``), as COCO
    validation does: boxes with width or height <= 0 (``box_degenerate``) and objects of
    images missing from ``image_data.json`` (``annotation_without_image``; they belong to no
    split, so every split's line counts all of them).
    """
    syn_to_cat = np.full(len(tables.synsets), -1, dtype=np.int64)
    synset_index = {str(s): i for i, s in enumerate(tables.synsets)}
    for cat, s in enumerate(categories.synsets):
        if s:
            syn_to_cat[synset_index[s]] = cat
    cats = syn_to_cat[tables.object_synsets]
    in_vocab = cats >= 0
    if len(tables.image_ids) == 0:
        counts = {"box_degenerate": 0, "annotation_without_image": int(in_vocab.sum())}
        log_validation_summary(source, 0, 0, counts)
        return []
    # Image row of each object (image ids need not be sorted or contiguous).
    order = np.argsort(tables.image_ids, kind="stable")
    pos = np.searchsorted(tables.image_ids, tables.object_image_ids, sorter=order)
    pos = np.minimum(pos, len(order) - 1)
    rows = order[pos]
    has_image = tables.image_ids[rows] == tables.object_image_ids
    wanted = in_vocab & has_image & keep_images[rows]
    nonempty = (tables.object_boxes[:, 2] > 0) & (tables.object_boxes[:, 3] > 0)
    counts = {
        "box_degenerate": int((wanted & ~nonempty).sum()),
        "annotation_without_image": int((in_vocab & ~has_image).sum()),
    }
    obj = np.flatnonzero(wanted & nonempty)
    obj = obj[np.argsort(rows[obj], kind="stable")]
    obj_rows = rows[obj]
    images = np.flatnonzero(keep_images)
    starts = np.searchsorted(obj_rows, images, side="left")
    ends = np.searchsorted(obj_rows, images, side="right")

    with _gc_paused():
        dicts = [
            _vg_record(tables, image_root, r, obj[s:e], cats)
            for r, s, e in zip(images.tolist(), starts.tolist(), ends.tolist())
        ]
    log_validation_summary(source, len(dicts), len(obj), counts)
    return dicts


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while building millions of small dicts and lists:
    they hold no cycles, and the collector's repeated full passes over them made building
    the VG train dicts 4x slower (see docs/visual_genome.md)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _vg_record(tables: VGTables, image_root: str, r: int, obj: np.ndarray, cats: np.ndarray):
    """The dataset dict of image row ``r`` whose kept objects are ``obj`` (indices)."""
    boxes = tables.object_boxes[obj].tolist()
    labels = cats[obj].tolist()
    return {
        "file_name": os.path.join(image_root, str(tables.file_names[r])),
        "height": int(tables.heights[r]),
        "width": int(tables.widths[r]),
        "image_id": int(tables.image_ids[r]),
        "annotations": [
            {"bbox": b, "bbox_mode": BoxMode.XYWH_ABS, "category_id": c}
            for b, c in zip(boxes, labels)
        ],
    }
