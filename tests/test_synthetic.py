"""The synthetic shapes v2: determinism, caching, annotation validity, classes, splits, registry.

What the design claims about the images (stacks, camouflage, shared appearance) is measured in
test_synthetic_properties.py.
"""

import json
import os

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from pycocotools import mask as mask_util

from maskx_d2.data.datasets.synthetic import (
    A12_MASK_CLASSES,
    BAND_MASK_CLASSES,
    CLASS_PARTS,
    SCENE_VARIANTS,
    SHIFTED_MASK_CLASSES,
    SYNTHETIC_CLASSES,
    SYNTHETIC_MASK_CLASSES,
    SceneParams,
    class_attributes,
    generate_synthetic_shapes,
    mask_to_polygons,
    register_synthetic_shapes,
    scene_variant_splits,
)
from maskx_d2.data.datasets.synthetic.classes import COLOUR_NAMES, PALETTE, SHAPE_NAMES
from maskx_d2.data.datasets.synthetic.generate import _params, _plan_units
from maskx_d2.data.datasets.synthetic.properties import annotation_masks
from maskx_d2.data.datasets.synthetic.scene import _Canvas, _shape_mask, render_scene
from maskx_d2.data.datasets.synthetic.shapes import render_shape

NUM_IMAGES = 40


@pytest.fixture(scope="module")
def train_json(tmp_path_factory):
    return generate_synthetic_shapes(str(tmp_path_factory.mktemp("a")), "train", NUM_IMAGES, 0)


@pytest.fixture(scope="module")
def coco(train_json):
    with open(train_json) as f:
        return json.load(f)


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
    images = os.path.join(tmp_path, "synthetic_shapes_v2", "val", "images")
    assert sorted(os.listdir(images)) == ["000000.png", "000001.png"]
    generate_synthetic_shapes(str(tmp_path), "val", 2, 5, scene=SceneParams(stack_probability=0))
    with open(path) as f:  # scene parameters are part of the cache key too
        assert json.load(f)["info"]["params"]["scene"]["stack_probability"] == 0


def test_annotations_are_valid_coco(coco):
    assert len(coco["images"]) == NUM_IMAGES
    assert [c["name"] for c in coco["categories"]] == SYNTHETIC_CLASSES
    ids = {a["id"]: a for a in coco["annotations"]}
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
        assert ann["synthetic_role"] in ("single", "back", "front")
        if ann["synthetic_role"] != "single":  # the two objects of a stack name each other
            partner = ids[ann["synthetic_partner"]]
            assert partner["synthetic_partner"] == ann["id"]
            assert {ann["synthetic_role"], partner["synthetic_role"]} == {"back", "front"}
            colours = {CLASS_PARTS[a["category_id"] - 1][1] for a in (ann, partner)}
            assert len(colours) == 2  # a stack never has one colour: its boundary is visible


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
    assert counts.min() >= 0.6 * counts.mean() and counts.max() <= 1.4 * counts.mean()


def test_classes_are_every_shape_in_every_colour():
    assert len(SYNTHETIC_CLASSES) == len(SHAPE_NAMES) * len(COLOUR_NAMES) == 16
    assert sorted(CLASS_PARTS) == sorted((s, c) for s in SHAPE_NAMES for c in COLOUR_NAMES)
    assert all(name == f"{c}_{s}" for name, (s, c) in zip(SYNTHETIC_CLASSES, CLASS_PARTS))


def _parts(names):
    return [CLASS_PARTS[SYNTHETIC_CLASSES.index(n)] for n in names]


def _assert_two_of_every_shape_and_colour_in_each_set(mask_classes):
    a = _parts(mask_classes)
    b = _parts(set(SYNTHETIC_CLASSES) - set(mask_classes))
    assert len(a) == len(b) == 8
    for shape in SHAPE_NAMES:
        assert sum(s == shape for s, _ in a) == sum(s == shape for s, _ in b) == 2
    for colour in COLOUR_NAMES:
        assert sum(c == colour for _, c in a) == sum(c == colour for _, c in b) == 2


