"""The synthetic shapes dataset: determinism, caching, annotation validity, A/B split, clutter."""

import json
import os

import numpy as np
import pytest
from pycocotools import mask as mask_util

import maskx_d2  # noqa: F401  (makes detectron2 importable)

# isort: split
from detectron2.data import DatasetCatalog, MetadataCatalog

from maskx_d2.data.synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_MASK_CLASSES,
    generate_synthetic_shapes,
    mask_to_polygons,
    register_synthetic_shapes,
)
from maskx_d2.data.synthetic_scene import SceneParams, render_scene
from maskx_d2.data.synthetic_shapes import SHAPES, render_shape

NUM_IMAGES = 40


@pytest.fixture(scope="module")
def train_json(tmp_path_factory):
    return generate_synthetic_shapes(str(tmp_path_factory.mktemp("a")), "train", NUM_IMAGES, 0)


@pytest.fixture(scope="module")
def coco(train_json):
    with open(train_json) as f:
        return json.load(f)


def _scenes(n, seed=7):
    """n rendered scenes with 4 objects each, straight from the renderer."""
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        yield render_scene(rng, SYNTHETIC_CLASSES, rng.permutation(len(SYNTHETIC_CLASSES))[:4])


def test_generation_is_deterministic(train_json, tmp_path):
    again = generate_synthetic_shapes(str(tmp_path), "train", NUM_IMAGES, 0)
    with open(train_json, "rb") as f, open(again, "rb") as g:
        assert f.read() == g.read()
    for name in ("000000.png", f"{NUM_IMAGES - 1:06d}.png"):
        a = os.path.join(os.path.dirname(train_json), "images", name)
        b = os.path.join(os.path.dirname(again), "images", name)
        with open(a, "rb") as f, open(b, "rb") as g:
            assert f.read() == g.read()
    other_seed = generate_synthetic_shapes(str(tmp_path), "other", NUM_IMAGES, 1)
    with open(train_json, "rb") as f, open(other_seed, "rb") as g:
        assert f.read() != g.read()


def test_cache_is_reused_and_invalidated(tmp_path):
    path = generate_synthetic_shapes(str(tmp_path), "val", 3, 5)
    stamp = os.stat(path).st_mtime_ns
    assert generate_synthetic_shapes(str(tmp_path), "val", 3, 5) == path
    assert os.stat(path).st_mtime_ns == stamp
    generate_synthetic_shapes(str(tmp_path), "val", 2, 5)  # other parameters: regenerate
    with open(path) as f:
        assert len(json.load(f)["images"]) == 2
    assert sorted(os.listdir(os.path.join(tmp_path, "synthetic_shapes", "val", "images"))) == [
        "000000.png",
        "000001.png",
    ]


def test_annotations_are_valid_coco(coco):
    assert len(coco["images"]) == NUM_IMAGES
    assert [c["name"] for c in coco["categories"]] == SYNTHETIC_CLASSES
    for ann in coco["annotations"]:
        assert ann["iscrowd"] == 0 and ann["segmentation"]
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in ann["segmentation"])
        mask = mask_util.decode(
            mask_util.merge(mask_util.frPyObjects(ann["segmentation"], 128, 128))
        )
        assert mask.sum() == ann["area"] >= SceneParams().min_area  # polygons rasterise back
        x, y, w, h = ann["bbox"]
        inside = np.zeros_like(mask)
        inside[y : y + h, x : x + w] = 1
        assert mask[inside == 0].sum() == 0  # the mask lies in its box...
        assert mask[y].any() and mask[y + h - 1].any()  # ...and the box is tight
        assert mask[:, x].any() and mask[:, x + w - 1].any()


def test_polygons_keep_holes():
    ring = render_shape("ring", (64, 64), (32, 32), 25, 1.0, 0.0)
    polygons = mask_to_polygons(ring)
    decoded = mask_util.decode(mask_util.merge(mask_util.frPyObjects(polygons, 64, 64)))
    assert decoded[32, 32] == 0
    np.testing.assert_array_equal(decoded, ring)


def test_classes_are_balanced(coco):
    counts = np.bincount(
        [a["category_id"] - 1 for a in coco["annotations"]], minlength=len(SYNTHETIC_CLASSES)
    )
    assert counts.min() >= 0.75 * counts.mean() and counts.max() <= 1.25 * counts.mean()


