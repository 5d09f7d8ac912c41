"""Visual Genome 3000 classes (VG3k): datasets ``vg3k_{train,val,test}`` and the joint
``vg3k_coco_joint_train`` (COCO masks for the 80 COCO classes + VG boxes for all 3000).

Layout under ``$DETECTRON2_DATASETS`` (default ``datasets``)::

    visual_genome/image_data.json, visual_genome/objects.json   (VG v1.4)
    visual_genome/VG_100K/*.jpg, visual_genome/VG_100K_2/*.jpg
    coco/annotations/instances_{train,val}2017.json, coco/train2017/

Label space: contiguous ids 0..79 are COCO's 80 classes in COCO order (set A, masks from
COCO), 80..2999 the other VG synsets by descending frequency (set B, boxes only). Dataset
category ids equal contiguous ids, so ``mask_category_ids`` = [0..79]. Train/val/test is a
fixed hash of the VG image id; images whose ``coco_id`` is a COCO evaluation image are held
out of training. Nothing is read at import: files are read when a dataset is first loaded,
and ``thing_classes`` is set then (or call :func:`vg3k_categories`).
"""

import json
import logging
import os
from typing import Iterable, List, Optional

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from ...coco_json import load_coco_json_and_categories
from ..coco_splits import COCO_THING_CATEGORIES
from .dicts import vg_dataset_dicts
from .tables import load_vg_tables
from .vocab import VGCategories, build_vg_categories

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

logger = logging.getLogger(__name__)

# Split of the VG images by a hash of the image id into 100 buckets: [first, last) bucket.
# A hash (not a permutation of the list) keeps an image's split fixed when images are added
# or removed. ~5% val, ~5% test, ~90% train.
VG_SPLITS = {"val": (0, 5), "test": (5, 10), "train": (10, 100)}

COCO_NAMES: List[str] = [name for _, name in COCO_THING_CATEGORIES]  # COCO order
_COCO_ID_TO_CONTIGUOUS = {cid: i for i, (cid, _) in enumerate(COCO_THING_CATEGORIES)}
# Set A: the COCO classes, which lead the label space (dataset id == contiguous id).
_MASK_IDS = list(range(len(COCO_NAMES)))


def vg_split_buckets(image_ids: np.ndarray) -> np.ndarray:
    """Bucket 0..99 of each image id: splitmix64 of the id, modulo 100. Shape (I,) -> (I,)."""
    z = np.asarray(image_ids, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps on purpose
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(100)).astype(np.int64)


def load_coco_image_ids(json_file: str) -> set:
    """Image ids of a COCO annotation json (e.g. ``instances_val2017.json``)."""
    with open(json_file) as f:
        try:
            return {int(img["id"]) for img in json.load(f)["images"]}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"{json_file}: not a COCO annotation file with image ids: {e!r}"
            ) from e


def _vg_paths(vg_root: str):
    return os.path.join(vg_root, "image_data.json"), os.path.join(vg_root, "objects.json")


def vg3k_categories(
    vg_root: str,
    num_classes: int = 3000,
    missing_coco: str = "error",
    cache_dir: Optional[str] = None,
) -> VGCategories:
    """The COCO-aligned label space of the VG files in ``vg_root`` (see :mod:`.vocab`)."""
    image_data, objects = _vg_paths(vg_root)
    tables = load_vg_tables(image_data, objects, cache_dir)
    return build_vg_categories(
        tables.synsets, tables.synset_counts, COCO_NAMES, num_classes, missing_coco, objects
    )


def _set_metadata(dataset_name: Optional[str], categories: VGCategories) -> None:
    if dataset_name is None:
        return
    k = len(categories.thing_classes)
    MetadataCatalog.get(dataset_name).set(
        thing_classes=categories.thing_classes,
        thing_synsets=categories.synsets,
        thing_dataset_id_to_contiguous_id={i: i for i in range(k)},
    )


def load_vg3k_json(
    vg_root: str,
    split: str,
    *,
    image_root: Optional[str] = None,
    heldout_coco_ids: Iterable[int] = (),
    num_classes: int = 3000,
    missing_coco: str = "error",
    cache_dir: Optional[str] = None,
    dataset_name: Optional[str] = None,
) -> List[dict]:
    """Box-only dataset dicts of one VG split in the COCO-aligned label space.

    Args:
        vg_root: folder with ``image_data.json`` and ``objects.json``.
        split: "train", "val" or "test" (:data:`VG_SPLITS`).
        image_root: folder holding VG_100K/ and VG_100K_2/ (default ``vg_root``).
        heldout_coco_ids: COCO image ids (the COCO evaluation set) whose VG images are
            removed from "train"; they stay in val/test.
        num_classes, missing_coco, cache_dir: see :func:`vg3k_categories`.
        dataset_name: if given, its metadata gets ``thing_classes``, ``thing_synsets`` and
            ``thing_dataset_id_to_contiguous_id`` (identity).
    """
    if split not in VG_SPLITS:
        raise ValueError(f"Unknown VG split {split!r}; expected one of {sorted(VG_SPLITS)}")
    image_data, objects = _vg_paths(vg_root)
    tables = load_vg_tables(image_data, objects, cache_dir)
    categories = build_vg_categories(
        tables.synsets, tables.synset_counts, COCO_NAMES, num_classes, missing_coco, objects
    )
    _set_metadata(dataset_name, categories)
    first, last = VG_SPLITS[split]
    buckets = vg_split_buckets(tables.image_ids)
    keep = (buckets >= first) & (buckets < last)
    if split == "train":
        heldout = np.fromiter(heldout_coco_ids, dtype=np.int64)
        in_eval = (tables.coco_ids >= 0) & np.isin(tables.coco_ids, heldout)
        logger.info(f"VG train: holding out {int((keep & in_eval).sum())} COCO eval images")
        keep &= ~in_eval
    source = dataset_name or f"{objects} ({split})"
    return vg_dataset_dicts(tables, categories, image_root or vg_root, keep, source)


