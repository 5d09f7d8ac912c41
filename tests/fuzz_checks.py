"""What the hostile-data fuzz tests (tests/test_fuzz_*.py) accept as the end of a case.

Policy (maskx_d2/data/validation.py): every case ends in a clear error (a ValueError or an
OSError whose message names the file, and the image or annotation when one entry is at fault)
or in a result the model can train on, with what was dropped counted in the summary line; the
training mapper may skip an image it cannot read as recorded (None, with a counted warning).
Never another exception type, never a crash in a training step, never a slow or hung case.
Cases are seeded: a failure prints the case number and its mutations.
"""

import math
import os

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.structures import BitMasks, BoxMode, PolygonMasks
from fuzz_fixtures import NUM_CATEGORIES
from PIL import Image

import maskx_d2  # noqa: F401  (registers the datasets and model parts)

# ---- Errors ----------------------------------------------------------------------------------

CLEAR_ERRORS = (ValueError, OSError)


def check_clear_error(error, files, where, describe):
    """``error`` is a clear error type naming one of ``files`` and, if ``where`` lists
    locations (image/annotation), one of them."""
    message = str(error)
    assert isinstance(error, CLEAR_ERRORS), f"unclear {type(error).__name__}\n  in {describe()}"
    assert any(str(f) in message for f in files), f"no file named: {message}\n  in {describe()}"
    if where:
        assert any(w in message for w in where), f"none of {where}: {message}\n  in {describe()}"


# ---- Loaded records --------------------------------------------------------------------------


def finite_numbers(values):
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def check_record(record, num_classes, describe):
    def bad(what):
        return f"{what} in a loaded record\n  in {describe()}"

    w, h = record["width"], record["height"]
    assert isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0, bad(f"size {w}x{h}")
    assert isinstance(record["file_name"], str) and os.path.isfile(record["file_name"])
    for ann in record["annotations"]:
        assert ann["category_id"] in range(num_classes), bad(f"class {ann['category_id']!r}")
        assert ann.get("iscrowd", 0) in (0, 1), bad(f"iscrowd {ann['iscrowd']!r}")
        bbox = ann["bbox"]
        assert len(bbox) == 4 and finite_numbers(bbox), bad(f"bbox {bbox!r}")
        if ann.get("bbox_mode", BoxMode.XYWH_ABS) == BoxMode.XYWH_ABS:
            assert bbox[2] > 0 and bbox[3] > 0, bad(f"empty bbox {bbox!r}")
        segm = ann.get("segmentation")
        if isinstance(segm, dict):
            assert list(segm["size"]) == [h, w], bad(f"RLE size {segm['size']}")
            assert mask_util.decode(segm).shape == (h, w), bad("RLE")
        elif segm:
            for part in segm:
                ok = len(part) >= 6 and len(part) % 2 == 0 and finite_numbers(part)
                assert ok, bad(f"polygon {part!r:.200}")


# ---- The training mapper on what validation accepts -----------------------------------------


def readable_as_recorded(record):
    try:
        with Image.open(record["file_name"]) as image:
            image.load()
            return image.size == (record["width"], record["height"])
    except OSError:
        return False


def check_mapped(mappers, record, describe, num_classes=NUM_CATEGORIES):
    """Every mapper turns ``record`` into training targets, or skips (None) an image that
    cannot be read as recorded (detectron2's loader then takes another image)."""
    for mapper in mappers:
        out = mapper(record)
        if out is None:
            assert not readable_as_recorded(record), f"readable image skipped\n  in {describe()}"
            continue
        check_trainable(out, describe, num_classes)


def check_trainable(out, describe, num_classes):
    image, inst = out["image"], out["instances"]
    assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3, describe()
    h, w = image.shape[1:]
    n = len(inst)
    assert inst.image_size == (h, w), describe()
    boxes = inst.gt_boxes.tensor
    assert boxes.shape == (n, 4) and torch.isfinite(boxes).all(), f"{boxes}\n  in {describe()}"
    assert (boxes[:, 2:] > boxes[:, :2]).all(), f"empty box {boxes}\n  in {describe()}"
    assert inst.gt_classes.dtype == torch.int64, describe()
    assert ((inst.gt_classes >= 0) & (inst.gt_classes < num_classes)).all(), describe()
    has_mask = inst.gt_has_mask
    assert has_mask.dtype == torch.bool and has_mask.shape == (n,), describe()
    masks = inst.gt_masks
    assert len(masks) == n, describe()
    if isinstance(masks, BitMasks):
        assert masks.tensor.shape == (n, h, w), describe()
        assert not masks.tensor[~has_mask].any(), f"mask on a box-only instance\n  in {describe()}"
        assert masks.tensor[has_mask].flatten(1).any(1).all(), f"empty mask\n  in {describe()}"
    else:
        assert isinstance(masks, PolygonMasks), describe()
        for polygons, has in zip(masks.polygons, has_mask.tolist()):
            assert bool(polygons) == has, f"polygons {polygons} vs {has}\n  in {describe()}"
            assert all(p.size >= 6 and np.isfinite(p).all() for p in polygons), describe()
    if has_mask.any():
        # What the mask loss rasterizes: must be fast and finite for any accepted polygon.
        targets = masks[has_mask].crop_and_resize(boxes[has_mask], 28)
        assert targets.shape == (int(has_mask.sum()), 28, 28), describe()
