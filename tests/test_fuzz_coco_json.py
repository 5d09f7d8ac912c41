"""Fuzz COCO instances json files through load_partially_supervised_coco_json, then the
training mapper: seeded mutations of a valid file (hostile values in any field, broken polygons,
RLEs and boxes, orphaned or duplicated entries, broken images) and broken text (truncated, not
UTF-8, too deeply nested, trailing garbage), or no file at all.

The policy every case is held to is stated once, in fuzz_checks.py.
"""

import copy
import json
import logging
import os
import re

import numpy as np
from fuzz_checks import check_clear_error, check_mapped, check_record
from fuzz_fixtures import (
    BAD_IMAGES,
    CATEGORY_IDS,
    GOOD_IMAGES,
    HOSTILE_VALUES,
    Summaries,
    base_coco,
    bounded_case,
    break_text,
    case_rng,
    dict_entries,
    hostile_box,
    hostile_polygon_part,
    hostile_rle,
    pick,
    valid_polygon,
)

from maskx_d2.data.coco_json import load_partially_supervised_coco_json

NUM_COCO_FILE_CASES = 300

# ---- Mutations of a valid file -------------------------------------------------------------


def _image_size_of(data, image_id):
    images = data.get("images") if isinstance(data, dict) else None
    for image in images if isinstance(images, list) else []:
        if isinstance(image, dict) and image.get("id") == image_id:
            w, h = image.get("width"), image.get("height")
            if all(isinstance(v, int) and 0 < v < 10_000 for v in (w, h)):
                return w, h
    return 32, 32


def _mutate_annotation(rng, data):
    anns = dict_entries(data, "annotations")
    if not anns:
        return None
    ann = pick(rng, anns)
    w, h = _image_size_of(data, ann.get("image_id"))
    keys = ["id", "image_id", "category_id", "bbox", "segmentation", "iscrowd", "area", "ignore"]
    kind = int(rng.integers(9))
    if kind == 0:
        ann[pick(rng, keys)] = pick(rng, HOSTILE_VALUES)
    elif kind == 1:
        ann.pop(pick(rng, keys), None)
    elif kind == 2:
        ann["bbox"] = hostile_box(rng, w, h)
    elif kind == 3:
        ann["segmentation"] = [hostile_polygon_part(rng, w, h) for _ in range(rng.integers(1, 4))]
    elif kind == 4:
        ann["segmentation"] = hostile_rle(rng, w, h)
    elif kind == 5:
        ann["segmentation"] = pick(rng, [valid_polygon(rng, w, h), "polygon", 3, [[[1, 2]]]])
    elif kind == 6:
        ann["category_id"] = pick(rng, [0, 2, 99, -1, "1", 1.0, [1], None])
    elif kind == 7:
        ann["image_id"] = pick(rng, [999, 2, 3, "1", 1.0, None, [1]])  # orphan or moved
    else:
        data["annotations"].append(copy.deepcopy(ann))  # duplicate id
    return ann


def _mutate_benign(rng, data):
    """Changes that are counted skips or allowed oddities, not errors."""
    anns = dict_entries(data, "annotations")
    if not anns:
        return None
    ann = pick(rng, anns)
    w, h = _image_size_of(data, ann.get("image_id"))
    kind = int(rng.integers(6))
    if kind == 0:
        ann["bbox"] = [1.0, 1.0, pick(rng, [0.0, -2.0, 5.0]), pick(rng, [0.0, -1e300, 5.0])]
    elif kind == 1:
        extra = pick(rng, [[], [1, 2, 3, 4], [1, 2, 3, 4, 5], [3, 3] * 4])
        ann["segmentation"] = [valid_polygon(rng, w, h), extra]
    elif kind == 2:
        ann["segmentation"] = pick(rng, [[], [[]], [[1, 2, 3, 4]], None])
    elif kind == 3:
        ann["image_id"] = 999  # no such image: ignored and counted
    elif kind == 4:
        shift = rng.uniform(-0.9, 0.9, 2) * [w, h]
        polygon = np.reshape(valid_polygon(rng, w, h), (-1, 2)) + shift
        ann["segmentation"] = [polygon.ravel().tolist()]
    else:
        data["annotations"].append({**copy.deepcopy(ann), "id": 1000 + len(anns)})
    return ann


