"""The COCO A/B category splits: VOC/non-VOC and the paper's 25 random splits."""

import numpy as np
import pytest

from maskx_d2.data.datasets.coco_splits import (
    COCO_CATEGORY_IDS,
    COCO_THING_CATEGORIES,
    NON_VOC_CATEGORY_IDS,
    SPLIT_NAMES,
    VOC_CATEGORY_IDS,
    random_splits,
    split_category_ids,
)

E1_A20 = [6, 8, 9, 12, 13, 27, 34, 35, 45, 47, 50, 54, 55, 57, 59, 61, 63, 66, 73, 77]
VOC_NAMES = {
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "boat", "bird", "cat",
    "dog", "horse", "sheep", "cow", "bottle", "chair", "couch", "potted plant", "dining table",
    "tv",
}  # fmt: skip


def test_coco_category_ids_are_the_80_things_in_id_order():
    # (taken from detectron2's builtin_meta, which also holds COCO's stuff classes)
    assert len(COCO_CATEGORY_IDS) == 80 and list(COCO_CATEGORY_IDS) == sorted(COCO_CATEGORY_IDS)


def test_voc_and_non_voc():
    names = dict(COCO_THING_CATEGORIES)
    assert {names[i] for i in VOC_CATEGORY_IDS} == VOC_NAMES
    assert len(VOC_CATEGORY_IDS) == 20 and len(NON_VOC_CATEGORY_IDS) == 60
    assert sorted(VOC_CATEGORY_IDS + NON_VOC_CATEGORY_IDS) == list(COCO_CATEGORY_IDS)

    a, b = split_category_ids("voc2nonvoc")
    assert a == sorted(VOC_CATEGORY_IDS) and b == list(NON_VOC_CATEGORY_IDS)
    assert split_category_ids("nonvoc2voc") == (b, a)


def test_random_split_e1_a20_is_the_papers():
    assert random_splits()["randsplit_E1_A20"] == E1_A20
    a, b = split_category_ids("randsplit_E1_A20")
    assert a == [COCO_CATEGORY_IDS[i] for i in E1_A20]
    # COCO has no id 12: contiguous 6 -> id 7 (train) but contiguous 12 -> id 14.
    assert a[:5] == [7, 9, 10, 14, 15]


def test_random_splits_follow_the_official_procedure():
    # The reference draws with the legacy global generator; restore it afterwards.
    state = np.random.get_state()
    try:
        np.random.seed(3)
        expected = {}
        for trial in range(1, 6):
            for num_a in (20, 30, 40, 50, 60):
                drawn = np.random.choice(80, num_a, replace=False)
                expected[f"randsplit_E{trial}_A{num_a}"] = sorted(int(i) for i in drawn)
    finally:
        np.random.set_state(state)
    assert random_splits() == expected
    assert list(random_splits()) == list(expected)  # same order: E1_A20, E1_A30, ...


@pytest.mark.parametrize("split_name", SPLIT_NAMES)
def test_every_split_partitions_the_80_classes(split_name):
    a, b = split_category_ids(split_name)
    assert not set(a) & set(b)
    assert sorted(a + b) == list(COCO_CATEGORY_IDS)
    assert a == sorted(a) and b == sorted(b)
    if split_name.startswith("randsplit"):
        assert len(a) == int(split_name.rsplit("_A", 1)[1])


def test_split_names_and_unknown_split():
    assert len(SPLIT_NAMES) == 27 and len(set(SPLIT_NAMES)) == 27
    assert len({tuple(split_category_ids(n)[0]) for n in SPLIT_NAMES}) == 27  # all distinct
    with pytest.raises(ValueError, match="randsplit_E6_A20"):
        split_category_ids("randsplit_E6_A20")


def test_random_splits_returns_a_copy():
    random_splits()["randsplit_E1_A20"].append(99)
    assert random_splits()["randsplit_E1_A20"] == E1_A20
