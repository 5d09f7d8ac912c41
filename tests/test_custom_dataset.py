"""Registering your own COCO-format json as a partially supervised dataset."""

import os

import pytest
from coco_fixtures import coco_categories, make_coco_dataset, write_coco_dataset
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from maskx_d2.data import register_partially_supervised_coco_json

# Non-contiguous ids, as in COCO: contiguous 0..3 = ids 3, 7, 8, 12 = car, train, truck, class12.
CATEGORY_IDS = [3, 7, 8, 12]


@pytest.fixture
def tiny_json(tmp_path):
    dataset = make_coco_dataset(coco_categories(CATEGORY_IDS), num_images=2, instances_per_image=6)
    dataset["annotations"][5]["segmentation"] = []  # a box-only instance, as in real data
    return write_coco_dataset(dataset, tmp_path / "ann.json", tmp_path / "images") + (dataset,)


@pytest.fixture
def register():
    """register_partially_supervised_coco_json that unregisters its names after the test."""
    names = []

    def _register(name, *args, **kwargs):
        register_partially_supervised_coco_json(name, *args, **kwargs)
        names.append(name)
        return name

    yield _register
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _masked_and_boxed(dicts):
    """(contiguous classes of annotations with a mask, number of annotations)."""
    anns = [a for r in dicts for a in r["annotations"]]
    return {a["category_id"] for a in anns if a.get("segmentation")}, len(anns)


def test_register_by_names(tiny_json, register):
    json_file, image_root, dataset = tiny_json
    name = register("my_by_names", json_file, image_root, ["car", "class12"])
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == "coco_partial" and meta.json_file == json_file
    assert meta.get("mask_category_ids") is None  # names are resolved when the json is read

    dicts = DatasetCatalog.get(name)
    assert meta.mask_category_ids == [3, 12]
    assert meta.thing_classes == ["car", "train", "truck", "class12"]
    assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1, 8: 2, 12: 3}
    masked, num_boxes = _masked_and_boxed(dicts)
    assert masked == {0, 3} and num_boxes == len(dataset["annotations"])


def test_register_by_ids(tiny_json, register):
    json_file, image_root, dataset = tiny_json
    name = register("my_by_ids", json_file, image_root, [8, 7], split_name="mine")
    meta = MetadataCatalog.get(name)
    assert meta.mask_category_ids == [7, 8] and meta.split_name == "mine"  # known before loading
    masked, num_boxes = _masked_and_boxed(DatasetCatalog.get(name))
    assert masked == {1, 2} and num_boxes == len(dataset["annotations"])


def test_register_without_split_keeps_every_mask(tiny_json, register):
    json_file, image_root, dataset = tiny_json
    name = register("my_all", json_file, image_root, None)
    dicts = DatasetCatalog.get(name)
    assert MetadataCatalog.get(name).get("mask_category_ids") is None
    anns = [a for r in dicts for a in r["annotations"]]
    assert len(anns) == len(dataset["annotations"])
    box_only = [a for a in anns if "segmentation" not in a]
    assert [a["id"] for a in box_only] == [dataset["annotations"][5]["id"]]


def test_evaluation_set_keeps_masks_of_b(tiny_json, register):
    json_file, image_root, _ = tiny_json
    name = register("my_val", json_file, image_root, ["car"], strip_masks=False)
    masked, _ = _masked_and_boxed(DatasetCatalog.get(name))
    assert masked == {0, 1, 2, 3}
    assert MetadataCatalog.get(name).mask_category_ids == [3]


@pytest.mark.parametrize("mask_classes, bad", [(["car", "bus"], "'bus'"), ([3, 99], "99")])
def test_unknown_mask_class_names_the_json(tiny_json, register, mask_classes, bad):
    json_file, image_root, _ = tiny_json
    name = register("my_bad_classes", json_file, image_root, mask_classes)
    with pytest.raises(ValueError, match=bad) as e:
        DatasetCatalog.get(name)
    assert json_file in str(e.value)


def test_clean_json_loads_like_detectron2(tmp_path, register):
    dataset = make_coco_dataset(coco_categories(CATEGORY_IDS), num_images=3, crowd=True)
    json_file, image_root = write_coco_dataset(dataset, tmp_path / "a.json", tmp_path / "im")
    ours = DatasetCatalog.get(register("my_like_d2", json_file, image_root))
    theirs = load_coco_json(json_file, image_root, "my_like_d2_reference")
    MetadataCatalog.remove("my_like_d2_reference")
    for record in ours:
        for ann in record["annotations"]:
            assert ann.pop("id") > 0  # we keep the json's id for error messages
    assert ours == theirs
    assert any(a["iscrowd"] for r in ours for a in r["annotations"])  # crowd kept, as in d2


def test_prepare_runs_before_the_json_is_read(tmp_path, register):
    dataset = make_coco_dataset(coco_categories(CATEGORY_IDS), num_images=2)
    json_file, image_root = str(tmp_path / "later.json"), str(tmp_path / "images")
    calls = []

    def prepare():
        calls.append(os.path.exists(json_file))
        write_coco_dataset(dataset, json_file, image_root)

    name = register("my_prepared", json_file, image_root, ["car"], prepare=prepare)
    assert calls == [] and not os.path.exists(json_file)  # registration is lazy
    dicts = DatasetCatalog.get(name)
    assert calls == [False] and len(dicts) == 2  # the json prepare wrote was read
    assert MetadataCatalog.get(name).mask_category_ids == [3]
    DatasetCatalog.get(name)
    assert calls == [False, True]  # on every get, as DatasetCatalog calls the loader each time


def test_error_in_prepare_propagates(tmp_path, register):
    error = ConnectionError("download failed")

    def prepare():
        raise error

    json_file = str(tmp_path / "never.json")
    name = register("my_failed_prepare", json_file, str(tmp_path), None, prepare=prepare)
    with pytest.raises(ConnectionError) as e:
        DatasetCatalog.get(name)
    assert e.value is error
