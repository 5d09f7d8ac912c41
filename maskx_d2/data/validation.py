"""Checks COCO-format dataset dicts once at load time, so bad input never reaches a training step.

Every dataset registered through :func:`maskx_d2.data.register_partially_supervised_coco_json`
(the predefined COCO splits included) goes through :func:`validate_coco_dicts`. Each problem is
either an error or a counted skip; nothing is silently relabelled.

Errors raise :class:`AnnotationError` (a ``ValueError``) whose message names the json file, the
image id and file name, the annotation id and the problem:

  - a json whose structure pycocotools cannot index (:func:`check_coco_json_structure`: not
    an object, ``images``/``categories`` missing or not lists of objects, non-integer or
    duplicate image/category ids, non-integer annotation ``id``/``image_id``/``category_id``);
  - category id not an integer or not among the json's ``categories`` (a wrong label is worse
    than a crash); ``iscrowd`` other than 0/1 (detectron2 would treat any other value as crowd
    and silently drop the instance from training);
  - ``bbox`` missing, not 4 numbers, or with NaN/inf;
  - ``segmentation`` that is neither a list of polygons nor an RLE dict, polygon coordinates
    that are not numbers, are NaN/inf, or lie farther outside the image than
    :data:`POLYGON_MARGIN` times its size (pycocotools' rasterizer, used by the mapper and the
    mask loss, takes seconds on coordinates ~1e7 and crashes the process on ~1e9);
  - RLE whose ``size`` is not the image's ``[height, width]`` (the mask would be misaligned),
    whose ``counts`` is neither a string nor a list of non-negative ints, or whose counts do
    not add up to height * width (truncated or corrupt; pycocotools would decode garbage);
  - image entry without a positive integer height/width or a string file name, image file
    missing (``check_files``);
  - image file that cannot be read or whose size differs from the json
    (``check_image_sizes``, see below; only the header is read, so a file truncated after it
    is caught by the training mapper, which skips it with a counted warning).

Counted skips (reported in the counts dict and in one summary line per dataset on the logger
``maskx_d2.data``; a warning when anything was skipped):

  - ``box_degenerate``: box width or height <= 0 -> annotation removed;
  - ``polygon_part_dropped``: polygon part with fewer than 3 points, an odd number of
    coordinates or zero area -> that part removed, the other parts kept;
  - ``mask_dropped_box_kept``: no polygon part left -> the instance becomes box-only (its box
    and class still train the detector; detectron2's own loader would drop the whole instance);
  - ``annotation_without_image`` (counted by the loader): ``image_id`` not among the images ->
    ignored, as detectron2 does.

Left as detectron2 has them: crowd annotations (``iscrowd: 1``) are kept and ignored in
training by detectron2; ``segmentation: []`` (or absent) is the normal box-only annotation;
duplicate annotation ids are not checked.

Reading the header of every image costs ~0.08 ms (~9 s for COCO train's 118k images), so
``check_image_sizes=None`` checks sizes only for datasets under
:data:`SIZE_CHECK_MAX_IMAGES` images. For larger ones a wrong size is still caught, per image,
by detectron2's ``check_image_size`` when the mapper reads it.
"""

import logging
import numbers
import os
from typing import Dict, Iterable, List, Optional, Tuple

from detectron2.structures import BoxMode
from PIL import Image

from .annotation_geometry import (
    POLYGON_MARGIN,
    check_box,
    check_rle,
    is_integer,
    valid_polygon_parts,
)

__all__ = [
    "AnnotationError",
    "SKIP_REASONS",
    "check_coco_json_structure",
    "SIZE_CHECK_MAX_IMAGES",
    "POLYGON_MARGIN",
    "validate_coco_dicts",
    "image_size_from_file",
]

logger = logging.getLogger("maskx_d2.data")

SKIP_REASONS = (
    "box_degenerate",
    "polygon_part_dropped",
    "mask_dropped_box_kept",
    "annotation_without_image",
)
# Datasets with fewer images get their image sizes checked by default (a few seconds at most).
SIZE_CHECK_MAX_IMAGES = 20000

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


class AnnotationError(ValueError):
    """A dataset file that cannot be used as it is; the message says where and why."""

    def __init__(self, json_file, problem, record=None, annotation=None):
        where = [str(json_file)]
        if record is not None:
            where.append(f"image id {record.get('image_id')} ({record.get('file_name')})")
        if annotation is not None:
            where.append(f"annotation id {annotation.get('id', '?')}")
        super().__init__(f"{', '.join(where)}: {problem}")
        self.json_file, self.problem = json_file, problem
        self.record, self.annotation = record, annotation


