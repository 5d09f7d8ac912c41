"""Visual Genome 3000-class datasets on tiny generated files in the real VG v1.4 formats."""

import json
import logging
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image
from visual_genome_fixtures import (
    STANDARD_POOL,
    TOP_100,
    coco_synset,
    standard_vg,
    vg_object,
    write_vg,
)

from maskx_d2.data.datasets.visual_genome import tables as vg_tables
from maskx_d2.data.datasets.visual_genome.dicts import vg_dataset_dicts
from maskx_d2.data.datasets.visual_genome.loading import (
    COCO_NAMES,
    VG_SPLITS,
    load_vg3k_coco_joint,
    load_vg3k_json,
    register_vg3k,
    vg_split_buckets,
)
from maskx_d2.data.datasets.visual_genome.tables import load_vg_tables
from maskx_d2.data.datasets.visual_genome.vocab import (
    VGCategories,
    build_vg_categories,
    match_coco_to_synsets,
    synset_readable_name,
    top_synsets,
)
from maskx_d2.data.json_stream import iter_json_array


def test_iter_json_array_small_chunks(tmp_path):
    data = [{"a": [1, 2.5, "x,]"]}, 12345678, "str", [], {}, None, -0.125e3]
    path = tmp_path / "a.json"
    path.write_text(" \n" + json.dumps(data, indent=2) + "\n")
    for chunk in (1, 3, 7, 1 << 20):
        assert list(iter_json_array(str(path), chunk_chars=chunk)) == data
    path.write_text("[]")
    assert list(iter_json_array(str(path))) == []


@pytest.mark.parametrize(
    "text", ['[{"a": 1}, {"a": 2', '[{"a": 1} {"a": 2}]', '{"a": 1}', "[1, 2] 3", "[1, tru]"]
)
def test_malformed_json_names_the_file(tmp_path, text):
    path = tmp_path / "objects.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="objects.json: malformed JSON at character"):
        list(iter_json_array(str(path), chunk_chars=4))


@pytest.mark.parametrize(
    "raw, problem",
    [(b"\xff[]", "not UTF-8 text"), (b"[" * 100_000, "nested too deeply")],
)
def test_undecodable_json_names_the_file(tmp_path, raw, problem):
    path = tmp_path / "objects.json"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=f"objects.json: .*{problem}"):
        list(iter_json_array(str(path)))


def _vg_with(tmp_path, image=None, obj=None):
    """Files of one image with objects 1 (dog) and 2 (cat); ``image``/``obj`` override fields
    of the image and of object 2."""
    root = str(tmp_path / "vg")
    write_vg(root, [(1, None)], {1: [vg_object(1, ["dog.n.01"]), vg_object(2, ["cat.n.01"])]})
    files = [os.path.join(root, f) for f in ("image_data.json", "objects.json")]
    for path, entries, fields in [(files[0], None, image), (files[1], "objects", obj)]:
        data = json.load(open(path))
        target = data[0] if entries is None else data[0][entries][1]
        target.update(fields or {})
        json.dump(data, open(path, "w"))
    return files


OBJECT_AT = r"objects\.json: image entry #0 \(image id 1\), object id 2: "
BAD = r"bad value \("  # what the loader's own type and range checks read as


@pytest.mark.parametrize(
    "obj, problem",
    [
        ({"x": float("nan")}, "box coordinates must be finite numbers within float32 range"),
        ({"w": float("-inf")}, "box coordinates must be finite"),
        ({"y": 1e308}, "box coordinates must be finite"),  # finite, but inf in float32
        ({"h": 2**1100}, BAD + "int too large to convert to float"),
        ({"x": "5"}, BAD + "must be real number, not str"),
        ({"synsets": "cat.n.01"}, BAD + "synsets must be a list"),  # not a synset per letter
        ({"synsets": [""]}, BAD + "a synset must be a non-empty string"),
        ({"synsets": [7]}, BAD + "a synset must be a non-empty string, got 7"),
    ],
)
def test_bad_object_values_name_file_image_and_object(tmp_path, obj, problem):
    with pytest.raises(ValueError, match=OBJECT_AT + problem):
        load_vg_tables(*_vg_with(tmp_path, obj=obj))


@pytest.mark.parametrize(
    "image, problem",
    [
        ({"width": 0}, BAD + "width and height must be positive integers, got 0, 600"),
        ({"height": True}, BAD + "width and height must be positive integers, got 800, True"),
        ({"width": 2**40}, BAD),  # beyond int32
        ({"image_id": 2**70}, BAD),  # beyond int64
        ({"coco_id": 1.0}, BAD + "image_id and coco_id must be integers"),
        ({"url": "1.jpg"}, BAD + "url must end in <folder>/<file>"),
    ],
)
def test_bad_image_values_name_file_and_image(tmp_path, image, problem):
    with pytest.raises(ValueError, match=r"image_data\.json: image entry #0 .*: " + problem):
        load_vg_tables(*_vg_with(tmp_path, image=image))