def test_main_split_shares_every_shape_and_colour_between_a_and_b():
    # The chess board over the 4 x 4 grid: two classes of every shape and colour in each set.
    _assert_two_of_every_shape_and_colour_in_each_set(SYNTHETIC_MASK_CLASSES)


def test_shifted_split_gives_b_colours_that_a_never_has():
    a = _parts(SHIFTED_MASK_CLASSES)
    b = _parts(set(SYNTHETIC_CLASSES) - set(SHIFTED_MASK_CLASSES))
    assert len(a) == len(b) == 8
    assert not {c for _, c in a} & {c for _, c in b}
    assert {s for s, _ in a} == {s for s, _ in b} == set(SHAPE_NAMES)


def test_twelve_class_split_leaves_one_class_of_each_shape_and_colour_to_b():
    a = _parts(A12_MASK_CLASSES)
    b = _parts(set(SYNTHETIC_CLASSES) - set(A12_MASK_CLASSES))
    assert len(a) == 12 and len(b) == 4
    assert sorted(s for s, _ in b) == sorted(SHAPE_NAMES)
    assert sorted(c for _, c in b) == sorted(COLOUR_NAMES)
    # All in the main split's B, so the two splits compare on the same box-only classes.
    assert not (set(SYNTHETIC_CLASSES) - set(A12_MASK_CLASSES)) & set(SYNTHETIC_MASK_CLASSES)


def _additive_residual(mask_classes):
    """Largest distance of a box-only class's (shape, colour) one-hot from the span of the
    classes with masks' one-hots: 0 when every B class is an additive combination of A's."""
    attributes = class_attributes().astype(np.float64)
    in_a = np.array([n in mask_classes for n in SYNTHETIC_CLASSES])
    coef, *_ = np.linalg.lstsq(attributes[in_a].T, attributes[~in_a].T, rcond=None)
    return np.abs(attributes[in_a].T @ coef - attributes[~in_a].T).max()


def test_band_split_is_balanced_and_makes_b_additive_in_a_where_the_chess_board_does_not():
    _assert_two_of_every_shape_and_colour_in_each_set(BAND_MASK_CLASSES)
    # red_bar = red_circle - yellow_circle + yellow_ring - green_ring + ... along the cycle.
    assert _additive_residual(BAND_MASK_CLASSES) < 1e-9
    # The chess board's two parts (even shapes with even colours, odd with odd) leave an offset.
    assert _additive_residual(SYNTHETIC_MASK_CLASSES) > 0.2


def test_stacks_of_one_colour_are_refused():
    with pytest.raises(ValueError, match="two colours"):
        red_circle, red_ring = (CLASS_PARTS.index((s, "red")) for s in ("circle", "ring"))
        render_scene(np.random.default_rng(0), CLASS_PARTS, [(red_circle, red_ring)])


def test_later_objects_occlude_earlier_ones():
    params = SceneParams()
    objects = []
    for i in range(30):
        rng = np.random.default_rng([7, i])
        stack = (CLASS_PARTS.index(("circle", "blue")), CLASS_PARTS.index(("cross", "red")))
        units = [(3 * i % 16, None), stack, ((5 * i + 1) % 16, None)]
        objects += render_scene(rng, CLASS_PARTS, units, params)[1]
    occluded = [o.visible_mask.sum() < o.full_mask.sum() for o in objects]
    assert np.mean(occluded) > 0.3  # every stack's back, some singles
    for o in objects:
        assert not (o.visible_mask & ~o.full_mask).any()
        assert o.visible_mask.sum() >= max(
            params.min_area, params.min_visible_fraction * o.full_mask.sum()
        )


