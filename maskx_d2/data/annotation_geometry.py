"""Checks of one annotation's geometry: its box, polygons and RLE, against its image's size.

Each check returns ``(problem or None, ...)`` instead of raising, so that the caller
(validation.py) can name the file, image and annotation in its error, or count a skip.
"""

import math
import numbers
from operator import mul
from typing import List, Optional, Tuple

import pycocotools.mask as mask_util
from detectron2.structures import BoxMode

__all__ = [
    "POLYGON_MARGIN",
    "check_box",
    "check_rle",
    "is_integer",
    "is_polygon_part",
    "valid_polygon_parts",
]

# Polygon coordinates may lie outside the image by at most this fraction of its width/height
# (annotation tools overshoot by a pixel or so; farther is corrupt data).
POLYGON_MARGIN = 1.0


def is_polygon_part(poly) -> bool:
    """Whether a polygon part (a flat list or array of x, y coordinates) has the 3 points,
    i.e. 6 coordinates, a polygon needs; shorter parts are dropped wherever they appear."""
    return len(poly) >= 6


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_box(bbox, bbox_mode) -> Tuple[Optional[str], bool]:
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
    if not isinstance(bbox_mode, int):  # an array would compare element-wise below
        return f"bbox_mode must be a BoxMode, got {bbox_mode!r}", False
    if bbox_mode == BoxMode.XYWH_ABS:
        w, h = bbox[2], bbox[3]
    elif bbox_mode == BoxMode.XYXY_ABS:
        w, h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    else:
        return f"bbox_mode {bbox_mode} is not supported (XYWH_ABS or XYXY_ABS)", False
    return None, w <= 0 or h <= 0


def polygon_area(xs: List[float], ys: List[float]) -> float:
    """Shoelace area of the polygon (xs[i], ys[i]); NaN/inf if any coordinate is."""
    return 0.5 * abs(sum(map(mul, xs, ys[1:] + ys[:1])) - sum(map(mul, xs[1:] + xs[:1], ys)))


def valid_polygon_parts(segm: list, height: int, width: int) -> Tuple[Optional[str], list]:
    """Split a polygon list into (problem or None, usable parts)."""
    not_numbers = (
        "segmentation must be a list of polygons [[x0, y0, x1, y1, ...], ...] of numbers or an "
        "RLE dict, got a part {}"
    )
    x_min, x_max = -POLYGON_MARGIN * width, (1 + POLYGON_MARGIN) * width
    y_min, y_max = -POLYGON_MARGIN * height, (1 + POLYGON_MARGIN) * height
    kept = []
    for poly in segm:
        if not isinstance(poly, list):
            return not_numbers.format(str(poly)[:80]), kept
        if not is_polygon_part(poly) or len(poly) % 2:
            if not all(map(is_number, poly)):
                return not_numbers.format(str(poly)[:80]), kept
            continue
        xs, ys = poly[0::2], poly[1::2]
        try:  # checking every coordinate's type would double the cost on COCO's 1M polygons
            area = polygon_area(xs, ys)
        except TypeError:
            return not_numbers.format(str(poly)[:80]), kept
        if not math.isfinite(area):
            return "polygon has NaN/inf coordinates", kept
        # pycocotools rasterizes a polygon edge by edge, pixel by pixel (in the mapper and in
        # the mask loss): coordinates ~1e7 away take seconds, ~1e9 crash the process.
        if not (x_min <= min(xs) and max(xs) <= x_max and y_min <= min(ys) and max(ys) <= y_max):
            return (
                f"polygon coordinates reach x in [{min(xs):.6g}, {max(xs):.6g}], y in "
                f"[{min(ys):.6g}, {max(ys):.6g}], far outside the {width}x{height} image"
            ), kept
        if area > 0:
            kept.append(poly)
    return None, kept


def rle_string_total(counts: str) -> Optional[int]:
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


def check_rle(segm: dict, height: int, width: int) -> Tuple[Optional[str], dict]:
    """Return (problem or None, the RLE with compressed counts, as detectron2 stores it)."""
    size, counts = segm.get("size"), segm.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(is_integer(v) for v in size)):
        return f"RLE 'size' must be [height, width] integers, got {size!r}", segm
    if size != [height, width]:
        return f"RLE size {size} differs from the image's [height, width] {[height, width]}", segm
    if isinstance(counts, list):
        if not all(is_integer(v) and v >= 0 for v in counts):
            return "uncompressed RLE 'counts' must be non-negative integers", segm
        total = sum(counts)
    elif isinstance(counts, (str, bytes)):
        text = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
        total = rle_string_total(text)
        if total is None:
            return "compressed RLE 'counts' string is malformed", segm
    else:
        return f"RLE 'counts' must be a string or a list of ints, got {type(counts).__name__}", segm
    if total != height * width:
        return f"RLE counts cover {total} pixels, the image has {height * width}", segm
    if isinstance(counts, list):  # compressed, as detectron2's load_coco_json stores it
        segm = mask_util.frPyObjects(segm, height, width)
    return None, segm
