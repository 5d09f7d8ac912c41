"""Fuzz the dataset loaders and the training mapper with randomly broken files and dicts.

Every case must end in one of two ways (policy in maskx_d2/data/validation.py):
  - a clear error: a ValueError (AnnotationError, json errors, detectron2's SizeMismatchError)
    or an OSError (FileNotFoundError, PIL's unreadable-image errors) whose message names the
    file, and the image or annotation when one entry is at fault;
  - a result the model can train on, with what was dropped counted in the summary line.
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
from maskx_d2.data.validation import validate_coco_dicts
from maskx_d2.data.vg_dicts import vg_dataset_dicts
from maskx_d2.data.vg_tables import load_vg_tables
from maskx_d2.data.vg_vocab import VGCategories

SEED = 20240611
NUM_COCO_FILE_CASES = 160
NUM_DICT_CASES = 120
NUM_VG_CASES = 80
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


def _config(mask_format="polygon", crop=False):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.MAX_SIZE_TRAIN = 128
    cfg.INPUT.MASK_FORMAT = mask_format
    cfg.INPUT.CROP.ENABLED = crop
    cfg.INPUT.CROP.TYPE = "relative_range"
    cfg.INPUT.CROP.SIZE = [0.5, 0.5]
    return cfg


@pytest.fixture(scope="module")
def mappers():
    """Polygon masks without cropping, and bitmasks with cropping (boxes then recomputed)."""
    return [
        PartiallySupervisedDatasetMapper(_config(), is_train=True),
        PartiallySupervisedDatasetMapper(_config("bitmask", crop=True), is_train=True),
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
    assert elapsed < CASE_SECONDS, f"{describe()}: took {elapsed:.1f} s"


def _check_clear_error(error, files, where, describe):
    """``error`` is a clear error type naming one of ``files`` and, if ``where`` lists
    locations (image/annotation), one of them."""
    message = str(error)
    assert isinstance(error, CLEAR_ERRORS), f"{describe()}: unclear {type(error).__name__}"
    assert any(str(f) in message for f in files), f"{describe()}: no file named: {message}"
    if where:
        assert any(w in message for w in where), f"{describe()}: none of {where}: {message}"


def _rng(target, case):
    return np.random.default_rng([SEED, target, case])


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


# ---- Geometry generators -------------------------------------------------------------------


def _valid_polygon(rng, w, h, points=None):
    points = points or int(rng.integers(3, 12))
    center = rng.uniform([0, 0], [w, h])
    angles = np.sort(rng.uniform(0, 2 * np.pi, points))
    radius = rng.uniform(1, max(w, h) / 2, points)
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
        mutate = _pick(rng, [_mutate_annotation] * 5 + [_mutate_image] * 3 + [_mutate_top] * 2)
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
            tokens += [f"annotation id {entry.get('id', '?')}", f"image id {entry.get('image_id')} ("]
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
                _check_loaded(dicts, data, handler.lines, describe)
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


def _check_loaded(dicts, data, summary_lines, describe):
    """Loaded dicts are clean, and every input annotation is kept or counted as skipped."""
    counts = _skip_counts(summary_lines, summary_lines and summary_lines[0].split(":")[0])
    kept = sum(len(r["annotations"]) for r in dicts)
    dropped = counts["box_degenerate"] + counts["annotation_without_image"]
    assert kept + dropped == len(data["annotations"]), f"{describe()}: silently dropped"
    num_classes = len({c["id"] for c in data["categories"]})
    for record in dicts:
        _check_record(record, num_classes, describe)


def _finite_numbers(values):
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in values
    )


def _check_record(record, num_classes, describe):
    w, h = record["width"], record["height"]
    assert isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0, describe()
    assert isinstance(record["file_name"], str) and os.path.isfile(record["file_name"])
    for ann in record["annotations"]:
        assert ann["category_id"] in range(num_classes), describe()
        assert ann.get("iscrowd", 0) in (0, 1), describe()
        bbox = ann["bbox"]
        assert len(bbox) == 4 and _finite_numbers(bbox), describe()
        if ann.get("bbox_mode", BoxMode.XYWH_ABS) == BoxMode.XYWH_ABS:
            assert bbox[2] > 0 and bbox[3] > 0, describe()
        segm = ann.get("segmentation")
        if isinstance(segm, dict):
            assert list(segm["size"]) == [h, w], describe()
            assert mask_util.decode(segm).shape == (h, w), describe()
        elif segm:
            for part in segm:
                assert len(part) >= 6 and len(part) % 2 == 0 and _finite_numbers(part), describe()
