"""Register any COCO-format json as a partially supervised dataset.

Contract shared by every dataset of this project (COCO splits, VG, synthetic, yours):
  - dataset dicts are detectron2's standard ones; an annotation of a box-only instance has no
    ``segmentation`` key (or an empty one), a masked one has polygons or RLE;
  - metadata carries ``mask_category_ids``: the dataset category ids of set A (classes whose
    masks are used in training), absent when every annotation with a mask is used (no A/B
    split); and ``evaluator_type = "coco_partial"``, so train_net.py evaluates A and B
    separately.

Loading validates the json (see :mod:`maskx_d2.data.validation` for what raises and what is
skipped and counted).
"""

import contextlib
import io
import json
import os
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager

from .validation import AnnotationError, check_coco_json_structure, validate_coco_dicts

__all__ = [
    "register_partially_supervised_coco_json",
    "load_partially_supervised_coco_json",
    "load_coco_json_and_categories",
    "strip_masks_outside",
    "resolve_mask_category_ids",
]

# Per-annotation keys kept in the dicts; "id" lets errors name the annotation.
_ANNOTATION_KEYS = ("id", "iscrowd", "bbox", "category_id", "segmentation")


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


def _read_coco_api(json_file: str):
    from pycocotools.coco import COCO

    try:
        with PathManager.open(json_file, "rb") as f:
            dataset = json.load(f)
    except (ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise AnnotationError(
            json_file, f"not a valid COCO instances json ({type(e).__name__}: {e})"
        ) from e
    check_coco_json_structure(dataset, json_file)
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


def load_partially_supervised_coco_json(
    json_file: str,
    image_root: str,
    dataset_name: Optional[str] = None,
    *,
    check_image_sizes: Optional[bool] = None,
) -> List[dict]:
    """Load a COCO instances json into validated detectron2 dicts.

    Same output as detectron2's ``load_coco_json`` (images sorted by id, contiguous
    ``category_id``, crowd annotations kept, ``thing_classes`` and
    ``thing_dataset_id_to_contiguous_id`` set in the metadata of ``dataset_name``), except that
    an instance whose polygons are all invalid keeps its box as a box-only instance instead of
    being dropped, every problem is checked by :func:`validate_coco_dicts` with messages naming
    the file, image and annotation, and annotations keep their json ``id``. Keypoints are not
    loaded.
    """
    dicts, categories = load_coco_json_and_categories(
        json_file, image_root, dataset_name, check_image_sizes=check_image_sizes
    )
    if dataset_name is not None:
        MetadataCatalog.get(dataset_name).set(
            thing_classes=[c["name"] for c in categories],
            thing_dataset_id_to_contiguous_id={c["id"]: i for i, c in enumerate(categories)},
        )
    return dicts


def load_coco_json_and_categories(
    json_file: str,
    image_root: str,
    source: Optional[str] = None,
    *,
    check_image_sizes: Optional[bool] = None,
) -> Tuple[List[dict], List[dict]]:
    """:func:`load_partially_supervised_coco_json` without touching any metadata: the dicts,
    and the json's categories sorted by id (contiguous id i is ``categories[i]``). ``source``
    names the set in the log line (default: the file)."""
    coco = _read_coco_api(json_file)
    categories = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
    id_map = {c["id"]: i for i, c in enumerate(categories)}

    dicts = []
    for image_id in sorted(coco.imgs):
        image = coco.imgs[image_id]
        record = {"image_id": image_id, "file_name": image.get("file_name")}
        if not isinstance(record["file_name"], str):
            raise AnnotationError(json_file, "image entry has no 'file_name'", record)
        record.update(
            file_name=os.path.join(image_root, image["file_name"]),
            height=image.get("height"),
            width=image.get("width"),
        )
        annotations = []
        for ann in coco.imgToAnns.get(image_id, []):
            if ann.get("ignore", 0):
                problem = "'ignore' is not supported (nor by detectron2): use 'iscrowd'"
                raise AnnotationError(json_file, problem, record, ann)
            obj = {k: ann[k] for k in _ANNOTATION_KEYS if k in ann}
            obj["bbox_mode"] = BoxMode.XYWH_ABS
            annotations.append(obj)
        record["annotations"] = annotations
        dicts.append(record)

    orphans = sum(len(anns) for i, anns in coco.imgToAnns.items() if i not in coco.imgs)
    dicts, _ = validate_coco_dicts(
        dicts,
        json_file,
        category_ids=id_map,
        check_image_sizes=check_image_sizes,
        counts={"annotation_without_image": orphans},
        dataset_name=source,
    )
    for record in dicts:
        for ann in record["annotations"]:
            ann["category_id"] = id_map[ann["category_id"]]
    return dicts, categories


def _load_partially_supervised(
    name, json_file, image_root, mask_classes, strip_masks, check_image_sizes, prepare
):
    if prepare is not None:
        prepare()
    dicts = load_partially_supervised_coco_json(
        json_file, image_root, name, check_image_sizes=check_image_sizes
    )
    meta = MetadataCatalog.get(name)
    if mask_classes is None:
        return dicts
    categories = [
        {"id": i, "name": n}
        for i, n in zip(sorted(meta.thing_dataset_id_to_contiguous_id), meta.thing_classes)
    ]
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
    check_image_sizes: Optional[bool] = None,
    prepare: Optional[Callable[[], object]] = None,
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
        check_image_sizes: compare every image file's size with the json at load time; None:
            only for datasets under 20k images (see :mod:`maskx_d2.data.validation`).
        prepare: called with no arguments on every ``DatasetCatalog.get(name)``, before the json
            is read, e.g. to generate or download the files (which need not exist at
            registration); its return value is ignored and anything it raises propagates
            unchanged. It runs on every load, so it should return quickly once the files exist.
        metadata: extra metadata (e.g. ``split_name``).
    """
    DatasetCatalog.register(
        name,
        lambda: _load_partially_supervised(
            name, json_file, image_root, mask_classes, strip_masks, check_image_sizes, prepare
        ),
    )
    if mask_classes is not None and all(not isinstance(c, str) for c in mask_classes):
        # Ids are known now; names can only be resolved once the json is read.
        metadata["mask_category_ids"] = sorted(int(c) for c in mask_classes)
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="coco_partial", **metadata
    )
