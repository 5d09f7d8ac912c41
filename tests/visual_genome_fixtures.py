"""Tiny Visual Genome v1.4 files (``image_data.json``, ``objects.json``) in the real formats.

Shared by tests/test_visual_genome.py (the loaders), tests/test_vg_pipeline.py (train_net end to
end) and tests/test_evaluator_box_only.py (box AP on the VG val split).
"""

import json
import os

from maskx_d2.data.datasets.visual_genome.loading import COCO_NAMES
from maskx_d2.data.datasets.visual_genome.vocab import COCO_TO_VG_MANUAL, synset_readable_name

__all__ = ["STANDARD_POOL", "TOP_100", "coco_synset", "standard_vg", "vg_object", "write_vg"]


def coco_synset(name):
    """The VG synset the alignment should find for a COCO class name."""
    return COCO_TO_VG_MANUAL.get(name, name.replace(" ", "_") + ".n.01")


def vg_object(object_id, synsets, x=1, y=2, w=10, h=20):
    names = [synset_readable_name(s) for s in synsets]
    return {
        "synsets": synsets,
        "h": h,
        "object_id": object_id,
        "merged_object_ids": [],
        "names": names,
        "w": w,
        "y": y,
        "x": x,
    }


def write_vg(root, images, objects_by_image):
    """Write image_data.json / objects.json. ``images``: [(image_id, coco_id)]."""
    os.makedirs(root, exist_ok=True)
    folder = lambda i: "VG_100K" if i % 2 else "VG_100K_2"  # noqa: E731
    image_data = [
        {
            "width": 800,
            "url": f"https://cs.stanford.edu/people/rak248/{folder(i)}/{i}.jpg",
            "height": 600,
            "image_id": i,
            "coco_id": c,
            "flickr_id": None,
        }
        for i, c in images
    ]
    objects = [
        {
            "image_id": i,
            "objects": objects_by_image.get(i, []),
            "image_url": f"https://cs.stanford.edu/people/rak248/{folder(i)}/{i}.jpg",
        }
        for i, _ in images
    ]
    with open(os.path.join(root, "image_data.json"), "w") as f:
        json.dump(image_data, f)
    with open(os.path.join(root, "objects.json"), "w") as f:
        json.dump(objects, f, indent=1)


# Object k of STANDARD_POOL goes to image k % 60 + 1. Every COCO class occurs 40 times, then
# thing{j} j + 3 times: the top 100 synsets are the 80 COCO ones and thing10..thing29.
STANDARD_POOL = [coco_synset(n) for n in COCO_NAMES] * 40 + [
    f"thing{j}.n.01" for j in range(30) for _ in range(j + 3)
]
TOP_100 = {coco_synset(n) for n in COCO_NAMES} | {f"thing{j}.n.01" for j in range(10, 30)}


def standard_vg(root, num_images=60, coco_ids=None):
    """60 images with STANDARD_POOL's objects.

    Image 1 also holds objects with 0 and with 2 synsets, and one with a rare synset.
    """
    coco_ids = coco_ids or {}
    objs, oid = {}, 0
    for k, s in enumerate(STANDARD_POOL):
        oid += 1
        objs.setdefault(k % num_images + 1, []).append(vg_object(oid, [s], x=k % 7))
    objs[1] += [
        vg_object(9001, []),
        vg_object(9002, ["thing0.n.01", "thing1.n.01"]),
        vg_object(9003, ["rare.n.01"]),
    ]
    write_vg(root, [(i, coco_ids.get(i)) for i in range(1, num_images + 1)], objs)
