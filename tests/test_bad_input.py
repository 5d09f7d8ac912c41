"""Malformed COCO input: a clear AnnotationError naming file, image and annotation, or a
counted skip (policy in maskx_d2/data/validation.py)."""

import json
import logging
import os
import re

import numpy as np
import pytest
from coco_fixtures import (
    box_polygon,
    coco_categories,
    compressed_rle,
    make_coco_dataset,
    write_coco_dataset,
    write_images,
)
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from maskx_d2.data.coco_json import (
    load_partially_supervised_coco_json,
    register_partially_supervised_coco_json,
)
from maskx_d2.data.validation import AnnotationError, image_size_from_file, validate_coco_dicts

NAN, INF = float("nan"), float("inf")
# Two 64x48 images with 4 instances each; the broken annotation is id 6 of image 2.
BAD_INDEX, BAD_ID, BAD_IMAGE_ID, BAD_FILE = 5, 6, 2, "000000000002.jpg"


def _write(tmp_path, mutate=None):
    """Write images of the clean dataset, then the json after ``mutate(dataset)``."""
    dataset = make_coco_dataset(coco_categories([1, 2, 3]), num_images=2, instances_per_image=4)
    image_root = str(tmp_path / "images")
    write_images(dataset, image_root)
    if mutate is not None:
        mutate(dataset)
    json_file, _ = write_coco_dataset(dataset, tmp_path / "ann.json", image_root, images=False)
    return json_file, image_root


def _set(key, value):
    def mutate(dataset):
        dataset["annotations"][BAD_INDEX][key] = value

    return mutate


def _rle(mask_size=(48, 64), **overrides):
    mask = np.zeros(mask_size, np.uint8)
    mask[10:20, 5:30] = 1
    return {**compressed_rle(mask), **overrides}


ANNOTATION_ERRORS = {
    "unknown category": (_set("category_id", 99), "category id 99 is not among"),
    "box nan": (_set("bbox", [1.0, 1.0, NAN, 6.0]), "NaN/inf"),
    "box inf": (_set("bbox", [INF, 1.0, 6.0, 6.0]), "NaN/inf"),
    "box 3 numbers": (_set("bbox", [1.0, 1.0, 6.0]), "bbox must be 4 numbers"),
    "box strings": (_set("bbox", ["1", "1", "6", "6"]), "bbox must be 4 numbers"),
    "box missing": (_set("bbox", None), "bbox must be 4 numbers"),
    "polygon nan": (_set("segmentation", [[1.0, 1.0, 7.0, NAN, 7.0, 7.0]]), "NaN/inf"),
    "polygon inf": (_set("segmentation", [[1.0, 1.0, 7.0, 1.0, INF, 7.0]]), "NaN/inf"),
    "flat polygon": (_set("segmentation", box_polygon(1, 1, 6, 6)), "list of polygons"),
    "polygon of strings": (_set("segmentation", [["1"] * 8]), "list of polygons"),
    "short polygon of strings": (_set("segmentation", [["1"] * 4]), "list of polygons"),
    "segmentation string": (_set("segmentation", "abc"), "polygon list or an RLE dict"),
    "rle wrong size": (_set("segmentation", _rle(mask_size=(10, 10))), "differs from the image's"),
    "rle size not ints": (_set("segmentation", _rle(size="48x64")), "'size' must be"),
    "rle counts int": (_set("segmentation", _rle(counts=5)), "'counts' must be a string"),
    "rle counts short": (_set("segmentation", _rle(counts=[100, 20])), "cover 120 pixels"),
    "rle counts negative": (_set("segmentation", _rle(counts=[-1, 3073])), "non-negative"),
    "rle string truncated": (
        _set("segmentation", _rle(counts=_rle()["counts"][:-2])),
        "malformed|cover",
    ),
    "rle string bad chars": (_set("segmentation", _rle(counts="\u00e9\u00e9")), "malformed"),
    "ignore flag": (_set("ignore", 1), "'ignore' is not supported"),
}


