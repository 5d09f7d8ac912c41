"""Fuzz the dataset loaders and the training mapper with randomly broken files and dicts.

Every case must end in one of two ways (policy in maskx_d2/data/validation.py):
  - a clear error: a ValueError (AnnotationError, json errors, detectron2's SizeMismatchError)
    or an OSError (FileNotFoundError, PIL's unreadable-image errors) whose message names the
    file, and the image or annotation when one entry is at fault;
  - a result the model can train on, with what was dropped counted in the summary line; the
    training mapper may skip (return None, with a counted warning) an image it cannot read as
    recorded.
Never another exception type, never a crash in the mapper, and never a slow case. A seeded
generator keeps every failure reproducible: the assertion message prints the case's seed and
its mutations.
"""

import copy
import faulthandler
import json
import logging
import math
import os
import re
import time
from contextlib import contextmanager

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

import maskx_d2  # noqa: F401  (makes detectron2 importable)
from detectron2.config import get_cfg
from detectron2.structures import BitMasks, BoxMode, PolygonMasks
from maskx_d2 import add_maskx_config
from maskx_d2.data.custom import load_partially_supervised_coco_json
from maskx_d2.data.mapper import PartiallySupervisedDatasetMapper
from maskx_d2.data.validation import AnnotationError, validate_coco_dicts
from maskx_d2.data.vg_dicts import vg_dataset_dicts
from maskx_d2.data.vg_tables import load_vg_tables
from maskx_d2.data.vg_vocab import VGCategories

SEED = 20240611
NUM_COCO_FILE_CASES = 300
NUM_DICT_CASES = 200
NUM_VG_CASES = 100
CASE_SECONDS = 5.0  # a slow case fails; a hung one is killed (with tracebacks) after 12x this
CLEAR_ERRORS = (ValueError, OSError)
NAN, INF = float("nan"), float("inf")
NUM_CATEGORIES = 3

# Values that break a field of any type: JSON-representable, so files can hold them too.
HOSTILE_VALUES = [None, True, False, "1", "", [], {}, [1], {"a": 1}, -1, 0, 1.5, NAN, INF]
HOSTILE_VALUES += [-INF, 1e308, 2**70, -(2**70), "\x00", "\udbff", [[[]]]]
HOSTILE_NUMBERS = [0, -1, 1e-9, 31.9, 32, 33, 1e4, 1e9, 1e300, -1e300, NAN, INF, -INF, 2**64]
HOSTILE_NUMBERS += [True, "5", None, [1]]

