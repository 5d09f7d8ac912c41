"""COCO json files through load_partially_supervised_coco_json: what fuzzing them
(tests/test_fuzz_coco_json.py) found, as named regressions (each crashed, hung or raised an
unclear error before it was fixed), and json text that does not parse.

Policy (maskx_d2/data/validation.py): hostile data ends in a clear error or a counted skip,
never a crash in a training step or a hang; these inputs must each end in an AnnotationError
(a ValueError) whose message starts with the json file's path.
"""

import json

import pytest
from fuzz_fixtures import NAN, base_coco

from maskx_d2.data.coco_json import load_partially_supervised_coco_json
from maskx_d2.data.validation import AnnotationError


def _set_first(key, field, value):
    def mutate(data):
        data[key][0][field] = value

    return mutate


FOUND_BY_FUZZING = {  # each crashed, hung or raised an unclear error before it was fixed
    "polygon 1e9 away (segfault)": (
        _set_first("annotations", "segmentation", [[0, 0, 1e9, 0, 1e9, 1e9]]),
        "annotation id 1: polygon coordinates .* far outside the 32x32 image",
    ),
    "corrupt image file": (
        _set_first("images", "file_name", "corrupt.jpg"),
        "image id 1 .*: image file cannot be read",
    ),
    "string image id (TypeError sorting ids)": (
        _set_first("images", "id", "1"),
        "image 'id' must be an integer",
    ),
    "duplicate image id (one entry silently lost)": (
        lambda data: data["images"].append(dict(data["images"][0])),
        "duplicate image id",
    ),
    "category without name (KeyError)": (
        lambda data: data["categories"][0].pop("name"),
        "needs an integer 'id' and a string 'name'",
    ),
    "iscrowd NaN (instance silently ignored)": (
        _set_first("annotations", "iscrowd", NAN),
        "annotation id 1: iscrowd must be 0 or 1",
    ),
    "no images list (every annotation silently orphaned)": (
        lambda data: data.pop("images"),
        "no 'images' list",
    ),
}


@pytest.mark.parametrize("case", sorted(FOUND_BY_FUZZING))
def test_found_by_fuzzing(tmp_path, fuzz_image_root, case):
    mutate, problem = FOUND_BY_FUZZING[case]
    data = base_coco()
    mutate(data)
    json_file = tmp_path / "found.json"
    json_file.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=problem) as e:
        load_partially_supervised_coco_json(str(json_file), fuzz_image_root)
    assert str(e.value).startswith(str(json_file))


@pytest.mark.parametrize("text", ["[" * 100_000, "[1, 2]", "\xff{}"])
def test_unparsable_json_is_an_annotation_error(tmp_path, text):
    json_file = tmp_path / "found.json"
    json_file.write_bytes(text.encode("latin-1"))
    with pytest.raises(AnnotationError, match="not a valid COCO instances json") as e:
        load_partially_supervised_coco_json(str(json_file), str(tmp_path))
    assert str(e.value).startswith(str(json_file))