@pytest.mark.parametrize("case", sorted(ANNOTATION_ERRORS))
def test_annotation_error_names_file_image_and_annotation(tmp_path, case):
    mutate, problem = ANNOTATION_ERRORS[case]
    json_file, image_root = _write(tmp_path, mutate)
    with pytest.raises(AnnotationError) as e:
        load_partially_supervised_coco_json(json_file, image_root)
    message = str(e.value)
    assert message.startswith(json_file)
    assert f"image id {BAD_IMAGE_ID} (" in message and BAD_FILE in message
    assert f"annotation id {BAD_ID}:" in message
    assert re.search(problem, message), message
    assert isinstance(e.value, ValueError)


def _set_image(key, value):
    def mutate(dataset):
        dataset["images"][1][key] = value

    return mutate


IMAGE_ERRORS = {
    "missing file": (_set_image("file_name", "gone.jpg"), "image file not found"),
    "wrong width": (_set_image("width", 65), "image file is 64x48 .* json says 65x48"),
    "no height": (_set_image("height", None), "positive integer height and width"),
    "float height": (_set_image("height", 48.0), "positive integer height and width"),
}


@pytest.mark.parametrize("case", sorted(IMAGE_ERRORS))
def test_image_error_names_file_and_image(tmp_path, case):
    mutate, problem = IMAGE_ERRORS[case]
    json_file, image_root = _write(tmp_path, mutate)
    with pytest.raises(AnnotationError, match=problem) as e:
        load_partially_supervised_coco_json(json_file, image_root)
    assert str(e.value).startswith(f"{json_file}, image id {BAD_IMAGE_ID} (")


def test_image_size_check_can_be_turned_off(tmp_path):
    json_file, image_root = _write(tmp_path, _set_image("width", 65))
    dicts = load_partially_supervised_coco_json(json_file, image_root, check_image_sizes=False)
    assert dicts[1]["width"] == 65  # detectron2's mapper will then report it when reading


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda d: d["annotations"][0].pop("id"), "'id'"),
        (lambda d: d["annotations"][0].pop("category_id"), "'category_id'"),
        (lambda d: d["images"][0].pop("file_name"), "no 'file_name'"),
    ],
)
def test_broken_json_structure_names_the_file(tmp_path, mutate, problem):
    json_file, image_root = _write(tmp_path, mutate)
    with pytest.raises(AnnotationError, match=problem) as e:
        load_partially_supervised_coco_json(json_file, image_root)
    assert str(e.value).startswith(json_file)


def test_not_a_json_names_the_file(tmp_path):
    json_file = tmp_path / "ann.json"
    json_file.write_text("{not json")
    with pytest.raises(AnnotationError, match="not a valid COCO instances json") as e:
        load_partially_supervised_coco_json(str(json_file), str(tmp_path))
    assert str(e.value).startswith(str(json_file))


def _break_geometry(dataset):
    anns = dataset["annotations"]
    good = box_polygon(1, 1, 6, 6)
    anns[0]["segmentation"] = [good, [1, 1, 2, 2], [1, 1, 2, 2, 3], [1, 1, 2, 2, 3, 3]]
    anns[1]["segmentation"] = [[1, 1, 2, 2, 5]]  # nothing usable left: box-only
    anns[2]["segmentation"] = [[]]  # an empty part: box-only
    anns[3]["segmentation"] = []  # the normal box-only format: not a skip
    anns[4]["bbox"] = [1.0, 1.0, 0.0, 6.0]
    anns[5]["bbox"] = [1.0, 1.0, 6.0, -2.0]
    anns.append({**anns[6], "id": 100, "image_id": 999})  # no such image


