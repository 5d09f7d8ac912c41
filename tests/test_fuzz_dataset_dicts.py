"""Fuzz dataset dicts (as a custom dataset registers them) through validate_coco_dicts, then
the training mapper: mostly valid but unusual annotations (huge or partly outside polygons,
RLEs, crowds, XYXY boxes, degenerate boxes) mixed with hostile ones (broken polygons, RLEs and
boxes, hostile values in any field, missing fields), and unreadable or mis-sized images.

The policy every case is held to is stated once, in fuzz_checks.py.
"""

import os

import numpy as np
from detectron2.structures import BoxMode
from fuzz_checks import check_clear_error, check_mapped, check_record
from fuzz_fixtures import (
    BAD_IMAGES,
    GOOD_IMAGES,
    HOSTILE_VALUES,
    NUM_CATEGORIES,
    bounded_case,
    case_rng,
    hostile_box,
    hostile_polygon_part,
    hostile_rle,
    pick,
    random_rle,
    valid_polygon,
)

from maskx_d2.data.validation import validate_coco_dicts

NUM_DICT_CASES = 200


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
        ann["segmentation"] = [valid_polygon(rng, w, h) for _ in range(rng.integers(1, 4))]
    elif kind == 1:
        ann["segmentation"] = [valid_polygon(rng, w, h, points=50_000)]
    elif kind == 2:  # partly outside the image, as real annotations can be
        shift = rng.uniform(-0.4, 0.4, 2) * [w, h]
        ann["segmentation"] = [
            (np.reshape(valid_polygon(rng, w, h), (-1, 2)) + shift).ravel().tolist()
        ]
    elif kind == 3:
        ann["segmentation"] = random_rle(rng, w, h, compressed=bool(rng.integers(2)))
    elif kind == 4:
        ann["segmentation"] = pick(rng, [[], None, [[]], [[1, 1, 2, 2]]])
    elif kind == 5:
        ann["iscrowd"] = 1
        ann["segmentation"] = random_rle(rng, w, h)
    elif kind == 6:
        ann["bbox"] = pick(rng, [[0, 0, 1e-6, 1e-6], [0, 0, 1e300, 1e300], [w + 5, h + 5, 3, 3]])
        ann["segmentation"] = [valid_polygon(rng, w, h)]
    elif kind == 7:
        ann["bbox_mode"] = BoxMode.XYXY_ABS
        ann["bbox"] = [1.0, 2.0, float(rng.uniform(0, w)), float(rng.uniform(0, h))]
    elif kind == 8:
        ann["bbox"] = [1.0, 1.0, pick(rng, [0.0, -3.0]), 5.0]  # degenerate: a counted skip
    elif kind == 9:
        ann["segmentation"] = [valid_polygon(rng, w, h), hostile_polygon_part(rng, w, h)]
        hostile = None  # may or may not be broken; if it is, the error must name it
    elif kind == 10:
        ann["segmentation"] = hostile_rle(rng, w, h)
        hostile = None
    elif kind == 11:
        ann["bbox"] = hostile_box(rng, w, h)
        hostile = None
    elif kind == 12:
        ann[pick(rng, ["category_id", "bbox", "segmentation", "iscrowd", "bbox_mode"])] = pick(
            rng, HOSTILE_VALUES + [np.float32(1.0), np.zeros(4), (1, 2, 3, 4)]
        )
        hostile = None
    else:
        ann.pop(pick(rng, ["category_id", "bbox"]))
    return ann, hostile


def _fuzz_record(rng, image_id, image_root):
    name = pick(rng, list(GOOD_IMAGES) * 4 + BAD_IMAGES)
    w, h = GOOD_IMAGES.get(name, (32, 32))
    record = {"file_name": os.path.join(image_root, name), "image_id": image_id}
    record.update(width=w, height=h)
    if rng.random() < 0.1:
        record[pick(rng, ["width", "height"])] += pick(rng, [-1, 1, 100])
    anns = [_fuzz_annotation(rng, 100 * image_id + k, w, h) for k in range(rng.integers(0, 7))]
    record["annotations"] = [ann for ann, _ in anns]
    where = [f"annotation id {ann['id']}" for ann, hostile in anns if hostile is not False]
    if name in BAD_IMAGES or (w, h) != (record["width"], record["height"]):
        where.append(f"image id {image_id} (")
    return record, where


def test_dataset_dict_fuzz_through_validation_and_mapper(fuzz_image_root, fuzz_mappers):
    outcomes = {"error": 0, "mapped": 0}
    for case in range(NUM_DICT_CASES):
        rng = case_rng(1, case)
        made = [_fuzz_record(rng, image_id, fuzz_image_root) for image_id in (1, 2)]
        dicts = [record for record, _ in made]
        where = [w for _, ws in made for w in ws]
        check_sizes = bool(rng.random() < 0.7)  # off: the mapper meets the wrong sizes

        def describe():
            return f"dict case {case} (check_image_sizes={check_sizes}): {dicts!r:.2000}"

        with bounded_case(describe):
            try:
                dicts, _ = validate_coco_dicts(
                    dicts,
                    "fuzz.json",
                    category_ids=range(NUM_CATEGORIES),
                    check_image_sizes=check_sizes,
                )
            except Exception as e:
                check_clear_error(e, ["fuzz.json"], where, describe)
                outcomes["error"] += 1
                continue
            for record in dicts:
                check_record(record, NUM_CATEGORIES, describe)
                check_mapped(fuzz_mappers, record, describe)
            outcomes["mapped"] += 1
    assert min(outcomes.values()) >= NUM_DICT_CASES // 10, outcomes