def test_duplicate_image_id_is_an_error(tmp_path):
    root = str(tmp_path / "vg")
    write_vg(root, [(1, None), (1, None)], {})
    with pytest.raises(ValueError, match=r"image_data\.json: duplicate image id 1"):
        load_vg_tables(os.path.join(root, "image_data.json"), os.path.join(root, "objects.json"))


def test_degenerate_boxes_and_orphan_objects_are_counted_skips(tmp_path, caplog):
    root = str(tmp_path / "vg")
    objs = [vg_object(1, ["dog.n.01"], w=0), vg_object(2, ["dog.n.01"], h=-3)]
    objs += [vg_object(3, ["dog.n.01"], x=-5, w=1e9)]  # kept: the mapper clips to the image
    write_vg(root, [(1, None)], {1: objs})
    objects = json.load(open(os.path.join(root, "objects.json")))
    objects.append({"image_id": 99, "objects": [vg_object(4, ["dog.n.01"])]})
    json.dump(objects, open(os.path.join(root, "objects.json"), "w"))
    t = load_vg_tables(os.path.join(root, "image_data.json"), os.path.join(root, "objects.json"))
    cats = VGCategories(thing_classes=["dog"], synsets=["dog.n.01"], num_coco=0)
    with caplog.at_level(logging.INFO, logger="maskx_d2.data"):
        (record,) = vg_dataset_dicts(t, cats, root, np.ones(1, dtype=bool), source="vg_tiny")
    assert [a["bbox"] for a in record["annotations"]] == [[-5.0, 2.0, 1e9, 20.0]]
    (line,) = [r for r in caplog.records if r.getMessage().startswith("vg_tiny")]
    assert line.levelno == logging.WARNING
    assert line.getMessage() == (
        "vg_tiny: 1 images, 1 annotations after validation; "
        "skipped or changed: box_degenerate=2, annotation_without_image=1"
    )


def test_missing_key_names_file_and_key(tmp_path):
    root = str(tmp_path / "vg")
    write_vg(root, [(1, None)], {1: [vg_object(1, ["dog.n.01"])]})
    objects = json.load(open(os.path.join(root, "objects.json")))
    del objects[0]["objects"][0]["synsets"]
    json.dump(objects, open(os.path.join(root, "objects.json"), "w"))
    files = [os.path.join(root, f) for f in ("image_data.json", "objects.json")]
    missing_synsets = (
        r"objects\.json: image entry #0 \(image id 1\), object id 1: missing .*'synsets'"
    )
    with pytest.raises(ValueError, match=missing_synsets):
        load_vg_tables(*files)
    images = json.load(open(files[0]))
    del images[0]["url"]
    json.dump(images, open(files[0], "w"))
    with pytest.raises(ValueError, match=r"image_data\.json: image entry #0 .*: missing .*'url'"):
        load_vg_tables(*files)


def test_top_k_counts_every_synset_and_breaks_ties_by_first_occurrence(tmp_path):
    root = str(tmp_path / "vg")
    objs = {
        1: [
            vg_object(1, ["b.n.01"]),
            vg_object(2, ["a.n.01", "c.n.01"]),
            vg_object(3, ["c.n.01"]),
            vg_object(4, ["a.n.01"]),
            vg_object(5, ["d.n.01"]),
            vg_object(6, []),
        ]
    }
    write_vg(root, [(1, None)], objs)
    t = load_vg_tables(os.path.join(root, "image_data.json"), os.path.join(root, "objects.json"))
    counts = dict(zip(t.synsets.tolist(), t.synset_counts.tolist()))
    assert counts == {"b.n.01": 1, "a.n.01": 2, "c.n.01": 2, "d.n.01": 1}
    assert int(t.num_objects) == 6
    # a and c tie at 2: a occurs first; b and d tie at 1: b first, so d is cut at k=3.
    assert top_synsets(t.synsets, t.synset_counts, 3) == ["a.n.01", "c.n.01", "b.n.01"]
    # Only objects with exactly one synset keep a box (objects 1, 3, 4, 5).
    assert [t.synsets[i] for i in t.object_synsets] == ["b.n.01", "c.n.01", "a.n.01", "d.n.01"]
    assert t.object_boxes.tolist()[0] == [1.0, 2.0, 10.0, 20.0]
    assert t.file_names.tolist() == ["VG_100K/1.jpg"]


