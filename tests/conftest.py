"""Fixtures shared by the fuzz tests (tests/test_fuzz_*.py, created once per run) and the
evaluator tests (``register_eval_set``, ``eval_gt_json``).

The fuzz fixtures are named ``fuzz_*`` because a conftest fixture is visible to every test:
the image pool holds unreadable files on purpose.
"""

import itertools

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from evaluator_fixtures import CATEGORY_IDS, write_gt
from fuzz_fixtures import GOOD_IMAGES, SEED
from PIL import Image

from maskx_d2 import add_maskx_config
from maskx_d2.data.mapper import PartiallySupervisedDatasetMapper


@pytest.fixture(scope="session")
def fuzz_image_root(tmp_path_factory):
    """GOOD_IMAGES (seeded random pixels) and BAD_IMAGES: corrupt, empty, truncated, text, a
    folder; "missing.jpg" is not written."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(SEED)
    for name, (w, h) in GOOD_IMAGES.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / name)
    (root / "corrupt.jpg").write_bytes(rng.integers(0, 255, 500, dtype=np.uint8).tobytes())
    (root / "empty.jpg").write_bytes(b"")
    full = (root / "a.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 2])  # header intact, data cut
    (root / "text.png").write_text("not an image")
    (root / "dir.jpg").mkdir()
    return str(root)


def _mapper_config(mask_format):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.MAX_SIZE_TRAIN = 128
    cfg.INPUT.MASK_FORMAT = mask_format
    return cfg


@pytest.fixture(scope="session")
def fuzz_mappers():
    """Training mappers for both mask formats; polygons are rasterized only by the loss,
    bitmasks in the mapper. (Cropping polygons needs shapely, which is not installed.)"""
    return [
        PartiallySupervisedDatasetMapper(_mapper_config("polygon"), is_train=True),
        PartiallySupervisedDatasetMapper(_mapper_config("bitmask"), is_train=True),
    ]


# The evaluator tests' ground truth (tests/evaluator_fixtures.py) as registered datasets.
_names = itertools.count()


@pytest.fixture
def register_eval_set(tmp_path):
    """Register metadata for a gt json; returns a function(json_file, **metadata) -> name."""
    names = []

    def _register(json_file, **metadata):
        name = f"maskx_test_eval_{next(_names)}"
        MetadataCatalog.get(name).set(
            json_file=json_file,
            thing_classes=[f"class{c}" for c in CATEGORY_IDS],
            thing_dataset_id_to_contiguous_id={c: i for i, c in enumerate(CATEGORY_IDS)},
            **metadata,
        )
        names.append(name)
        return name

    yield _register
    for name in names:
        MetadataCatalog.remove(name)


@pytest.fixture
def eval_gt_json(tmp_path):
    return write_gt(tmp_path / "gt.json")
