"""Content digests of generated synthetic splits: recorded at generation, checked by the tool."""

import contextlib
import json
import logging
import os
import sys

import cv2
import pytest

from maskx_d2.data.datasets.synthetic import content_digest, generate_synthetic_shapes

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import synthetic_digest  # noqa: E402


@pytest.fixture
def split_dir(tmp_path):
    return os.path.dirname(generate_synthetic_shapes(str(tmp_path), "val", 4, 3))


@contextlib.contextmanager
def _captured(logger):
    """The log records ``logger`` emits inside the block (at INFO and above)."""
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _manifest(split_dir):
    with open(os.path.join(split_dir, "manifest.json")) as f:
        return json.load(f)


def test_generation_records_the_digest_its_files_reproduce(split_dir, tmp_path):
    recorded = _manifest(split_dir)["content_sha256"]
    assert recorded == content_digest(split_dir)
    again = generate_synthetic_shapes(str(tmp_path / "again"), "val", 4, 3)
    assert content_digest(os.path.dirname(again)) == recorded  # same parameters, same data
    other = generate_synthetic_shapes(str(tmp_path / "other"), "val", 4, 4)
    assert content_digest(os.path.dirname(other)) != recorded


def test_tool_passes_intact_splits_and_fails_on_one_changed_pixel(split_dir, tmp_path, capsys):
    root = str(tmp_path)
    assert synthetic_digest.main(["--root", root]) == 0
    assert " ok" in capsys.readouterr().out
    path = os.path.join(split_dir, "images", "000002.png")
    image = cv2.imread(path)
    image[5, 7, 1] ^= 1  # one channel of one pixel, one grey level
    cv2.imwrite(path, image)
    assert synthetic_digest.main(["--root", root]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_tool_fails_on_changed_annotations(split_dir, tmp_path):
    json_path = os.path.join(split_dir, "instances.json")
    with open(json_path) as f:
        coco = json.load(f)
    coco["annotations"][0]["bbox"][0] += 1
    with open(json_path, "w") as f:
        json.dump(coco, f, sort_keys=True)
    assert synthetic_digest.main(["--root", str(tmp_path)]) == 1


def test_tool_records_digests_missing_from_older_manifests(split_dir, tmp_path):
    manifest = _manifest(split_dir)
    expected = manifest.pop("content_sha256")
    with open(os.path.join(split_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    assert synthetic_digest.main(["--root", str(tmp_path)]) == 0
    assert "content_sha256" not in _manifest(split_dir)  # only with --record
    assert synthetic_digest.main(["--root", str(tmp_path), "--record"]) == 0
    assert _manifest(split_dir)["content_sha256"] == expected


def test_tool_without_generated_splits_says_where_it_looked(tmp_path, capsys):
    assert synthetic_digest.main(["--root", str(tmp_path)]) == 1
    assert os.path.join(str(tmp_path), "synthetic_shapes_v2") in capsys.readouterr().err


def test_loading_a_split_from_before_digests_records_and_logs_its_digest(split_dir, tmp_path):
    manifest = _manifest(split_dir)
    expected = manifest.pop("content_sha256")
    with open(os.path.join(split_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    json_path = os.path.join(split_dir, "instances.json")
    stamp = os.stat(json_path).st_mtime_ns
    logger = logging.getLogger("maskx_d2.data.datasets.synthetic.generate")
    with _captured(logger) as records:
        generate_synthetic_shapes(str(tmp_path), "val", 4, 3)
    assert os.stat(json_path).st_mtime_ns == stamp  # reused, not generated again
    assert _manifest(split_dir)["content_sha256"] == expected
    assert any(f"content sha256 {expected}" in r.getMessage() for r in records)