def test_coco_alignment_manual_pairs_and_name_ties():
    kept = ["bear.n.02", "bear.n.01", "sofa.n.01", "couch.n.01", "orange.n.02", "tv.n.01"]
    matched = match_coco_to_synsets(["bear", "couch", "orange", "tv", "zebra"], kept)
    # bear: both synsets read "bear", the more frequent (earlier) wins; couch and tv come from
    # the manual pairs even though a synset named "couch"/"tv" exists; orange.n.01 (the fruit)
    # is not kept and the colour orange.n.02 must not replace it.
    assert matched == ["bear.n.02", "sofa.n.01", None, None, None]
    assert synset_readable_name("hot_dog.n.01") == "hot dog"

    synsets = np.array([coco_synset(n) for n in COCO_NAMES] + ["bear.n.02", "tree.n.01"])
    counts = np.array([5] * 80 + [9, 7])
    cats = build_vg_categories(synsets, counts, COCO_NAMES, num_classes=82)
    assert cats.thing_classes[:80] == COCO_NAMES
    assert cats.synsets[COCO_NAMES.index("bear")] == "bear.n.02"  # 9 > 5
    assert cats.synsets[COCO_NAMES.index("couch")] == "sofa.n.01"
    # B by frequency: tree (7), then bear.n.01 (5), named by its synset as "bear" is taken.
    assert cats.thing_classes[80:] == ["tree", "bear.n.01"]
    assert len(set(cats.thing_classes)) == 82


def test_missing_coco_class_error_or_keep():
    synsets = np.array([coco_synset(n) for n in COCO_NAMES if n != "couch"] + ["a.n.01", "b.n.01"])
    counts = np.array([5] * 79 + [4, 3])
    with pytest.raises(ValueError, match=r"objects.json: 1 COCO classes .*\['couch'\]"):
        build_vg_categories(synsets, counts, COCO_NAMES, num_classes=81)
    cats = build_vg_categories(synsets, counts, COCO_NAMES, num_classes=81, missing_coco="keep")
    assert cats.synsets[COCO_NAMES.index("couch")] == "" and cats.thing_classes[57] == "couch"
    assert cats.synsets[80:] == ["a.n.01"]  # still 81 classes: b, the least frequent, is cut


def test_vg3k_splits_one_synset_filter_and_coco_holdout(tmp_path):
    root = str(tmp_path / "vg")
    ids = np.arange(1, 61)
    train_ids = ids[vg_split_buckets(ids) >= VG_SPLITS["train"][0]]
    held = int(train_ids[-1])
    standard_vg(root, coco_ids={held: 139, int(train_ids[1]): 5})
    kw = dict(num_classes=100, heldout_coco_ids=[139, 285])
    splits = {s: load_vg3k_json(root, s, **kw) for s in VG_SPLITS}
    seen = {s: {d["image_id"] for d in dicts} for s, dicts in splits.items()}
    assert held not in seen["train"] and int(train_ids[1]) in seen["train"]
    assert seen["train"] | seen["val"] | seen["test"] == set(ids.tolist()) - {held}
    assert sum(len(v) for v in seen.values()) == 59  # disjoint
    assert len(seen["train"]) > len(seen["val"])

    by_id = {d["image_id"]: d for dicts in splits.values() for d in dicts}
    one = by_id[1]
    assert one["file_name"] == os.path.join(root, "VG_100K/1.jpg")
    assert (one["height"], one["width"]) == (600, 800)
    for ann in one["annotations"]:
        assert ann["bbox_mode"] == BoxMode.XYWH_ABS and "segmentation" not in ann
        assert 0 <= ann["category_id"] < 100
    assert one["annotations"][0]["category_id"] == 0  # person
    # Kept: objects with one synset among the top 100. Image 1's 0-synset, 2-synset and rare
    # objects, and the objects of thing0..thing9, are dropped.
    for image_id, d in by_id.items():
        expected = [s for s in STANDARD_POOL[image_id - 1 :: 60] if s in TOP_100]
        assert len(d["annotations"]) == len(expected)


