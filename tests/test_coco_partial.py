"""The predefined COCO A/B split datasets, loaded from a tiny COCO tree in tmp."""

import os

import pytest
from coco_fixtures import COCO_SETS, write_coco_root
from detectron2.data import DatasetCatalog, MetadataCatalog

from maskx_d2.data.datasets.coco import predefined_coco_partial_names, register_all_coco_partial
from maskx_d2.data.datasets.coco_splits import COCO_CATEGORY_IDS, split_category_ids

PREFIX = "tmp_"
NAMES = predefined_coco_partial_names()
JSON_OF_SET = {
    "coco_2017_train": "instances_train2017.json",
    "coco_2017_val": "instances_val2017.json",
    "coco_2014_train": "instances_train2014.json",
    "coco_2014_valminusminival": "instances_valminusminival2014.json",
    "coco_2014_minival": "instances_minival2014.json",
}
EVALUATION_SETS = ("coco_2017_val", "coco_2014_minival")


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    """A $DETECTRON2_DATASETS tree with every COCO json, registered with PREFIX."""
    root = tmp_path_factory.mktemp("datasets")
    # 4 images x 20 instances: every one of the 80 classes once, plus a crowd annotation.
    written = write_coco_root(str(root), crowd=True)
    register_all_coco_partial(str(root), name_prefix=PREFIX)
    yield str(root), written
    for name, _, _ in NAMES:
        DatasetCatalog.remove(PREFIX + name)
        MetadataCatalog.remove(PREFIX + name)


def test_predefined_names():
    names = [n for n, _, _ in NAMES]
    assert len(names) == len(set(names)) == 5 * 2 + 2 * 25
    for expected in (
        "coco_2017_train_voc2nonvoc",
        "coco_2017_val_nonvoc2voc",
        "coco_2014_train_voc2nonvoc",
        "coco_2014_valminusminival_nonvoc2voc",
        "coco_2014_minival_voc2nonvoc",
        "coco_2017_train_randsplit_E1_A20",
        "coco_2017_val_randsplit_E5_A60",
    ):
        assert expected in names
    assert not any(n.startswith("coco_2014") and "randsplit" in n for n in names)


def test_registered_on_import_without_reading_anything():
    # The default root (./datasets) holds no COCO here: registration must not have read it.
    registered = set(DatasetCatalog.list())
    for name, coco_set, split in NAMES:
        assert name in registered
        meta = MetadataCatalog.get(name)
        assert meta.json_file.endswith(os.path.join("coco", "annotations", JSON_OF_SET[coco_set]))
        assert meta.evaluator_type == "coco_partial" and meta.split_name == split
        assert meta.mask_category_ids == split_category_ids(split)[0]
        assert len(meta.thing_classes) == 80
    # detectron2's own plain COCO datasets are untouched.
    assert MetadataCatalog.get("coco_2017_train").evaluator_type == "coco"


@pytest.mark.parametrize("name, coco_set, split", NAMES, ids=[n for n, _, _ in NAMES])
def test_split_dataset_loads_with_masks_of_a_only(coco_root, name, coco_set, split):
    root, written = coco_root
    dataset = written[JSON_OF_SET[coco_set]]
    dicts = DatasetCatalog.get(PREFIX + name)
    meta = MetadataCatalog.get(PREFIX + name)
    assert meta.json_file == os.path.join(root, "coco", "annotations", JSON_OF_SET[coco_set])
    assert all(r["file_name"].startswith(meta.image_root) for r in dicts)
    assert os.path.basename(meta.image_root) == COCO_SETS[JSON_OF_SET[coco_set]]

    # Every image and every box of the json is kept, crowd included, with the right class.
    contiguous = {cat_id: i for i, cat_id in enumerate(COCO_CATEGORY_IDS)}
    loaded = {a["id"]: a for r in dicts for a in r["annotations"]}
    assert len(dicts) == len(dataset["images"])
    assert sorted(loaded) == sorted(a["id"] for a in dataset["annotations"])
    for ann in dataset["annotations"]:
        assert loaded[ann["id"]]["category_id"] == contiguous[ann["category_id"]]
        assert loaded[ann["id"]]["iscrowd"] == ann["iscrowd"]

    a_ids, b_ids = split_category_ids(split)
    has_mask = {cid: False for cid in COCO_CATEGORY_IDS}
    for ann in dataset["annotations"]:
        has_mask[ann["category_id"]] |= "segmentation" in loaded[ann["id"]]
    assert all(has_mask[i] for i in a_ids)
    if coco_set in EVALUATION_SETS:  # full ground truth for evaluation
        assert all(has_mask[i] for i in b_ids)
    else:
        assert not any(has_mask[i] for i in b_ids)
