"""tools/gt_box_breakdown.py: grouping per-instance GT-box IoUs by set and role or by class, on
annotations written here (the per-instance IoUs come from the evaluator, tested elsewhere)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import gt_box_breakdown as breakdown  # noqa: E402

NAMES = {1: "red_ring", 2: "blue_ring", 3: "green_bar"}
MASK_IDS = {1}  # red_ring has masks (A); the others are box-only (B)
ANNOTATIONS = {
    10: {"id": 10, "category_id": 1, "synthetic_role": "single"},
    11: {"id": 11, "category_id": 1, "synthetic_role": "front"},
    12: {"id": 12, "category_id": 2, "synthetic_role": "back"},
    13: {"id": 13, "category_id": 3, "synthetic_role": "single"},
    14: {"id": 14, "category_id": 3, "synthetic_role": "single"},
}
IOUS = {10: 0.9, 11: 0.5, 12: 0.2, 13: 0.6, 14: 0.8}


def test_by_role_rows_are_models_and_cells_are_group_means():
    groups, group_of = breakdown.groups_of(ANNOTATIONS, MASK_IDS, NAMES, "role")
    table = breakdown.breakdown_table([("m", IOUS)], ANNOTATIONS, groups, group_of, "role")
    header, _, row = table.splitlines()
    assert header == (
        "| model | A single (1) | A front (1) | A back (0) | B single (2) | B front (0) |"
        " B back (1) |"
    )
    assert row == "| m | 90.0 | 50.0 | - | 70.0 | - | 20.0 |"


def test_by_class_one_row_per_class_a_first():
    groups, group_of = breakdown.groups_of(ANNOTATIONS, MASK_IDS, NAMES, "class")
    assert groups == [("A", "red_ring"), ("B", "blue_ring"), ("B", "green_bar")]
    other = {10: 1.0, 13: 0.0}  # a second model that saw only two of the instances
    table = breakdown.breakdown_table(
        [("m", IOUS), ("n", other)], ANNOTATIONS, groups, group_of, "class"
    )
    lines = table.splitlines()
    assert lines[0] == "| class | set | instances | m | n |"
    assert lines[2:] == [
        "| red_ring | A | 2 | 70.0 | 100.0 |",
        "| blue_ring | B | 1 | 20.0 | - |",
        "| green_bar | B | 2 | 70.0 | 0.0 |",
    ]


def test_unknown_grouping_is_refused():
    with pytest.raises(ValueError, match="role' or 'class"):
        breakdown.groups_of(ANNOTATIONS, MASK_IDS, NAMES, "colour")
