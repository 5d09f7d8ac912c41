"""tools/detection_errors.py: every outcome of a confident detection and of an object, on a ground
truth small enough to know every answer."""

import json
import os
import subprocess
import sys

TOOLS = os.path.join(os.path.dirname(__file__), "..", "tools")
sys.path.insert(0, TOOLS)
from detection_errors import detection_errors, errors_tables  # noqa: E402

CATEGORIES = [
    {"id": 1, "name": "red_bar", "supercategory": "bar"},
    {"id": 2, "name": "red_ring", "supercategory": "ring"},
    {"id": 3, "name": "blue_ring", "supercategory": "ring"},
]
# Image 1: a red bar, a red ring and a blue ring far apart; image 2: a red ring and a crowd region.
OBJECTS = [
    (1, 1, 1, [5, 5, 40, 12], 0),
    (2, 1, 2, [60, 60, 40, 40], 0),
    (3, 1, 3, [10, 60, 30, 30], 0),
    (4, 2, 2, [10, 70, 30, 30], 0),
    (5, 2, 1, [70, 10, 40, 40], 1),
]
GROUND_TRUTH = {
    "images": [{"id": i, "height": 128, "width": 128} for i in (1, 2)],
    "categories": CATEGORIES,
    "annotations": [
        dict(zip(("id", "image_id", "category_id", "bbox", "iscrowd"), fields), area=1.0)
        for fields in OBJECTS
    ],
}


def _det(image_id, category_id, box, score):
    return {"image_id": image_id, "category_id": category_id, "bbox": box, "score": score}


DETECTIONS = [
    _det(1, 1, [5, 5, 40, 12], 0.9),  # correct bar
    _det(1, 1, [5, 5, 40, 30], 0.8),  # the bar at IoU 0.4: mislocalised
    _det(1, 1, [60, 60, 40, 40], 0.7),  # a "bar" on the red ring: same colour, other shape
    _det(1, 2, [10, 60, 30, 30], 0.6),  # a red ring on the blue ring: other colour
    _det(1, 2, [100, 5, 20, 20], 0.5),  # nothing there: background
    _det(2, 2, [10, 70, 30, 30], 0.1),  # the red ring of image 2, only below the score
    _det(2, 1, [70, 10, 40, 40], 0.9),  # on the crowd region: background, the crowd not counted
]


def test_each_confident_detection_gets_its_outcome():
    by_detection, _ = detection_errors(GROUND_TRUTH, DETECTIONS, score=0.3)
    assert by_detection["bar"] == {
        "correct": 1,
        "mislocalised": 1,
        "same colour, other shape": 1,
        "other colour": 0,
        "background": 1,
    }
    assert by_detection["ring"] == {
        "correct": 0,
        "mislocalised": 0,
        "same colour, other shape": 0,
        "other colour": 1,
        "background": 1,
    }


def test_each_object_is_found_found_below_the_score_or_missed():
    _, by_object = detection_errors(GROUND_TRUTH, DETECTIONS, score=0.3)
    assert by_object["bar"] == {"found": 1, "found below the score": 0, "missed": 0}
    # Red ring of image 1: only a bar and nothing of its class; blue ring: only a red ring.
    assert by_object["ring"] == {"found": 0, "found below the score": 1, "missed": 2}
    _, lower = detection_errors(GROUND_TRUTH, DETECTIONS, score=0.05)
    assert lower["ring"] == {"found": 1, "found below the score": 0, "missed": 2}


def test_the_command_line_prints_both_tables(tmp_path):
    gt, results = tmp_path / "gt.json", tmp_path / "results.json"
    gt.write_text(json.dumps(GROUND_TRUTH))
    results.write_text(json.dumps(DETECTIONS))
    out = subprocess.run(
        [sys.executable, os.path.join(TOOLS, "detection_errors.py"), "--gt", str(gt)]
        + ["--run", f"run one={results}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "run one" in out
    assert "| bar | 1 (25%) | 1 (25%) | 1 (25%) | 0 (0%) | 1 (25%) | 4 |" in out
    assert "| ring | 0 (0%) | 1 (33%) | 2 (67%) | 3 |" in out
    assert sum(line.startswith("|---") for line in out.splitlines()) == 2
    assert errors_tables(GROUND_TRUTH, DETECTIONS) in out


def test_a_missing_or_broken_file_is_named_in_one_error_line(tmp_path):
    broken = tmp_path / "results.json"
    broken.write_text("{")
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GROUND_TRUTH))
    for args, named in (
        (["--gt", str(tmp_path / "absent.json"), "--run", f"a={broken}"], "absent.json"),
        (["--gt", str(gt), "--run", f"a={broken}"], "--run a: " + str(broken)),
        (["--gt", str(gt), "--run", str(broken)], "expected NAME=RESULTS_JSON"),
    ):
        done = subprocess.run(
            [sys.executable, os.path.join(TOOLS, "detection_errors.py"), *args],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2 and named in done.stderr
        assert "Traceback" not in done.stderr