def test_ab_split_interleaves_varied_shapes():
    a, b = set(SYNTHETIC_MASK_CLASSES), set(SYNTHETIC_CLASSES) - set(SYNTHETIC_MASK_CLASSES)
    assert len(a) == len(b) == 10 and a | b == set(SYNTHETIC_CLASSES)
    has_cut = {name for name, rings in SHAPES.items() if any(fill == 0 for _, fill in rings)}
    assert a & has_cut and b & has_cut  # both sets have shapes with holes or bites
    assert a - has_cut and b - has_cut


def test_later_objects_occlude_earlier_ones():
    params = SceneParams()
    objects = [o for _, objs in _scenes(30) for o in objs]
    occluded = [o.visible_mask.sum() < o.full_mask.sum() for o in objects]
    assert np.mean(occluded) > 0.1
    for o in objects:
        assert not (o.visible_mask & ~o.full_mask).any()
        assert o.visible_mask.sum() >= max(
            params.min_area, params.min_visible_fraction * o.full_mask.sum()
        )


def test_colour_does_not_give_the_mask():
    """Thresholding the image around an object's mean colour must not recover its mask.

    With a plain background this segmentation has a median IoU of 1.0; the camouflaged clutter
    and textured objects of the generator bring it to about 0.5.
    """
    ious = []
    for image, objects in _scenes(30):
        image = image.astype(np.int32)
        for o in objects:
            close = np.abs(image - image[o.visible_mask].mean(axis=0)).max(axis=-1) <= 40
            ious.append((close & o.visible_mask).sum() / (close | o.visible_mask).sum())
    assert np.median(ious) < 0.7


@pytest.fixture
def registered_shapes(tmp_path):
    """Small synthetic splits registered under tmp_path; unregistered after the test."""
    splits = {
        "test_shapes_train": ("train", 6, 0, True, True),
        "test_shapes_train_full": ("train", 6, 0, False, True),
        "test_shapes_val": ("val", 4, 1, True, False),
    }
    register_synthetic_shapes(str(tmp_path), splits)
    yield str(tmp_path)
    for name in splits:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_registration_loads_through_dataset_catalog(registered_shapes):
    root = registered_shapes
    assert not os.path.exists(os.path.join(root, "synthetic_shapes"))  # lazy
    a_ids = sorted(SYNTHETIC_CLASSES.index(n) + 1 for n in SYNTHETIC_MASK_CLASSES)
    a_contiguous = {i - 1 for i in a_ids}

    train = DatasetCatalog.get("test_shapes_train")
    anns = [a for r in train for a in r["annotations"]]
    assert len(train) == 6 and os.path.isfile(train[0]["file_name"])
    assert all(("segmentation" in a) == (a["category_id"] in a_contiguous) for a in anns)
    assert any("segmentation" not in a for a in anns)  # B is box-only
    full = DatasetCatalog.get("test_shapes_train_full")
    assert all("segmentation" in a for r in full for a in r["annotations"])
    val = DatasetCatalog.get("test_shapes_val")
    assert all("segmentation" in a for r in val for a in r["annotations"])  # not stripped

    for name in ("test_shapes_train", "test_shapes_val"):
        meta = MetadataCatalog.get(name)
        assert meta.mask_category_ids == a_ids and meta.evaluator_type == "coco_partial"
        assert meta.thing_classes == SYNTHETIC_CLASSES
    assert MetadataCatalog.get("test_shapes_train_full").get("mask_category_ids") is None


def test_later_loads_reuse_the_generated_split(registered_shapes):
    json_file = MetadataCatalog.get("test_shapes_val").json_file
    first = DatasetCatalog.get("test_shapes_val")
    stamp = os.stat(json_file).st_mtime_ns
    assert DatasetCatalog.get("test_shapes_val") == first
    assert os.stat(json_file).st_mtime_ns == stamp  # checked against the manifest, not rewritten


def test_default_datasets_are_registered():
    for name in ("synthetic_shapes_train", "synthetic_shapes_train_full", "synthetic_shapes_val"):
        assert name in DatasetCatalog.list()
    assert len(MetadataCatalog.get("synthetic_shapes_train").mask_category_ids) == 10