def load_vg3k_coco_joint(
    vg_root: str,
    coco_json: str,
    coco_image_root: str,
    *,
    heldout_coco_ids: Iterable[int] = (),
    dataset_name: Optional[str] = None,
    **vg_kwargs,
) -> List[dict]:
    """COCO images with masks (ids 0..79) followed by VG train images with boxes (all K).

    ``coco_json`` is e.g. ``instances_train2017.json``; its category ids are mapped to COCO's
    contiguous order, which is the VG label space's 0..79. ``vg_kwargs`` go to
    :func:`load_vg3k_json` (split "train").
    """
    vg = load_vg3k_json(
        vg_root, "train", heldout_coco_ids=heldout_coco_ids, dataset_name=dataset_name, **vg_kwargs
    )
    # The same validated loader, box-only rule included, as every other COCO json.
    coco, categories = load_coco_json_and_categories(
        coco_json, coco_image_root, f"{dataset_name or 'vg3k_coco_joint'} (COCO part)"
    )
    not_coco = [c["id"] for c in categories if c["id"] not in _COCO_ID_TO_CONTIGUOUS]
    if not_coco:
        raise ValueError(f"{coco_json}: category ids {not_coco} are not COCO's")
    # json-contiguous id -> COCO-contiguous id, the VG label space's 0..79
    to_label = [_COCO_ID_TO_CONTIGUOUS[c["id"]] for c in categories]
    for record in coco:
        for ann in record["annotations"]:
            ann["category_id"] = to_label[ann["category_id"]]
    logger.info(f"VG3k+COCO joint: {len(coco)} COCO images with masks, {len(vg)} VG images")
    return coco + vg


def _heldout_ids(coco_eval_json: Optional[str]) -> set:
    if coco_eval_json is None:
        return set()
    if not os.path.isfile(coco_eval_json):
        logger.warning(
            f"{coco_eval_json} not found: no VG image is held out of training for being a COCO "
            "evaluation image. Put it there (or pass coco_eval_json=None to silence this)."
        )
        return set()
    return load_coco_image_ids(coco_eval_json)


def register_vg3k(
    name: str,
    vg_root: str,
    split: str,
    coco_eval_json: Optional[str] = None,
    **kwargs,
) -> None:
    """Register a VG3k split lazily; ``kwargs`` go to :func:`load_vg3k_json`.

    ``coco_eval_json``: COCO json whose image ids are held out of "train" (read at load time).
    """
    eval_json = coco_eval_json if split == "train" else None  # only train holds images out
    DatasetCatalog.register(
        name,
        lambda: load_vg3k_json(
            vg_root, split, dataset_name=name, heldout_coco_ids=_heldout_ids(eval_json), **kwargs
        ),
    )
    MetadataCatalog.get(name).set(
        vg_root=vg_root, mask_category_ids=_MASK_IDS, evaluator_type="coco_partial"
    )


def register_vg3k_coco_joint(
    name: str,
    vg_root: str,
    coco_json: str,
    coco_image_root: str,
    coco_eval_json: Optional[str] = None,
    **kwargs,
) -> None:
    """Register the joint COCO-masks + VG-boxes training set lazily (see
    :func:`load_vg3k_coco_joint`)."""
    DatasetCatalog.register(
        name,
        lambda: load_vg3k_coco_joint(
            vg_root,
            coco_json,
            coco_image_root,
            dataset_name=name,
            heldout_coco_ids=_heldout_ids(coco_eval_json),
            **kwargs,
        ),
    )
    MetadataCatalog.get(name).set(
        vg_root=vg_root, mask_category_ids=_MASK_IDS, evaluator_type="coco_partial"
    )


def register_all_vg3k(root: str) -> None:
    """Register vg3k_{train,val,test} and vg3k_coco_joint_train under ``root``."""
    vg_root = os.path.join(root, "visual_genome")
    coco_eval = os.path.join(root, "coco/annotations/instances_val2017.json")
    for split in VG_SPLITS:
        register_vg3k(f"vg3k_{split}", vg_root, split, coco_eval_json=coco_eval)
    register_vg3k_coco_joint(
        "vg3k_coco_joint_train",
        vg_root,
        os.path.join(root, "coco/annotations/instances_train2017.json"),
        os.path.join(root, "coco/train2017"),
        coco_eval_json=coco_eval,
    )