def test_joint_label_space_coco_masks_vg_boxes(tmp_path):
    root = str(tmp_path / "vg")
    standard_vg(root)
    coco_json = str(tmp_path / "instances_train2017.json")
    poly = [[1.0, 1.0, 9.0, 1.0, 9.0, 9.0]]
    json.dump(
        {
            "images": [{"id": 7, "file_name": "000007.jpg", "height": 50, "width": 60}],
            "annotations": [
                {
                    "id": 1,
                    "image_id": 7,
                    "category_id": 90,
                    "bbox": [1, 1, 8, 8],
                    "area": 32,
                    "iscrowd": 0,
                    "segmentation": poly,
                },
                {
                    "id": 2,
                    "image_id": 7,
                    "category_id": 1,
                    "bbox": [2, 2, 8, 8],
                    "area": 32,
                    "iscrowd": 0,
                    "segmentation": poly,
                },
                {  # its polygon is too short: kept as a box-only person, as in every loader
                    "id": 3,
                    "image_id": 7,
                    "category_id": 1,
                    "bbox": [20, 20, 8, 8],
                    "area": 32,
                    "iscrowd": 0,
                    "segmentation": [[20.0, 20.0, 28.0, 20.0]],
                },
            ],
            "categories": [{"id": 1, "name": "person"}, {"id": 90, "name": "toothbrush"}],
        },
        open(coco_json, "w"),
    )
    (tmp_path / "coco").mkdir()
    Image.new("RGB", (60, 50)).save(tmp_path / "coco" / "000007.jpg")
    name = "vg3k_coco_joint_test_tiny"
    dicts = load_vg3k_coco_joint(
        root, coco_json, str(tmp_path / "coco"), dataset_name=name, num_classes=100
    )
    coco, vg = dicts[0], dicts[1:]
    # toothbrush, person, person (box-only)
    assert [a["category_id"] for a in coco["annotations"]] == [79, 0, 0]
    assert [a.get("segmentation") for a in coco["annotations"]][:2] == [poly, poly]
    assert "segmentation" not in coco["annotations"][2]
    vg_anns = [a for d in vg for a in d["annotations"]]
    assert vg_anns and all("segmentation" not in a for a in vg_anns)
    assert {a["category_id"] for a in vg_anns} == set(range(100))  # A and B both get boxes
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes[79] == "toothbrush" and len(meta.thing_classes) == 100
    assert meta.thing_synsets[COCO_NAMES.index("couch")] == "sofa.n.01"
    assert meta.thing_dataset_id_to_contiguous_id[99] == 99


def test_cache_is_reused_and_invalidated_when_the_file_changes(tmp_path, monkeypatch):
    root = str(tmp_path / "vg")
    write_vg(root, [(1, None)], {1: [vg_object(1, ["dog.n.01"])]})
    files = [os.path.join(root, f) for f in ("image_data.json", "objects.json")]
    calls = []
    parse = vg_tables.parse_vg_tables
    monkeypatch.setattr(vg_tables, "parse_vg_tables", lambda *a: calls.append(1) or parse(*a))
    cache_dir = str(tmp_path / "cache")
    assert load_vg_tables(*files, cache_dir=cache_dir).synsets.tolist() == ["dog.n.01"]
    assert load_vg_tables(*files, cache_dir=cache_dir).synsets.tolist() == ["dog.n.01"]
    assert len(calls) == 1 and len(os.listdir(cache_dir)) == 1
    write_vg(root, [(1, None)], {1: [vg_object(1, ["cat.n.01"])]})  # same size
    st = os.stat(files[1])
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert load_vg_tables(*files, cache_dir=cache_dir).synsets.tolist() == ["cat.n.01"]
    assert len(calls) == 2
    with open(os.path.join(cache_dir, os.listdir(cache_dir)[0]), "wb") as f:
        f.write(b"garbage")  # a corrupt cache is rebuilt, not an error
    assert load_vg_tables(*files, cache_dir=cache_dir).synsets.tolist() == ["cat.n.01"]


def test_registration_is_lazy_and_sets_contract_metadata(tmp_path):
    assert {"vg3k_train", "vg3k_val", "vg3k_test", "vg3k_coco_joint_train"} <= set(
        DatasetCatalog.list()
    )
    meta = MetadataCatalog.get("vg3k_coco_joint_train")
    assert meta.mask_category_ids == list(range(80)) and meta.evaluator_type == "coco_partial"

    missing = str(tmp_path / "nowhere")
    register_vg3k("vg3k_test_missing_files", missing, "train")  # reads nothing
    with pytest.raises(FileNotFoundError, match="nowhere/image_data.json"):
        DatasetCatalog.get("vg3k_test_missing_files")

    root = str(tmp_path / "vg")
    standard_vg(root, coco_ids={1: 139})
    coco_val = str(tmp_path / "instances_val2017.json")
    json.dump({"images": [{"id": 139}], "annotations": [], "categories": []}, open(coco_val, "w"))
    register_vg3k("vg3k_test_tiny_train", root, "train", coco_eval_json=coco_val, num_classes=90)
    train = DatasetCatalog.get("vg3k_test_tiny_train")
    assert 1 not in {d["image_id"] for d in train} and len(train) > 40
    assert len(MetadataCatalog.get("vg3k_test_tiny_train").thing_classes) == 90


def test_joint_set_refuses_a_coco_json_with_other_categories(tmp_path):
    root = str(tmp_path / "vg")
    standard_vg(root)
    coco_json = str(tmp_path / "instances_train2017.json")
    with open(coco_json, "w") as f:
        json.dump({"images": [], "annotations": [], "categories": [{"id": 95, "name": "x"}]}, f)
    with pytest.raises(ValueError, match=r"instances_train2017.json: category ids \[95\]"):
        load_vg3k_coco_joint(root, coco_json, str(tmp_path), num_classes=100)
