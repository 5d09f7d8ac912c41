"""Visual Genome 3000 classes (VG3k) and the joint COCO-masks + VG-boxes set.

Modules: :mod:`.loading` (the datasets: splits, label space, registration), :mod:`.tables`
(objects.json and image_data.json read once into arrays, cached), :mod:`.vocab` (the 3000
classes from synset counts), :mod:`.dicts` (arrays to detectron2's box-only dicts).
"""

from .loading import (
    VG_SPLITS,
    load_coco_image_ids,
    load_vg3k_coco_joint,
    load_vg3k_json,
    register_all_vg3k,
    register_vg3k,
    register_vg3k_coco_joint,
    vg3k_categories,
    vg_split_buckets,
)

__all__ = [
    "VG_SPLITS",
    "load_coco_image_ids",
    "load_vg3k_coco_joint",
    "load_vg3k_json",
    "register_all_vg3k",
    "register_vg3k",
    "register_vg3k_coco_joint",
    "vg3k_categories",
    "vg_split_buckets",
]