def test_degenerate_geometry_is_skipped_and_counted(tmp_path, caplog):
    json_file, image_root = _write(tmp_path, _break_geometry)
    with caplog.at_level(logging.INFO, logger="maskx_d2.data"):
        dicts = load_partially_supervised_coco_json(json_file, image_root)
    anns = {a["id"]: a for r in dicts for a in r["annotations"]}
    assert sorted(anns) == [1, 2, 3, 4, 7, 8]  # degenerate boxes 5, 6 and orphan 100 are gone
    assert anns[1]["segmentation"] == [box_polygon(1, 1, 6, 6)]
    assert all("segmentation" not in anns[i] for i in (2, 3, 4))
    assert anns[2]["bbox"] == [9.0, 1.0, 6.0, 6.0]  # box-only instances keep box and class
    assert anns[7]["segmentation"] and anns[8]["segmentation"]

    records = [r for r in caplog.records if r.name == "maskx_d2.data"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    line = records[0].getMessage()
    assert line.startswith(json_file) and "2 images, 6 annotations" in line
    for counted in (
        "box_degenerate=2",
        "polygon_part_dropped=5",
        "mask_dropped_box_kept=2",
        "annotation_without_image=1",
    ):
        assert counted in line


def test_validate_coco_dicts_returns_counts():
    dicts = [
        {
            "file_name": "unused.jpg",
            "image_id": 7,
            "height": 48,
            "width": 64,
            "annotations": [
                {"id": 1, "category_id": 0, "bbox": [1, 1, 0, 0]},
                {"id": 2, "category_id": 0, "bbox": [1, 1, 5, 5], "segmentation": [[0, 0, 1, 1]]},
                {"id": 3, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": None},
            ],
        }
    ]
    cleaned, counts = validate_coco_dicts(dicts, "x.json", category_ids=[0, 1], check_files=False)
    assert counts == {
        "box_degenerate": 1,
        "polygon_part_dropped": 1,
        "mask_dropped_box_kept": 1,
        "annotation_without_image": 0,
    }
    assert [a["id"] for a in cleaned[0]["annotations"]] == [2, 3]
    assert all("segmentation" not in a for a in cleaned[0]["annotations"])


def test_clean_input_logs_info_with_zero_counts(tmp_path, caplog):
    json_file, image_root = _write(tmp_path)
    with caplog.at_level(logging.INFO, logger="maskx_d2.data"):
        dicts = load_partially_supervised_coco_json(json_file, image_root)
    assert sum(len(r["annotations"]) for r in dicts) == 8
    (record,) = [r for r in caplog.records if r.name == "maskx_d2.data"]
    assert record.levelno == logging.INFO and "box_degenerate=0" in record.getMessage()


def test_valid_rle_passes_and_is_compressed(tmp_path):
    rng = np.random.RandomState(0)
    masks = [rng.rand(48, 64) > p for p in (0.0, 0.3, 0.9, 1.1)]  # full, noisy, sparse, empty
    rles = [compressed_rle(m) for m in masks]

    def mutate(dataset):
        for ann, rle in zip(dataset["annotations"], rles):
            ann["segmentation"] = rle
        dataset["annotations"][4]["segmentation"] = {"size": [48, 64], "counts": [3000, 72]}

    json_file, image_root = _write(tmp_path, mutate)
    dicts = load_partially_supervised_coco_json(json_file, image_root)
    segms = [a["segmentation"] for r in dicts for a in r["annotations"]]
    assert [s["counts"] for s in segms[:4]] == [r["counts"] for r in rles]
    assert isinstance(segms[4]["counts"], bytes)  # uncompressed counts compressed, as d2 does


def test_exif_rotation_swaps_the_checked_size(tmp_path):
    path = str(tmp_path / "rotated.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: detectron2 reads it as 48 wide, 64 high
    Image.new("RGB", (64, 48)).save(path, exif=exif)
    assert image_size_from_file(path) == (48, 64)


def test_registered_dataset_fails_when_used_not_when_registered(tmp_path):
    json_file, image_root = _write(tmp_path, _set("category_id", 99))
    register_partially_supervised_coco_json("bad_input_ds", json_file, image_root, [1])
    try:
        with pytest.raises(AnnotationError, match=f"annotation id {BAD_ID}: category id 99"):
            DatasetCatalog.get("bad_input_ds")
    finally:
        DatasetCatalog.remove("bad_input_ds")
        MetadataCatalog.remove("bad_input_ds")
    assert os.path.exists(json_file) and json.load(open(json_file))["images"]