def _mutate_image(rng, data):
    images = dict_entries(data, "images")
    if not images:
        return None
    image = pick(rng, images)
    keys = ["id", "file_name", "width", "height"]
    kind = int(rng.integers(6))
    if kind == 0:
        image[pick(rng, keys)] = pick(rng, HOSTILE_VALUES)
    elif kind == 1:
        image.pop(pick(rng, keys), None)
    elif kind == 2:
        image["file_name"] = pick(rng, BAD_IMAGES + list(GOOD_IMAGES))
    elif kind == 3:
        key = pick(rng, ["width", "height"])
        image[key] = image.get(key, 32) + pick(rng, [-1, 1, 1000]) if key in image else 7
    elif kind == 4:
        image["width"], image["height"] = image.get("height"), image.get("width")
    else:
        data["images"].append({**image, "file_name": pick(rng, list(GOOD_IMAGES))})
    return image


def _mutate_top(rng, data):
    key = pick(rng, ["images", "annotations", "categories"])
    kind = int(rng.integers(5))
    if kind == 0:
        data[key] = pick(rng, HOSTILE_VALUES)
    elif kind == 1:
        data.pop(key, None)
    elif kind == 2 and isinstance(data.get(key), list):
        data[key].append(pick(rng, HOSTILE_VALUES))  # an entry that is no object
    elif kind == 3 and dict_entries(data, "categories"):
        category = pick(rng, dict_entries(data, "categories"))
        field = pick(rng, ["id", "name"])
        if rng.integers(2):
            category.pop(field)
        else:
            category[field] = pick(rng, HOSTILE_VALUES + [CATEGORY_IDS[0]])
    elif kind == 4:
        data["categories"] = []
    return None  # problems of the file's structure: the error need only name the file


def _coco_case(rng, path):
    """Write a broken json to ``path`` (or make ``path`` missing or a folder); returns the
    mutation log, the written data and where the error may point (None: anywhere)."""
    data = base_coco()
    log, where = [], []
    for _ in range(int(rng.integers(1, 4))):
        mutations = [_mutate_annotation] * 4 + [_mutate_image] * 2 + [_mutate_top]
        mutate = pick(rng, mutations + [_mutate_benign] * 5)
        log.append(mutate.__name__)
        target = mutate(rng, data)
        where = None if target is None or where is None else where + [target]
    text = json.dumps(data)
    if rng.random() < 0.12:
        raw = break_text(rng, text)
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


def test_coco_json_fuzz(tmp_path, fuzz_image_root, fuzz_mappers):
    handler = Summaries()
    logger = logging.getLogger("maskx_d2.data")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    outcomes = {"error": 0, "loaded": 0}
    try:
        for case in range(NUM_COCO_FILE_CASES):
            rng = case_rng(0, case)
            json_file = str(tmp_path / f"case{case}.json")
            log, data, targets = _coco_case(rng, json_file)

            def describe():
                return f"COCO case {case} {log}"

            handler.lines.clear()
            with bounded_case(describe):
                try:
                    dicts = load_partially_supervised_coco_json(json_file, fuzz_image_root)
                except Exception as e:
                    where = None if targets is None else _where_tokens(targets)
                    check_clear_error(e, [json_file], where, describe)
                    outcomes["error"] += 1
                    continue
                _check_loaded(dicts, data, _skip_counts(handler.lines, json_file), describe)
                for record in dicts:
                    check_mapped(fuzz_mappers, record, describe)
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
        check_record(record, num_classes, describe)