# The image pool, shared by all cases. Sizes are (width, height).
GOOD_IMAGES = {"a.jpg": (32, 32), "b.png": (32, 24), "c.jpg": (20, 30)}
BAD_IMAGES = ["corrupt.jpg", "empty.jpg", "truncated.jpg", "text.png", "missing.jpg", "dir.jpg"]


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(SEED)
    for name, (w, h) in GOOD_IMAGES.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / name)
    (root / "corrupt.jpg").write_bytes(rng.integers(0, 255, 500, dtype=np.uint8).tobytes())
    (root / "empty.jpg").write_bytes(b"")
    full = (root / "a.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 2])  # header intact, data cut
    (root / "text.png").write_text("not an image")
    (root / "dir.jpg").mkdir()
    return str(root)


def _config(mask_format):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.MAX_SIZE_TRAIN = 128
    cfg.INPUT.MASK_FORMAT = mask_format
    return cfg


@pytest.fixture(scope="module")
def mappers():
    """Both mask formats; polygons are rasterized only by the loss, bitmasks in the mapper.
    (Cropping polygons needs shapely, which is not installed.)"""
    return [
        PartiallySupervisedDatasetMapper(_config("polygon"), is_train=True),
        PartiallySupervisedDatasetMapper(_config("bitmask"), is_train=True),
    ]


# ---- Case bookkeeping ----------------------------------------------------------------------


class _Summaries(logging.Handler):
    """Collects the validation summary lines ("... box_degenerate=N, ...")."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextmanager
def _bounded_case(describe):
    """Fail a case that takes longer than CASE_SECONDS; kill the run if one hangs in C code,
    where no Python-level timeout can interrupt it."""
    faulthandler.dump_traceback_later(12 * CASE_SECONDS, exit=True)
    start = time.perf_counter()
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
    elapsed = time.perf_counter() - start
    assert elapsed < CASE_SECONDS, f"took {elapsed:.1f} s\n  in {describe()}"


def _check_clear_error(error, files, where, describe):
    """``error`` is a clear error type naming one of ``files`` and, if ``where`` lists
    locations (image/annotation), one of them."""
    message = str(error)
    assert isinstance(error, CLEAR_ERRORS), f"unclear {type(error).__name__}\n  in {describe()}"
    assert any(str(f) in message for f in files), f"no file named: {message}\n  in {describe()}"
    if where:
        assert any(w in message for w in where), f"none of {where}: {message}\n  in {describe()}"


def _rng(target, case):
    return np.random.default_rng([SEED, target, case])


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


# ---- Geometry generators -------------------------------------------------------------------


def _valid_polygon(rng, w, h, points=None):
    points = points or int(rng.integers(3, 12))
    center = rng.uniform([0, 0], [w, h])
    angles = np.sort(rng.uniform(0, 2 * np.pi, points))
    radius = rng.uniform(1, min(w, h) / 2, points)
    xy = center + np.stack([np.cos(angles), np.sin(angles)], 1) * radius[:, None]
    return xy.ravel().tolist()


def _hostile_polygon_part(rng, w, h):
    kind = int(rng.integers(10))
    if kind == 0:
        return _valid_polygon(rng, w, h, points=50_000)  # huge: 100k coordinates
    if kind == 1:  # far outside the image, as far as float64 goes
        return (np.array(_valid_polygon(rng, w, h)) * _pick(rng, [1e3, 1e9, 1e300, -1e6])).tolist()
    if kind == 2:
        part = _valid_polygon(rng, w, h)
        part[int(rng.integers(len(part)))] = _pick(rng, HOSTILE_NUMBERS)
        return part
    if kind == 3:
        return _valid_polygon(rng, w, h)[: int(rng.integers(0, 6))]  # < 3 points
    if kind == 4:
        return _valid_polygon(rng, w, h)[:-1]  # odd number of coordinates
    if kind == 5:
        return [1.0, 1.0] * int(rng.integers(3, 6))  # zero area
    if kind == 6:
        return _pick(rng, HOSTILE_VALUES)  # a part that is no list of numbers
    return _valid_polygon(rng, w, h)


def _random_mask(rng, w, h):
    mask = np.zeros((h, w), np.uint8)
    x0, y0 = rng.integers(0, [w, h])
    mask[y0 : y0 + rng.integers(0, h), x0 : x0 + rng.integers(0, w)] = 1
    return mask


def _rle(rng, w, h, compressed=True):
    mask = _random_mask(rng, w, h)
    if compressed:
        rle = mask_util.encode(np.asfortranarray(mask))
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    flat = mask.reshape(-1, order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(bounds).tolist()
    return {"size": [h, w], "counts": runs if flat[0] == 0 else [0] + runs}


def _hostile_rle(rng, w, h):
    rle = _rle(rng, w, h, compressed=bool(rng.integers(2)))
    kind = int(rng.integers(9))
    if kind == 0:
        rle["size"] = _pick(rng, [[h + 1, w], [w, h], [h], [h, w, 3], [0, 0], f"{h}x{w}"])
    elif kind == 1:
        rle["size"] = [_pick(rng, HOSTILE_NUMBERS), w]
    elif kind == 2 and isinstance(rle["counts"], str):
        rle["counts"] = rle["counts"][: int(rng.integers(len(rle["counts"])))]  # truncated
    elif kind == 3:
        chars = rng.integers(32, 0x3000, int(rng.integers(1, 30)))
        rle["counts"] = "".join(map(chr, chars))  # garbage, possibly non-ASCII
    elif kind == 4:
        counts = list(rle["counts"]) if isinstance(rle["counts"], list) else [w * h]
        counts[int(rng.integers(len(counts)))] = _pick(rng, HOSTILE_NUMBERS)
        rle["counts"] = counts
    elif kind == 5:
        rle.pop(_pick(rng, ["size", "counts"]))
    elif kind == 6:
        rle["counts"] = _pick(rng, HOSTILE_VALUES)
    elif kind == 7:
        rle["counts"] = [w * h - 5, 10]  # adds up to more than the image
    return rle


def _hostile_box(rng, w, h):
    kind = int(rng.integers(4))
    if kind == 0:
        return [_pick(rng, HOSTILE_NUMBERS) for _ in range(int(rng.integers(0, 6)))]
    box = [float(v) for v in rng.uniform(-4, [w, h, w, h])]
    if kind == 1:
        box[int(rng.integers(4))] = _pick(rng, HOSTILE_NUMBERS)
    elif kind == 2:
        box = _pick(rng, [[0, 0, 1e-6, 1e-6], [0, 0, 1e300, 1e300], [w + 5, h + 5, 3, 3]])
    return box


# ---- COCO json files through load_partially_supervised_coco_json ----------------------------

CATEGORY_IDS = [1, 5, 7]  # not contiguous, as COCO's


def _base_coco():
    """Three images of the pool, each with a polygon, a compressed and an uncompressed RLE, a
    box-only and a crowd annotation."""
    rng = np.random.default_rng(SEED)
    images, annotations = [], []
    for image_id, (name, (w, h)) in enumerate(GOOD_IMAGES.items(), start=1):
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        segmentations = [
            [_valid_polygon(rng, w, h), _valid_polygon(rng, w, h)],
            _rle(rng, w, h),
            _rle(rng, w, h, compressed=False),
            [],
            _rle(rng, w, h, compressed=False),
        ]
        for k, segmentation in enumerate(segmentations):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_IDS[k % len(CATEGORY_IDS)],
                    "bbox": [1.0 + k, 2.0, 8.0, 6.0 + k],
                    "segmentation": segmentation,
                    "area": 40.0,
                    "iscrowd": int(k == 4),
                }
            )
    categories = [{"id": i, "name": f"class{i}", "supercategory": "x"} for i in CATEGORY_IDS]
    return {"images": images, "annotations": annotations, "categories": categories}


def _image_size_of(data, image_id):
    images = data.get("images") if isinstance(data, dict) else None
    for image in images if isinstance(images, list) else []:
        if isinstance(image, dict) and image.get("id") == image_id:
            w, h = image.get("width"), image.get("height")
            if all(isinstance(v, int) and 0 < v < 10_000 for v in (w, h)):
                return w, h
    return 32, 32


def _entries(data, key):
    entries = data.get(key) if isinstance(data, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _mutate_annotation(rng, data):
    anns = _entries(data, "annotations")
    if not anns:
        return None
    ann = _pick(rng, anns)
    w, h = _image_size_of(data, ann.get("image_id"))
    keys = ["id", "image_id", "category_id", "bbox", "segmentation", "iscrowd", "area", "ignore"]
    kind = int(rng.integers(9))
    if kind == 0:
        ann[_pick(rng, keys)] = _pick(rng, HOSTILE_VALUES)
    elif kind == 1:
        ann.pop(_pick(rng, keys), None)
    elif kind == 2:
        ann["bbox"] = _hostile_box(rng, w, h)
    elif kind == 3:
        ann["segmentation"] = [_hostile_polygon_part(rng, w, h) for _ in range(rng.integers(1, 4))]
    elif kind == 4:
        ann["segmentation"] = _hostile_rle(rng, w, h)
    elif kind == 5:
        ann["segmentation"] = _pick(rng, [_valid_polygon(rng, w, h), "polygon", 3, [[[1, 2]]]])
    elif kind == 6:
        ann["category_id"] = _pick(rng, [0, 2, 99, -1, "1", 1.0, [1], None])
    elif kind == 7:
        ann["image_id"] = _pick(rng, [999, 2, 3, "1", 1.0, None, [1]])  # orphan or moved
    else:
        data["annotations"].append(copy.deepcopy(ann))  # duplicate id
    return ann


def _mutate_benign(rng, data):
    """Changes that are counted skips or allowed oddities, not errors."""
    anns = _entries(data, "annotations")
    if not anns:
        return None
    ann = _pick(rng, anns)
    w, h = _image_size_of(data, ann.get("image_id"))
    kind = int(rng.integers(6))
    if kind == 0:
        ann["bbox"] = [1.0, 1.0, _pick(rng, [0.0, -2.0, 5.0]), _pick(rng, [0.0, -1e300, 5.0])]
    elif kind == 1:
        extra = _pick(rng, [[], [1, 2, 3, 4], [1, 2, 3, 4, 5], [3, 3] * 4])
        ann["segmentation"] = [_valid_polygon(rng, w, h), extra]
    elif kind == 2:
        ann["segmentation"] = _pick(rng, [[], [[]], [[1, 2, 3, 4]], None])
    elif kind == 3:
        ann["image_id"] = 999  # no such image: ignored and counted
    elif kind == 4:
        shift = rng.uniform(-0.9, 0.9, 2) * [w, h]
        polygon = np.reshape(_valid_polygon(rng, w, h), (-1, 2)) + shift
        ann["segmentation"] = [polygon.ravel().tolist()]
    else:
        data["annotations"].append({**copy.deepcopy(ann), "id": 1000 + len(anns)})
    return ann


def _mutate_image(rng, data):
    images = _entries(data, "images")
    if not images:
        return None
    image = _pick(rng, images)
    keys = ["id", "file_name", "width", "height"]
    kind = int(rng.integers(6))
    if kind == 0:
        image[_pick(rng, keys)] = _pick(rng, HOSTILE_VALUES)
    elif kind == 1:
        image.pop(_pick(rng, keys), None)
    elif kind == 2:
        image["file_name"] = _pick(rng, BAD_IMAGES + list(GOOD_IMAGES))
    elif kind == 3:
        key = _pick(rng, ["width", "height"])
        image[key] = image.get(key, 32) + _pick(rng, [-1, 1, 1000]) if key in image else 7
    elif kind == 4:
        image["width"], image["height"] = image.get("height"), image.get("width")
    else:
        data["images"].append({**image, "file_name": _pick(rng, list(GOOD_IMAGES))})
    return image


def _mutate_top(rng, data):
    key = _pick(rng, ["images", "annotations", "categories"])
    kind = int(rng.integers(5))
    if kind == 0:
        data[key] = _pick(rng, HOSTILE_VALUES)
    elif kind == 1:
        data.pop(key, None)
    elif kind == 2 and isinstance(data.get(key), list):
        data[key].append(_pick(rng, HOSTILE_VALUES))  # an entry that is no object
    elif kind == 3 and _entries(data, "categories"):
        category = _pick(rng, _entries(data, "categories"))
        field = _pick(rng, ["id", "name"])
        if rng.integers(2):
            category.pop(field)
        else:
            category[field] = _pick(rng, HOSTILE_VALUES + [CATEGORY_IDS[0]])
    elif kind == 4:
        data["categories"] = []
    return None  # problems of the file's structure: the error need only name the file


def _break_text(rng, text):
    kind = int(rng.integers(7))
    if kind == 0:
        return text[: int(rng.integers(len(text)))].encode()  # truncated
    if kind == 1:
        return b""
    if kind == 2:
        return rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes()
    if kind == 3:
        return b"\xff\xfe" + text.encode()  # not UTF-8
    if kind == 4:
        return ("[" * 100_000 + "]" * 100_000).encode()  # nesting deeper than any parser's stack
    if kind == 5:
        return _pick(rng, [b"null", b"[]", b"42", b'"images"', b"[" + text.encode() + b"]"])
    return (text + _pick(rng, ["}", " x", "\n{}"])).encode()  # trailing garbage


def _coco_case(rng, path):
    """Write a broken json to ``path`` (or make ``path`` missing or a folder); returns the
    mutation log, the written data and where the error may point (None: anywhere)."""
    data = _base_coco()
    log, where = [], []
    for _ in range(int(rng.integers(1, 4))):
        mutations = [_mutate_annotation] * 4 + [_mutate_image] * 2 + [_mutate_top]
        mutate = _pick(rng, mutations + [_mutate_benign] * 5)
        log.append(mutate.__name__)
        target = mutate(rng, data)
        where = None if target is None or where is None else where + [target]
    text = json.dumps(data)
    if rng.random() < 0.12:
        raw = _break_text(rng, text)
        log.append(f"text: {raw[:60]!r}")
        where, data = None, None
    elif rng.random() < 0.03:
        raw = None
        log.append("no file" if rng.integers(2) else "a folder")
        where, data = None, None
        if log[-1] == "a folder":
            os.mkdir(path)
    else:
        raw = text.encode()
    if raw is not None:
        with open(path, "wb") as f:
            f.write(raw)
    return log, data, where


def _where_tokens(targets):
    """The locations an error about these mutated entries may name."""
    tokens = []
    for entry in targets:
        if "file_name" in entry or "width" in entry:  # an image entry
            tokens.append(f"image id {entry.get('id')} (")
        else:
            tokens += [
                f"annotation id {entry.get('id', '?')}",
                f"image id {entry.get('image_id')} (",
            ]
    return tokens


def test_coco_json_fuzz(tmp_path, image_root, mappers):
    handler = _Summaries()
    logger = logging.getLogger("maskx_d2.data")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    outcomes = {"error": 0, "loaded": 0}
    try:
        for case in range(NUM_COCO_FILE_CASES):
            rng = _rng(0, case)
            json_file = str(tmp_path / f"case{case}.json")
            log, data, targets = _coco_case(rng, json_file)

            def describe():
                return f"COCO case {case} {log}"

            handler.lines.clear()
            with _bounded_case(describe):
                try:
                    dicts = load_partially_supervised_coco_json(json_file, image_root)
                except Exception as e:
                    where = None if targets is None else _where_tokens(targets)
                    _check_clear_error(e, [json_file], where, describe)
                    outcomes["error"] += 1
                    continue
                _check_loaded(dicts, data, _skip_counts(handler.lines, json_file), describe)
                for record in dicts:
                    _check_mapped(mappers, record, describe)
                outcomes["loaded"] += 1
    finally:
        logger.removeHandler(handler)
    # The generator must exercise both outcomes, or the test tests less than it claims.
    assert min(outcomes.values()) >= NUM_COCO_FILE_CASES // 10, outcomes


def _skip_counts(lines, source):
    (line,) = [line for line in lines if line.startswith(source)]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def _check_loaded(dicts, data, counts, describe):
    """Loaded dicts are clean, and every input annotation is kept or counted as skipped."""
    kept = sum(len(r["annotations"]) for r in dicts)
    dropped = counts["box_degenerate"] + counts["annotation_without_image"]
    num_input = len(data.get("annotations", []))
    assert kept + dropped == num_input, f"silently dropped: {counts}\n  in {describe()}"
    num_classes = len({c["id"] for c in data["categories"]})
    for record in dicts:
        _check_record(record, num_classes, describe)


def _finite_numbers(values):
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _check_record(record, num_classes, describe):
    def bad(what):
        return f"{what} in a loaded record\n  in {describe()}"

    w, h = record["width"], record["height"]
    assert isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0, bad(f"size {w}x{h}")
    assert isinstance(record["file_name"], str) and os.path.isfile(record["file_name"])
    for ann in record["annotations"]:
        assert ann["category_id"] in range(num_classes), bad(f"class {ann['category_id']!r}")
        assert ann.get("iscrowd", 0) in (0, 1), bad(f"iscrowd {ann['iscrowd']!r}")
        bbox = ann["bbox"]
        assert len(bbox) == 4 and _finite_numbers(bbox), bad(f"bbox {bbox!r}")
        if ann.get("bbox_mode", BoxMode.XYWH_ABS) == BoxMode.XYWH_ABS:
            assert bbox[2] > 0 and bbox[3] > 0, bad(f"empty bbox {bbox!r}")
        segm = ann.get("segmentation")
        if isinstance(segm, dict):
            assert list(segm["size"]) == [h, w], bad(f"RLE size {segm['size']}")
            assert mask_util.decode(segm).shape == (h, w), bad("RLE")
        elif segm:
            for part in segm:
                ok = len(part) >= 6 and len(part) % 2 == 0 and _finite_numbers(part)
                assert ok, bad(f"polygon {part!r:.200}")


# ---- The training mapper on what validation accepts -----------------------------------------


def _readable_as_recorded(record):
    try:
        with Image.open(record["file_name"]) as image:
            image.load()
            return image.size == (record["width"], record["height"])
    except OSError:
        return False


def _check_mapped(mappers, record, describe, num_classes=NUM_CATEGORIES):
    """Every mapper turns ``record`` into training targets, or skips (None) an image that
    cannot be read as recorded (detectron2's loader then takes another image)."""
    for mapper in mappers:
        out = mapper(record)
        if out is None:
            assert not _readable_as_recorded(record), f"readable image skipped\n  in {describe()}"
            continue
        _check_trainable(out, describe, num_classes)


def _check_trainable(out, describe, num_classes):
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


# ---- Dataset dicts through validate_coco_dicts and then the mapper ---------------------------


def _fuzz_annotation(rng, ann_id, w, h):
    """(annotation, whether it is meant to be broken). Most are valid but unusual."""
    ann = {
        "id": ann_id,
        "category_id": int(rng.integers(NUM_CATEGORIES)),
        "bbox": [float(v) for v in rng.uniform(-4, [w, h, w, h])],
        "bbox_mode": BoxMode.XYWH_ABS,
    }
    kind = int(rng.integers(14))
    hostile = kind >= 10
    if kind == 0:
        ann["segmentation"] = [_valid_polygon(rng, w, h) for _ in range(rng.integers(1, 4))]
    elif kind == 1:
        ann["segmentation"] = [_valid_polygon(rng, w, h, points=50_000)]
    elif kind == 2:  # partly outside the image, as real annotations can be
        shift = rng.uniform(-0.4, 0.4, 2) * [w, h]
        ann["segmentation"] = [
            (np.reshape(_valid_polygon(rng, w, h), (-1, 2)) + shift).ravel().tolist()
        ]
    elif kind == 3:
        ann["segmentation"] = _rle(rng, w, h, compressed=bool(rng.integers(2)))
    elif kind == 4:
        ann["segmentation"] = _pick(rng, [[], None, [[]], [[1, 1, 2, 2]]])
    elif kind == 5:
        ann["iscrowd"] = 1
        ann["segmentation"] = _rle(rng, w, h)
    elif kind == 6:
        ann["bbox"] = _pick(rng, [[0, 0, 1e-6, 1e-6], [0, 0, 1e300, 1e300], [w + 5, h + 5, 3, 3]])
        ann["segmentation"] = [_valid_polygon(rng, w, h)]
    elif kind == 7:
        ann["bbox_mode"] = BoxMode.XYXY_ABS
        ann["bbox"] = [1.0, 2.0, float(rng.uniform(0, w)), float(rng.uniform(0, h))]
    elif kind == 8:
        ann["bbox"] = [1.0, 1.0, _pick(rng, [0.0, -3.0]), 5.0]  # degenerate: a counted skip
    elif kind == 9:
        ann["segmentation"] = [_valid_polygon(rng, w, h), _hostile_polygon_part(rng, w, h)]
        hostile = None  # may or may not be broken; if it is, the error must name it
    elif kind == 10:
        ann["segmentation"] = _hostile_rle(rng, w, h)
        hostile = None
    elif kind == 11:
        ann["bbox"] = _hostile_box(rng, w, h)
        hostile = None
    elif kind == 12:
        ann[_pick(rng, ["category_id", "bbox", "segmentation", "iscrowd", "bbox_mode"])] = _pick(
            rng, HOSTILE_VALUES + [np.float32(1.0), np.zeros(4), (1, 2, 3, 4)]
        )
        hostile = None
    else:
        ann.pop(_pick(rng, ["category_id", "bbox"]))
    return ann, hostile


def _fuzz_record(rng, image_id, image_root):
    name = _pick(rng, list(GOOD_IMAGES) * 4 + BAD_IMAGES)
    w, h = GOOD_IMAGES.get(name, (32, 32))
    record = {"file_name": os.path.join(image_root, name), "image_id": image_id}
    record.update(width=w, height=h)
    if rng.random() < 0.1:
        record[_pick(rng, ["width", "height"])] += _pick(rng, [-1, 1, 100])
    anns = [_fuzz_annotation(rng, 100 * image_id + k, w, h) for k in range(rng.integers(0, 7))]
    record["annotations"] = [ann for ann, _ in anns]
    where = [f"annotation id {ann['id']}" for ann, hostile in anns if hostile is not False]
    if name in BAD_IMAGES or (w, h) != (record["width"], record["height"]):
        where.append(f"image id {image_id} (")
    return record, where


def test_dataset_dict_fuzz_through_validation_and_mapper(image_root, mappers):
    outcomes = {"error": 0, "mapped": 0}
    for case in range(NUM_DICT_CASES):
        rng = _rng(1, case)
        made = [_fuzz_record(rng, image_id, image_root) for image_id in (1, 2)]
        dicts = [record for record, _ in made]
        where = [w for _, ws in made for w in ws]
        check_sizes = bool(rng.random() < 0.7)  # off: the mapper meets the wrong sizes

        def describe():
            return f"dict case {case} (check_image_sizes={check_sizes}): {dicts!r:.2000}"

        with _bounded_case(describe):
            try:
                dicts, _ = validate_coco_dicts(
                    dicts,
                    "fuzz.json",
                    category_ids=range(NUM_CATEGORIES),
                    check_image_sizes=check_sizes,
                )
            except Exception as e:
                _check_clear_error(e, ["fuzz.json"], where, describe)
                outcomes["error"] += 1
                continue
            for record in dicts:
                _check_record(record, NUM_CATEGORIES, describe)
                _check_mapped(mappers, record, describe)
            outcomes["mapped"] += 1
    assert min(outcomes.values()) >= NUM_DICT_CASES // 10, outcomes


# ---- Visual Genome files through load_vg_tables, then the mapper ----------------------------

VG_SYNSETS = [["dog.n.01"], ["cat.n.01"], [], ["dog.n.01", "cat.n.01"], ["tree.n.01"]]


@pytest.fixture(scope="module")
def vg_image_root(tmp_path_factory, image_root):
    root = tmp_path_factory.mktemp("vg_images")
    os.mkdir(root / "VG_100K")
    for image_id in (1, 2, 3):
        os.link(os.path.join(image_root, "a.jpg"), root / "VG_100K" / f"{image_id}.jpg")
    return str(root)


def _base_vg():
    url = "https://cs.stanford.edu/people/rak248/VG_100K/{}.jpg"
    images = [
        {"image_id": i, "width": 32, "height": 32, "coco_id": None, "url": url.format(i)}
        for i in (1, 2, 3)
    ]
    objects = [
        {
            "image_id": i,
            "objects": [
                {"object_id": 10 * i + k, "synsets": s, "x": k, "y": 2, "w": 9, "h": 7}
                for k, s in enumerate(VG_SYNSETS)
            ],
        }
        for i in (1, 2, 3)
    ]
    return images, objects


def _mutate_vg(rng, images, objects):
    kind = int(rng.integers(5))
    if kind == 0:
        entry, keys = _pick(rng, images), ["image_id", "width", "height", "coco_id", "url"]
    elif kind == 1:
        entry, keys = _pick(rng, objects), ["image_id", "objects"]
    else:
        entry = _pick(rng, _entries(_pick(rng, objects), "objects") or [{}])
        keys = ["synsets", "x", "y", "w", "h"]
    if rng.integers(3):
        entry[_pick(rng, keys)] = _pick(rng, HOSTILE_VALUES + HOSTILE_NUMBERS)
    else:
        entry.pop(_pick(rng, keys), None)


def _vg_case(rng, folder):
    images, objects = _base_vg()
    log = []
    for _ in range(int(rng.integers(1, 4))):
        _mutate_vg(rng, images, objects)
    files = [os.path.join(folder, "image_data.json"), os.path.join(folder, "objects.json")]
    texts = [json.dumps(images), json.dumps(objects)]
    log.append(texts)
    if rng.random() < 0.25:
        k = int(rng.integers(2))
        texts[k] = _break_text(rng, texts[k])
        log.append(f"text of {os.path.basename(files[k])}: {texts[k][:60]!r}")
    for path, text in zip(files, texts):
        with open(path, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode())
    return files, log


def test_visual_genome_fuzz(tmp_path, vg_image_root, mappers):
    outcomes = {"error": 0, "loaded": 0}
    for case in range(NUM_VG_CASES):
        rng = _rng(2, case)
        folder = tmp_path / f"vg{case}"
        folder.mkdir()
        files, log = _vg_case(rng, str(folder))

        def describe():
            return f"VG case {case}: {log!r:.3000}"

        with _bounded_case(describe):
            try:
                tables = load_vg_tables(*files)
            except Exception as e:
                _check_clear_error(e, files, None, describe)
                outcomes["error"] += 1
                continue
            synsets = [str(s) for s in tables.synsets]
            categories = VGCategories(thing_classes=synsets, synsets=synsets, num_coco=0)
            keep = np.ones(len(tables.image_ids), dtype=bool)
            for record in vg_dataset_dicts(tables, categories, vg_image_root, keep):
                _check_record(record, len(synsets), describe)
                _check_mapped(mappers, record, describe, num_classes=len(synsets))
            outcomes["loaded"] += 1
    assert min(outcomes.values()) >= NUM_VG_CASES // 10, outcomes


# ---- What the fuzzing found, as named regressions --------------------------------------------


def _set_first(key, field, value):
    def mutate(data):
        data[key][0][field] = value

    return mutate


FOUND_BY_FUZZING = {  # each crashed, hung or raised an unclear error before it was fixed
    "polygon 1e9 away (segfault)": (
        _set_first("annotations", "segmentation", [[0, 0, 1e9, 0, 1e9, 1e9]]),
        "annotation id 1: polygon coordinates .* far outside the 32x32 image",
    ),
    "corrupt image file": (
        _set_first("images", "file_name", "corrupt.jpg"),
        "image id 1 .*: image file cannot be read",
    ),
    "string image id (TypeError sorting ids)": (
        _set_first("images", "id", "1"),
        "image 'id' must be an integer",
    ),
    "duplicate image id (one entry silently lost)": (
        lambda data: data["images"].append(dict(data["images"][0])),
        "duplicate image id",
    ),
    "category without name (KeyError)": (
        lambda data: data["categories"][0].pop("name"),
        "needs an integer 'id' and a string 'name'",
    ),
    "iscrowd NaN (instance silently ignored)": (
        _set_first("annotations", "iscrowd", NAN),
        "annotation id 1: iscrowd must be 0 or 1",
    ),
    "no images list (every annotation silently orphaned)": (
        lambda data: data.pop("images"),
        "no 'images' list",
    ),
}


@pytest.mark.parametrize("case", sorted(FOUND_BY_FUZZING))
def test_found_by_fuzzing(tmp_path, image_root, case):
    mutate, problem = FOUND_BY_FUZZING[case]
    data = _base_coco()
    mutate(data)
    json_file = tmp_path / "found.json"
    json_file.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=problem) as e:
        load_partially_supervised_coco_json(str(json_file), image_root)
    assert str(e.value).startswith(str(json_file))


@pytest.mark.parametrize("text", ["[" * 100_000, "[1, 2]", "\xff{}"])
def test_unparsable_json_is_an_annotation_error(tmp_path, text):
    json_file = tmp_path / "found.json"
    json_file.write_bytes(text.encode("latin-1"))
    with pytest.raises(AnnotationError, match="not a valid COCO instances json") as e:
        load_partially_supervised_coco_json(str(json_file), str(tmp_path))
    assert str(e.value).startswith(str(json_file))