@pytest.fixture
def registered_shapes(tmp_path):
    """Small synthetic splits registered under tmp_path; unregistered after the test."""
    splits = {
        "test_shapes_train": ("train", 6, 0, SYNTHETIC_MASK_CLASSES, True),
        "test_shapes_train_full": ("train", 6, 0, None, True),
        "test_shapes_val": ("val", 4, 1, SYNTHETIC_MASK_CLASSES, False),
        "test_shapes_shifted_val": ("val", 4, 1, SHIFTED_MASK_CLASSES, False),
    }
    register_synthetic_shapes(str(tmp_path), splits)
    yield str(tmp_path)
    for name in splits:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_registration_loads_through_dataset_catalog(registered_shapes):
    root = registered_shapes
    assert not os.path.exists(os.path.join(root, "synthetic_shapes_v2"))  # lazy
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
    shifted = MetadataCatalog.get("test_shapes_shifted_val").mask_category_ids
    assert shifted == sorted(SYNTHETIC_CLASSES.index(n) + 1 for n in SHIFTED_MASK_CLASSES)
    assert DatasetCatalog.get("test_shapes_shifted_val") == val  # the same images


def test_later_loads_reuse_the_generated_split(registered_shapes):
    json_file = MetadataCatalog.get("test_shapes_val").json_file
    first = DatasetCatalog.get("test_shapes_val")
    stamp = os.stat(json_file).st_mtime_ns
    assert DatasetCatalog.get("test_shapes_val") == first
    assert os.stat(json_file).st_mtime_ns == stamp  # checked against the manifest, not rewritten


def test_dataset_root_expands_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    register_synthetic_shapes("~/data", {"test_shapes_home": ("val", 2, 3, None, False)})
    try:
        assert MetadataCatalog.get("test_shapes_home").json_file.startswith(str(tmp_path))
    finally:
        DatasetCatalog.remove("test_shapes_home")
        MetadataCatalog.remove("test_shapes_home")


def test_default_datasets_are_registered():
    for split in (
        "train",
        "train_full",
        "val",
        "val_mini",
        "shifted_train",
        "shifted_val",
        "a12_train",
        "a12_val",
        "band_train",
        "band_val",
    ):
        assert f"synthetic_shapes_v2_{split}" in DatasetCatalog.list()
    assert len(MetadataCatalog.get("synthetic_shapes_v2_train").mask_category_ids) == 8
    band = MetadataCatalog.get("synthetic_shapes_v2_band_val").mask_category_ids
    assert band == sorted(SYNTHETIC_CLASSES.index(n) + 1 for n in BAND_MASK_CLASSES)


@pytest.mark.parametrize("variant", list(SCENE_VARIANTS))
def test_scene_variants_have_their_own_folders_and_the_main_split(variant):
    for split, folder in (("train", "train"), ("train_full", "train"), ("val", "val")):
        name = f"synthetic_shapes_v2_{variant}_{split}"
        meta, main = MetadataCatalog.get(name), MetadataCatalog.get(f"synthetic_shapes_v2_{split}")
        assert name in DatasetCatalog.list()
        assert os.path.join("synthetic_shapes_v2", f"{folder}_{variant}", "") in meta.json_file
        assert meta.get("mask_category_ids") == main.get("mask_category_ids")
    assert scene_variant_splits(variant)[f"synthetic_shapes_v2_{variant}_val"][1:3] == (200, 1)
    assert SCENE_VARIANTS[variant] != SceneParams()


def _stripe_share(root, scene):
    """Per object of a 6-image split: the share of its pixels that are black or white."""
    path = generate_synthetic_shapes(str(root), "val", 6, 1, scene=scene)
    with open(path) as f:
        coco = json.load(f)
    masks = annotation_masks(coco)
    image_dir = os.path.join(os.path.dirname(path), "images")
    pixels = {
        im["id"]: cv2.imread(os.path.join(image_dir, im["file_name"])) for im in coco["images"]
    }
    shares = []
    for ann in coco["annotations"]:
        rgb = pixels[ann["image_id"]][masks[ann["id"]]].astype(int)
        shares.append(((rgb.max(1) < 50) | (rgb.min(1) > 215)).mean())
    return np.asarray(shares)


def test_plain_objects_have_no_stripes(tmp_path):
    default = _stripe_share(tmp_path / "default", SceneParams())
    plain = _stripe_share(tmp_path / "plain", SCENE_VARIANTS["plain"])
    assert (default > 0.2).sum() >= 5  # striped objects: a third of their pixels
    assert plain.max() < 0.02