def image_size_from_file(path: str) -> Tuple[int, int]:
    """(width, height) of an image as detectron2 will read it, from its header only.

    detectron2's ``read_image`` applies the EXIF orientation, which swaps width and height for
    orientations 5-8; only JPEG EXIF is consulted because other formats may need a full decode.
    """
    with Image.open(path) as image:
        width, height = image.size
        if image.format in ("JPEG", "MPO"):
            if image.getexif().get(_EXIF_ORIENTATION, 1) in _TRANSPOSING_ORIENTATIONS:
                width, height = height, width
    return width, height


def check_coco_json_structure(dataset, json_file: str) -> None:
    """Check what pycocotools and the loader index by, before they do, so that a broken json
    is reported with the entry at fault instead of a KeyError/TypeError deep inside them.

    ``images`` and ``categories`` must be lists of objects with unique integer ``id`` (and a
    string ``name`` for categories); ``annotations``, if present, a list of objects with
    integer ``id``, ``image_id`` and ``category_id``.
    """

    def fail(problem, record=None, annotation=None):
        raise AnnotationError(
            json_file, f"not a valid COCO instances json: {problem}", record, annotation
        )

    if not isinstance(dataset, dict):
        fail(f"the top level must be an object, got {type(dataset).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in dataset and key != "annotations":  # image-info jsons have no annotations
            fail(f"no '{key}' list")
        if not isinstance(dataset.get(key, []), list):
            fail(f"'{key}' must be a list, got {type(dataset[key]).__name__}")
        for k, entry in enumerate(dataset.get(key, [])):
            if not isinstance(entry, dict):
                fail(f"{key} entry #{k} is not an object: {str(entry)[:80]}")

    image_ids = set()
    for image in dataset["images"]:
        record = {"image_id": image.get("id"), "file_name": image.get("file_name")}
        if not is_integer(image.get("id")):
            fail(f"image 'id' must be an integer, got {image.get('id')!r}", record)
        if image["id"] in image_ids:  # pycocotools would keep only the last entry
            fail("duplicate image id", record)
        image_ids.add(image["id"])
    category_ids = set()
    for category in dataset["categories"]:
        if not is_integer(category.get("id")) or not isinstance(category.get("name"), str):
            fail(f"category {str(category)[:80]} needs an integer 'id' and a string 'name'")
        if category["id"] in category_ids:
            fail(f"duplicate category id {category['id']}")
        category_ids.add(category["id"])
    for ann in dataset.get("annotations", []):
        for key in ("id", "image_id", "category_id"):
            if not is_integer(ann.get(key)):
                record = {"image_id": ann.get("image_id"), "file_name": "?"}
                fail(f"annotation '{key}' must be an integer, got {ann.get(key)!r}", record, ann)


def _check_image(record: dict, check_files: bool, check_size: bool) -> Optional[str]:
    height, width = record.get("height"), record.get("width")
    if not all(is_integer(v) and v > 0 for v in (height, width)):
        return f"image entry needs positive integer height and width, got {height!r}, {width!r}"
    if not (check_files or check_size):
        return None
    file_name = record.get("file_name")
    if not isinstance(file_name, str):  # os.path.isfile(3) would test file descriptor 3
        return f"image entry needs a 'file_name' string, got {file_name!r}"
    if not os.path.isfile(file_name):
        return "image file not found"
    if check_size:
        try:
            file_wh = image_size_from_file(file_name)
        except (OSError, Image.DecompressionBombError) as e:  # corrupt, empty, not an image
            return f"image file cannot be read ({type(e).__name__}: {e})"
        if file_wh != (width, height):
            return (
                f"image file is {file_wh[0]}x{file_wh[1]} (width x height) but the json says "
                f"{width}x{height}"
            )
    return None


def _clean_annotation(ann, record, json_file, category_ids, counts) -> bool:
    """Validate/clean one annotation in place; return False when it is to be removed."""

    def fail(problem):
        raise AnnotationError(json_file, problem, record, ann)

    category_id = ann.get("category_id")
    if not is_integer(category_id):  # a float or a string would be a silently wrong label
        fail(f"'category_id' must be an integer, got {category_id!r}")
    if category_ids is not None and category_id not in category_ids:
        fail(f"category id {category_id!r} is not among the json's categories")
    iscrowd = ann.get("iscrowd", 0)
    if not (isinstance(iscrowd, numbers.Integral) and iscrowd in (0, 1)):
        # detectron2 ignores any non-zero value as crowd: "0", [] or NaN would drop the box.
        fail(f"iscrowd must be 0 or 1, got {iscrowd!r}")
    problem, degenerate = check_box(ann.get("bbox"), ann.get("bbox_mode", BoxMode.XYWH_ABS))
    if problem:
        fail(problem)
    if degenerate:
        counts["box_degenerate"] += 1
        return False

    segm = ann.get("segmentation")
    if segm is None or (isinstance(segm, (list, dict)) and not segm):  # a box-only instance
        ann.pop("segmentation", None)
        return True
    if isinstance(segm, dict):
        problem, segm = check_rle(segm, record["height"], record["width"])
        if problem:
            fail(problem)
        ann["segmentation"] = segm
    elif isinstance(segm, list):
        problem, kept = valid_polygon_parts(segm, record["height"], record["width"])
        if problem:
            fail(problem)
        if len(kept) < len(segm):
            counts["polygon_part_dropped"] += len(segm) - len(kept)
            if kept:
                ann["segmentation"] = kept
            else:
                counts["mask_dropped_box_kept"] += 1
                del ann["segmentation"]
    else:
        fail(f"segmentation must be a polygon list or an RLE dict, got {type(segm).__name__}")
    return True


def validate_coco_dicts(
    dataset_dicts: List[dict],
    json_file: str,
    *,
    category_ids: Optional[Iterable[int]] = None,
    check_files: bool = True,
    check_image_sizes: Optional[bool] = None,
    counts: Optional[Dict[str, int]] = None,
    dataset_name: Optional[str] = None,
) -> Tuple[List[dict], Dict[str, int]]:
    """Validate and clean detectron2 dataset dicts loaded from a COCO-format json.

    The policy (what raises, what is skipped) is in this module's docstring.

    Args:
        dataset_dicts: detectron2 standard dicts (``file_name``, ``height``, ``width``,
            ``image_id``, ``annotations``); annotations may carry the json's ``id``, used in
            error messages. Records are cleaned in place.
        json_file: the file the dicts come from, named in errors and in the summary.
        category_ids: the valid values of ``category_id`` (None: not checked).
        check_files: whether every image file must exist.
        check_image_sizes: compare each file's size with the record's; None = when
            ``check_files`` and there are fewer than :data:`SIZE_CHECK_MAX_IMAGES` images.
        counts: skips made before (e.g. by the loader), added to the returned counts.
        dataset_name: used in the summary line instead of the json file when given.

    Returns:
        (the cleaned dicts, ``{reason: count}`` for every reason of :data:`SKIP_REASONS`).
    """
    if check_image_sizes is None:
        check_image_sizes = check_files and len(dataset_dicts) < SIZE_CHECK_MAX_IMAGES
    category_ids = None if category_ids is None else set(category_ids)
    counts = {**{reason: 0 for reason in SKIP_REASONS}, **(counts or {})}
    for record in dataset_dicts:
        problem = _check_image(record, check_files, check_image_sizes)
        if problem:
            raise AnnotationError(json_file, problem, record)
        annotations = record.get("annotations", [])
        if not (isinstance(annotations, list) and all(isinstance(a, dict) for a in annotations)):
            raise AnnotationError(json_file, "'annotations' must be a list of dicts", record)
        record["annotations"] = [
            ann
            for ann in annotations
            if _clean_annotation(ann, record, json_file, category_ids, counts)
        ]
    num_annotations = sum(len(r["annotations"]) for r in dataset_dicts)
    log_validation_summary(dataset_name or json_file, len(dataset_dicts), num_annotations, counts)
    return dataset_dicts, counts


def log_validation_summary(
    source: str, num_images: int, num_annotations: int, counts: Dict[str, int]
) -> None:
    """One line per loaded dataset: what is left and what was skipped or changed, by reason
    (a warning when anything was); every loader of the project logs it in this format."""
    skipped = ", ".join(f"{reason}={n}" for reason, n in counts.items())
    logger.log(
        logging.WARNING if any(counts.values()) else logging.INFO,
        f"{source}: {num_images} images, {num_annotations} annotations after validation; "
        f"skipped or changed: {skipped}",
    )
