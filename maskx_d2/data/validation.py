"""Checks COCO-format dataset dicts once at load time, so bad input never reaches a training step.

Every dataset registered through :func:`maskx_d2.data.register_partially_supervised_coco_json`
(the predefined COCO splits included) goes through :func:`validate_coco_dicts`. Each problem is
either an error or a counted skip; nothing is silently relabelled.

Errors raise :class:`AnnotationError` (a ``ValueError``) whose message names the json file, the
image id and file name, the annotation id and the problem:

  - category id not among the json's ``categories`` (a wrong label is worse than a crash);
  - ``bbox`` missing, not 4 numbers, or with NaN/inf;
  - ``segmentation`` that is neither a list of polygons nor an RLE dict, polygon coordinates
    that are not numbers or are NaN/inf;
  - RLE whose ``size`` is not the image's ``[height, width]`` (the mask would be misaligned),
    whose ``counts`` is neither a string nor a list of non-negative ints, or whose counts do
    not add up to height * width (truncated or corrupt; pycocotools would decode garbage);
  - image entry without a positive integer height/width, image file missing (``check_files``);
  - image file whose size differs from the json (``check_image_sizes``, see below).

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
import math
import os
from operator import mul
from typing import Dict, Iterable, List, Optional, Tuple

import pycocotools.mask as mask_util
from PIL import Image

from detectron2.structures import BoxMode

__all__ = [
    "AnnotationError",
    "SKIP_REASONS",
    "SIZE_CHECK_MAX_IMAGES",
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


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_box(bbox, bbox_mode) -> Tuple[Optional[str], bool]:
    """Return (problem or None, whether the box has zero or negative width or height)."""
    not_numbers = f"bbox must be 4 numbers [x, y, width, height], got {bbox!r}"
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return not_numbers, False
    try:  # math.isfinite raises TypeError for non-numbers: one pass checks both
        finite = all(map(math.isfinite, bbox))
    except TypeError:
        return not_numbers, False
    if not finite:
        return f"bbox has NaN/inf coordinates: {bbox!r}", False
    if bbox_mode == BoxMode.XYWH_ABS:
        w, h = bbox[2], bbox[3]
    elif bbox_mode == BoxMode.XYXY_ABS:
        w, h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    else:
        return f"bbox_mode {bbox_mode} is not supported (XYWH_ABS or XYXY_ABS)", False
    return None, w <= 0 or h <= 0


def _polygon_area(poly: List[float]) -> float:
    """Shoelace area of a flat [x0, y0, x1, y1, ...] polygon; NaN/inf if any coordinate is."""
    xs, ys = poly[0::2], poly[1::2]
    return 0.5 * abs(sum(map(mul, xs, ys[1:] + ys[:1])) - sum(map(mul, xs[1:] + xs[:1], ys)))


def _valid_polygon_parts(segm: list) -> Tuple[Optional[str], list]:
    """Split a polygon list into (problem or None, usable parts)."""
    not_numbers = (
        "segmentation must be a list of polygons [[x0, y0, x1, y1, ...], ...] of numbers or an "
        "RLE dict, got a part {}"
    )
    kept = []
    for poly in segm:
        if not isinstance(poly, list):
            return not_numbers.format(str(poly)[:80]), kept
        if len(poly) < 6 or len(poly) % 2:
            if not all(map(_is_number, poly)):
                return not_numbers.format(str(poly)[:80]), kept
            continue
        try:  # checking every coordinate's type would double the cost on COCO's 1M polygons
            area = _polygon_area(poly)
        except TypeError:
            return not_numbers.format(str(poly)[:80]), kept
        if not math.isfinite(area):
            return "polygon has NaN/inf coordinates", kept
        if area > 0:
            kept.append(poly)
    return None, kept


def _rle_string_total(counts: str) -> Optional[int]:
    """Sum of the run lengths of a COCO compressed RLE string, None if it is malformed.

    Mirrors pycocotools' ``rleFrString`` (6-bit chunks, offset 48, delta from run m-2).
    """
    runs, p, n = [], 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            return None
        runs.append(x)
    return sum(runs)


def _check_rle(segm: dict, height: int, width: int) -> Tuple[Optional[str], dict]:
    """Return (problem or None, the RLE with compressed counts, as detectron2 stores it)."""
    size, counts = segm.get("size"), segm.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        return f"RLE 'size' must be [height, width] integers, got {size!r}", segm
    if size != [height, width]:
        return f"RLE size {size} differs from the image's [height, width] {[height, width]}", segm
    if isinstance(counts, list):
        if not all(isinstance(v, int) and v >= 0 for v in counts):
            return "uncompressed RLE 'counts' must be non-negative integers", segm
        total = sum(counts)
    elif isinstance(counts, (str, bytes)):
        text = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
        total = _rle_string_total(text)
        if total is None:
            return "compressed RLE 'counts' string is malformed", segm
    else:
        return f"RLE 'counts' must be a string or a list of ints, got {type(counts).__name__}", segm
    if total != height * width:
        return f"RLE counts cover {total} pixels, the image has {height * width}", segm
    if isinstance(counts, list):  # compressed, as detectron2's load_coco_json stores it
        segm = mask_util.frPyObjects(segm, height, width)
    return None, segm


def _check_image(record: dict, check_files: bool, check_size: bool) -> Optional[str]:
    height, width = record.get("height"), record.get("width")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (height, width)):
        return f"image entry needs positive integer height and width, got {height!r}, {width!r}"
    if not (check_files or check_size):
        return None
    if not os.path.isfile(record["file_name"]):
        return "image file not found"
    if check_size:
        file_wh = image_size_from_file(record["file_name"])
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

    if "category_id" not in ann:
        fail("annotation has no category_id")
    if category_ids is not None and ann["category_id"] not in category_ids:
        fail(f"category id {ann['category_id']!r} is not among the json's categories")
    problem, degenerate = _check_box(ann.get("bbox"), ann.get("bbox_mode", BoxMode.XYWH_ABS))
    if problem:
        fail(problem)
    if degenerate:
        counts["box_degenerate"] += 1
        return False

    segm = ann.get("segmentation")
    if not segm:  # absent, None or []: a box-only instance
        ann.pop("segmentation", None)
        return True
    if isinstance(segm, dict):
        problem, segm = _check_rle(segm, record["height"], record["width"])
        if problem:
            fail(problem)
        ann["segmentation"] = segm
    elif isinstance(segm, list):
        problem, kept = _valid_polygon_parts(segm)
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
        record["annotations"] = [
            ann
            for ann in record.get("annotations", [])
            if _clean_annotation(ann, record, json_file, category_ids, counts)
        ]
    _log_summary(dataset_dicts, dataset_name or json_file, counts)
    return dataset_dicts, counts


def _log_summary(dataset_dicts: List[dict], source: str, counts: Dict[str, int]) -> None:
    num_anns = sum(len(r["annotations"]) for r in dataset_dicts)
    skipped = ", ".join(f"{reason}={n}" for reason, n in counts.items())
    logger.log(
        logging.WARNING if any(counts.values()) else logging.INFO,
        f"{source}: {len(dataset_dicts)} images, {num_anns} annotations after validation; "
        f"skipped or changed: {skipped}",
    )
