"""tools/box_ap_breakdown.py: box AP restricted to one role of the scene or one shape, on a
ground truth small enough to know every answer."""

import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from box_ap_breakdown import box_ap, box_ap_table  # noqa: E402

# Two shapes, one class each; image 1 holds a single bar and a stack of two rings (front and back
# boxes largely overlapping, as in the generated set), image 2 a single ring.
GROUND_TRUTH = {
    "images": [
        {"id": 1, "height": 128, "width": 128, "file_name": "1.png"},
        {"id": 2, "height": 128, "width": 128, "file_name": "2.png"},
    ],
    "categories": [
        {"id": 1, "name": "red_bar", "supercategory": "bar"},
        {"id": 2, "name": "red_ring", "supercategory": "ring"},
        {"id": 3, "name": "blue_ring", "supercategory": "ring"},
    ],
    "annotations": [
        # (id, image, category, box, role in the scene)
        dict(zip(("id", "image_id", "category_id", "bbox", "synthetic_role"), fields))
        for fields in (
            (1, 1, 1, [5, 5, 40, 12], "single"),
            (2, 1, 2, [60, 60, 40, 40], "front"),
            (3, 1, 3, [58, 58, 44, 44], "back"),
            (4, 2, 2, [10, 70, 30, 30], "single"),
        )
    ],
}
for annotation in GROUND_TRUTH["annotations"]:
    x, y, w, h = annotation["bbox"]
    annotation.update(area=w * h, iscrowd=0)


def _detection(annotation_id, score=1.0, category_id=None):
    annotation = GROUND_TRUTH["annotations"][annotation_id - 1]
    return {
        "image_id": annotation["image_id"],
        "category_id": category_id or annotation["category_id"],
        "bbox": list(annotation["bbox"]),
        "score": score,
    }


def test_every_object_found_exactly_is_ap_100_everywhere():
    detections = [_detection(i) for i in (1, 2, 3, 4)]
    assert box_ap(GROUND_TRUTH, detections) == pytest.approx(100.0)
    for role in ("single", "front", "back"):
        assert box_ap(GROUND_TRUTH, detections, role) == pytest.approx(100.0)


def test_a_role_counts_only_its_objects_and_ignores_the_others_detections():
    # Only the singles are found: AP 100 on singles, 0 on the stacks. On singles the stack's
    # objects are crowd, so even a detection of the back ring (not found here) would not count.
    singles = [_detection(1), _detection(4)]
    assert box_ap(GROUND_TRUTH, singles, "single") == pytest.approx(100.0)
    assert box_ap(GROUND_TRUTH, singles, "front") == 0.0
    assert box_ap(GROUND_TRUTH, singles, "back") == 0.0
    # Every object found: on singles, the detections of the stack are ignored, not false
    # positives, even with the highest scores.
    everything = [_detection(2, 1.0), _detection(3, 1.0), _detection(1, 0.5), _detection(4, 0.5)]
    assert box_ap(GROUND_TRUTH, everything, "single") == pytest.approx(100.0)


def test_a_shape_counts_only_its_classes():
    # The bar found, a ring given the bar's class with a higher score: a false positive of the
    # bar class ranked above the true bar, so precision is 1/2 at every recall (AP 50); the rings'
    # classes have no detection at all.
    detections = [_detection(1, 0.5), _detection(4, 0.9, category_id=1)]
    assert box_ap(GROUND_TRUTH, detections, category_ids=[1]) == pytest.approx(50.0)
    assert box_ap(GROUND_TRUTH, detections, category_ids=[2, 3]) == 0.0
    assert box_ap(GROUND_TRUTH, [_detection(1)], category_ids=[1]) == pytest.approx(100.0)
    # No bar in a stack: the bar's AP on front objects is undefined.
    assert math.isnan(box_ap(GROUND_TRUTH, [_detection(1)], "front", category_ids=[1]))


def test_the_table_has_a_row_per_role_and_a_column_per_shape():
    table = box_ap_table(GROUND_TRUTH, [_detection(i) for i in (1, 2, 3, 4)])
    lines = table.splitlines()
    assert lines[0] == "| objects | all classes | bar | ring |"
    assert [line.split("|")[1].strip() for line in lines[2:]] == [
        "all (4)",
        "single (2)",
        "front (1)",
        "back (1)",
    ]
    assert lines[3] == "| single (2) | 100.0 | 100.0 | 100.0 |"
    assert lines[4] == "| front (1) | 100.0 | nan | 100.0 |"


def test_no_detections_is_ap_0_where_objects_count_and_undefined_where_none_do():
    assert box_ap(GROUND_TRUTH, []) == 0.0
    assert box_ap(GROUND_TRUTH, [], "back", category_ids=[3]) == 0.0
    assert math.isnan(box_ap(GROUND_TRUTH, [], "front", category_ids=[1]))
