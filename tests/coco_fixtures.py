"""Tiny COCO-format datasets on disk for tests: real ``instances_*.json`` layout plus JPEGs.

Typical use::

    from coco_fixtures import make_coco_dataset, write_coco_dataset, coco_categories

    dataset = make_coco_dataset(coco_categories([1, 2, 3]), num_images=2)
    json_file, image_root = write_coco_dataset(dataset, tmp_path / "a.json", tmp_path / "img")

``make_coco_dataset`` returns the json as a dict so a test can break it (bad boxes, polygons,
RLE, ...) before writing. Every annotation has a rectangle polygon equal to its box.
"""

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from maskx_d2.data.datasets.coco_splits import COCO_THING_CATEGORIES

__all__ = [
    "IMAGE_WIDTH",
    "IMAGE_HEIGHT",
    "COCO_SETS",
    "coco_categories",
    "box_polygon",
    "compressed_rle",
    "make_coco_dataset",
    "write_coco_dataset",
    "write_images",
    "write_coco_root",
]

IMAGE_WIDTH, IMAGE_HEIGHT = 64, 48
_CELL = 8  # instances sit on an 8x8 grid: 48 disjoint 6x6 boxes fit one image

# json under <root>/coco/annotations -> image folder under <root>/coco, as detectron2 expects.
COCO_SETS = {
    "instances_train2017.json": "train2017",
    "instances_val2017.json": "val2017",
    "instances_train2014.json": "train2014",
    "instances_valminusminival2014.json": "val2014",
    "instances_minival2014.json": "val2014",
}


def coco_categories(ids: Optional[Sequence[int]] = None) -> List[dict]:
    """COCO category entries (``id``, ``name``, ``supercategory``) for ``ids`` (default: all 80).

    Ids that are not COCO's get the name ``class<id>``.
    """
    names = dict(COCO_THING_CATEGORIES)
    ids = list(names) if ids is None else ids
    return [{"id": i, "name": names.get(i, f"class{i}"), "supercategory": "thing"} for i in ids]


def box_polygon(x: float, y: float, w: float, h: float) -> List[float]:
    """The rectangle polygon [x0, y0, x1, y1, ...] of an XYWH box."""
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def make_coco_dataset(
    categories: List[dict],
    num_images: Optional[int] = None,
    instances_per_image: int = 20,
    crowd: bool = False,
    first_image_id: int = 1,
) -> Dict:
    """A COCO instances json (as a dict) in which every category has at least one instance.

    Args:
        categories: the json's ``categories``; annotation k uses categories[k % len].
        num_images: default: just enough images for every category to appear.
        instances_per_image: at most 48 (the grid of disjoint boxes).
        crowd: add one crowd annotation (uncompressed RLE, as in COCO) to the first image.
        first_image_id: image ids are consecutive from here; file names derive from them.

    Images are ``IMAGE_WIDTH`` x ``IMAGE_HEIGHT``; annotation ids are 1, 2, ...
    """
    assert instances_per_image <= (IMAGE_WIDTH // _CELL) * (IMAGE_HEIGHT // _CELL)
    if num_images is None:
        num_images = max(1, -(-len(categories) // instances_per_image))
    images, annotations = [], []
    for n in range(num_images):
        image_id = first_image_id + n
        images.append(
            {
                "id": image_id,
                "file_name": f"{image_id:012d}.jpg",
                "height": IMAGE_HEIGHT,
                "width": IMAGE_WIDTH,
            }
        )
        for slot in range(instances_per_image):
            x, y = (slot % (IMAGE_WIDTH // _CELL)) * _CELL, (slot // (IMAGE_WIDTH // _CELL)) * _CELL
            category = categories[len(annotations) % len(categories)]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category["id"],
                    "bbox": [x + 1.0, y + 1.0, 6.0, 6.0],
                    "segmentation": [box_polygon(x + 1.0, y + 1.0, 6.0, 6.0)],
                    "area": 36.0,
                    "iscrowd": 0,
                }
            )
    if crowd:
        mask = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH), dtype=np.uint8, order="F")
        mask[40:46, 2:30] = 1
        counts = _uncompressed_counts(mask)
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": first_image_id,
                "category_id": categories[0]["id"],
                "bbox": [2.0, 40.0, 28.0, 6.0],
                "segmentation": {"size": [IMAGE_HEIGHT, IMAGE_WIDTH], "counts": counts},
                "area": float(mask.sum()),
                "iscrowd": 1,
            }
        )
    return {"images": images, "annotations": annotations, "categories": categories}


def _uncompressed_counts(mask: np.ndarray) -> List[int]:
    """COCO's uncompressed RLE counts of a binary mask (column-major runs, zeros first)."""
    flat = np.asfortranarray(mask).reshape(-1, order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0] + runs


def compressed_rle(mask: np.ndarray) -> Dict:
    """pycocotools' compressed RLE of a binary (H, W) mask, ``counts`` as a str (json-ready)."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def write_images(dataset: Dict, image_root) -> None:
    """Write one JPEG per image entry, of the size the entry records."""
    os.makedirs(image_root, exist_ok=True)
    for image in dataset["images"]:
        pixels = np.full((image["height"], image["width"], 3), image["id"] * 37 % 256, np.uint8)
        Image.fromarray(pixels).save(os.path.join(image_root, image["file_name"]))


def write_coco_dataset(
    dataset: Dict, json_file, image_root, images: bool = True
) -> Tuple[str, str]:
    """Write ``dataset`` to ``json_file`` and (unless ``images=False``) its images.

    Returns ``(json_file, image_root)`` as strings.
    """
    os.makedirs(os.path.dirname(str(json_file)), exist_ok=True)
    with open(json_file, "w") as f:
        json.dump(dataset, f)  # NaN/inf are written as json's NaN/Infinity, as Python does
    if images:
        write_images(dataset, image_root)
    return str(json_file), str(image_root)


def write_coco_root(root, json_names: Sequence[str] = tuple(COCO_SETS), **kwargs) -> Dict:
    """Write a ``$DETECTRON2_DATASETS`` tree with COCO's file layout and all 80 categories.

    Args:
        root: becomes ``<root>/coco/annotations/<json>`` and ``<root>/coco/<image folder>``.
        json_names: which of :data:`COCO_SETS` to write.
        kwargs: passed to :func:`make_coco_dataset`.

    Returns: json name -> the dataset dict written. Jsons sharing an image folder get distinct
    image ids so their files do not collide.
    """
    written = {}
    for k, json_name in enumerate(json_names):
        dataset = make_coco_dataset(coco_categories(), first_image_id=1000 * k + 1, **kwargs)
        write_coco_dataset(
            dataset,
            os.path.join(root, "coco", "annotations", json_name),
            os.path.join(root, "coco", COCO_SETS[json_name]),
        )
        written[json_name] = dataset
    return written