def test_thick_bars_keep_the_length_and_widen_the_bar():
    """A horizontal bar: as long as the default one, 0.45 / 0.28 times as thick."""
    pose = ((64.0, 64.0), 24.0, 1.1, 0.0)
    thin, _ = _shape_mask("bar", SceneParams(), *pose)
    thick, _ = _shape_mask("bar", SceneParams(bar_half_width=0.45), *pose)
    ys, xs = np.nonzero(thin)
    ty, tx = np.nonzero(thick)
    assert abs((tx.max() - tx.min()) - (xs.max() - xs.min())) <= 1
    ratio = (ty.max() - ty.min() + 1) / (ys.max() - ys.min() + 1)
    assert ratio == pytest.approx(0.45 / 0.28, rel=0.1)
    circle = ((64.0, 64.0), 24.0, 1.1, 0.3)  # other shapes do not change
    assert np.array_equal(
        _shape_mask("ring", SceneParams(), *circle)[0],
        _shape_mask("ring", SceneParams(bar_half_width=0.45), *circle)[0],
    )


def _bar_scenes(params, count=30):
    """The bar SceneObjects of ``2 * count`` scenes with bars in stacks and among singles,
    painted first and last."""
    bars = []
    for i in range(count):
        rng = np.random.default_rng([11, i])
        stack = (CLASS_PARTS.index(("bar", "red")), CLASS_PARTS.index(("ring", "blue")))
        units = [(CLASS_PARTS.index(("bar", COLOUR_NAMES[i % 4])), None), stack, (i % 16, None)]
        for unit in (units, units[::-1]):  # bars painted first and last
            objects = render_scene(rng, CLASS_PARTS, unit, params)[1]
            bars += [o for o in objects if CLASS_PARTS[o.class_index][0] == "bar"]
    return bars


def test_whole_bars_are_never_covered_nor_behind():
    default = _bar_scenes(SceneParams())
    # The main data covers bars and puts them behind: the rule below is not met by accident.
    assert sum(o.visible_mask.sum() < o.full_mask.sum() for o in default) >= 5
    assert any(o.role == "back" for o in default)
    whole = _bar_scenes(SCENE_VARIANTS["wholebars"])
    assert len(whole) >= 60
    for o in whole:
        assert o.whole and o.role != "back"
        assert np.array_equal(o.visible_mask, o.full_mask)


def test_whole_bars_are_planned_as_single_objects():
    """Stacks are of one shape, so a stack of bars would put a bar behind another."""

    def bar_stacks(scene):
        plans = _plan_units(np.random.default_rng(0), 60, scene)
        return [u for units in plans for u in units if u[1] is not None and u[0] in bars]

    bars = {k for k, (shape, _) in enumerate(CLASS_PARTS) if shape == "bar"}
    assert len(bar_stacks(SceneParams())) >= 5
    assert bar_stacks(SCENE_VARIANTS["wholebars"]) == []


def test_a_whole_bar_must_lie_wholly_inside_the_image():
    params = SCENE_VARIANTS["wholebars"]
    canvas = _Canvas(np.random.default_rng(0), params)
    red = np.asarray(PALETTE["red"], np.float32)
    at_border = _shape_mask("bar", params, (10.0, 64.0), 20.0, 1.0, 0.0)  # a quarter outside
    inside = _shape_mask("bar", params, (64.0, 64.0), 20.0, 1.0, 0.0)
    assert at_border[0].sum() < at_border[1] and inside[0].sum() == inside[1]
    assert canvas.fits(*at_border, red) and not canvas.fits(*at_border, red, whole=True)
    assert canvas.fits(*inside, red, whole=True)


def test_bar_width_enters_the_cache_key_only_when_changed():
    """Splits generated before the parameter existed (and their documented digests) stay valid."""
    assert "bar_half_width" not in _params(3, 0, SceneParams())["scene"]
    assert _params(3, 0, SceneParams(bar_half_width=0.45))["scene"]["bar_half_width"] == 0.45
    assert "whole_shapes" not in _params(3, 0, SceneParams())["scene"]
    assert _params(3, 0, SCENE_VARIANTS["wholebars"])["scene"]["whole_shapes"] == ("bar",)
