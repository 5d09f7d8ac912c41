"""Register any COCO-format json as a partially supervised dataset.

Contract shared by every dataset of this project (COCO splits, VG, synthetic, yours):
  - dataset dicts are detectron2's standard ones; an annotation of a box-only instance has no
    ``segmentation`` key (or an empty one), a masked one has polygons or RLE;
  - metadata carries ``mask_category_ids``: the dataset category ids of set A (classes whose
    masks are used in training);
    ``evaluator_type = "coco_partial"`` so train_net.py evaluates A and B separately. The key
    is absent when every annotation with a mask is used (no A/B split).
"""
from typing import Iterable, List, Optional, Sequence, Union

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

__all__ = [
    "register_partially_supervised_coco_json",
    "strip_masks_outside",
    "resolve_mask_category_ids",
]


def resolve_mask_category_ids(
    mask_classes: Sequence[Union[int, str]], categories: List[dict], source: str = ""
) -> List[int]:
    """Turn category names and/or ids into sorted dataset category ids.

    Raises ValueError naming ``source`` (e.g. the json file) for unknown names or ids.
    """
    by_name = {c["name"]: c["id"] for c in categories}
    ids = {c["id"] for c in categories}
    resolved = set()
    for c in mask_classes:
        if isinstance(c, str):
            if c not in by_name:
                raise ValueError(f"{source}: mask class {c!r} is not a category name")
            resolved.add(by_name[c])
        else:
            if int(c) not in ids:
                raise ValueError(f"{source}: mask class id {c} is not a category id")
            resolved.add(int(c))
    return sorted(resolved)


def strip_masks_outside(dataset_dicts: List[dict], keep_contiguous_ids: Iterable[int]) -> int:
    """Remove ``segmentation`` from annotations whose class is not in the kept set (in place).

    Returns the number of masks removed. Boxes and classes are never touched.
    """
    keep = set(keep_contiguous_ids)
    removed = 0
    for record in dataset_dicts:
        for ann in record.get("annotations", []):
            if ann["category_id"] not in keep and "segmentation" in ann:
                del ann["segmentation"]
                removed += 1
    return removed


def _load_partially_supervised(name, json_file, image_root, mask_classes, strip_masks):
    dicts = load_coco_json(json_file, image_root, dataset_name=name)
    meta = MetadataCatalog.get(name)
    if mask_classes is None:
        return dicts
    categories = [{"id": i, "name": n} for i, n in zip(
        sorted(meta.thing_dataset_id_to_contiguous_id), meta.thing_classes)]
    mask_ids = resolve_mask_category_ids(mask_classes, categories, source=json_file)
    if meta.get("mask_category_ids", None) is None:  # names are resolved only now
        meta.set(mask_category_ids=mask_ids)
    if strip_masks:
        strip_masks_outside(dicts, [meta.thing_dataset_id_to_contiguous_id[i] for i in mask_ids])
    return dicts


def register_partially_supervised_coco_json(
    name: str,
    json_file: str,
    image_root: str,
    mask_classes: Optional[Sequence[Union[int, str]]] = None,
    *,
    strip_masks: bool = True,
    **metadata,
) -> None:
    """Register a COCO-format json whose masks are used only for some classes.

    Args:
        name: dataset name for ``DATASETS.TRAIN``/``TEST``.
        json_file, image_root: COCO-format annotations and their image folder.
        mask_classes: set A, as category names or ids of the json. Masks of other classes are
            removed at load time (boxes kept). None: every annotation with a segmentation is
            used, and annotations without one are box-only.
        strip_masks: False for evaluation sets (full ground truth; A/B still reported).
        metadata: extra metadata (e.g. ``split_name``).
    """
    DatasetCatalog.register(
        name,
        lambda: _load_partially_supervised(name, json_file, image_root, mask_classes,
                                           strip_masks),
    )
    if mask_classes is not None and all(not isinstance(c, str) for c in mask_classes):
        # Ids are known now; names can only be resolved once the json is read.
        metadata["mask_category_ids"] = sorted(int(c) for c in mask_classes)
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="coco_partial", **metadata
    )
