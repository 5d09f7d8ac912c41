"""Inputs for the hostile-data fuzz tests (tests/test_fuzz_*.py): hostile values, the image
pool, seeded generators of broken geometry and files, and the per-case time bound.

The fuzz tests feed what these make to the dataset loaders and the training mapper. The policy
they check (maskx_d2/data/validation.py): every case ends in a clear error naming the file (and
the image or annotation at fault), or in a result the model can train on with what was dropped
counted in the summary line; never another exception type, never a crash in the mapper and never
a slow or hung case. A seeded generator per case keeps every failure reproducible.

The image pool itself and the training mappers are the fixtures ``fuzz_image_root`` and
``fuzz_mappers`` in tests/conftest.py.
"""

import faulthandler
import logging
import time
from contextlib import contextmanager

import numpy as np
import pycocotools.mask as mask_util

SEED = 20240611
CASE_SECONDS = 5.0  # a slow case fails; a hung one is killed (with tracebacks) after 12x this
NAN, INF = float("nan"), float("inf")
NUM_CATEGORIES = 3

# Values that break a field of any type: JSON-representable, so files can hold them too.
HOSTILE_VALUES = [None, True, False, "1", "", [], {}, [1], {"a": 1}, -1, 0, 1.5, NAN, INF]
HOSTILE_VALUES += [-INF, 1e308, 2**70, -(2**70), "\x00", "\udbff", [[[]]]]
HOSTILE_NUMBERS = [0, -1, 1e-9, 31.9, 32, 33, 1e4, 1e9, 1e300, -1e300, NAN, INF, -INF, 2**64]
HOSTILE_NUMBERS += [True, "5", None, [1]]

# The image pool, shared by all cases. Sizes are (width, height).
GOOD_IMAGES = {"a.jpg": (32, 32), "b.png": (32, 24), "c.jpg": (20, 30)}
BAD_IMAGES = ["corrupt.jpg", "empty.jpg", "truncated.jpg", "text.png", "missing.jpg", "dir.jpg"]


# ---- Case bookkeeping ----------------------------------------------------------------------


class Summaries(logging.Handler):
    """Collects the validation summary lines ("... box_degenerate=N, ...")."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextmanager
def bounded_case(describe):
    """Fail a case that takes longer than CASE_SECONDS; kill the run if one hangs in C code,
    where no Python-level timeout can interrupt it."""
    faulthandler.dump_traceback_later(12 * CASE_SECONDS, exit=True)
    start = time.perf_counter()
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
    elapsed = time.perf_counter() - start
    assert elapsed < CASE_SECONDS, f"took {elapsed:.1f} s\n  in {describe()}"


def case_rng(target, case):
    return np.random.default_rng([SEED, target, case])


def pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def dict_entries(data, key):
    entries = data.get(key) if isinstance(data, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


# ---- Geometry generators -------------------------------------------------------------------


def valid_polygon(rng, w, h, points=None):
    points = points or int(rng.integers(3, 12))
    center = rng.uniform([0, 0], [w, h])
    angles = np.sort(rng.uniform(0, 2 * np.pi, points))
    radius = rng.uniform(1, min(w, h) / 2, points)
    xy = center + np.stack([np.cos(angles), np.sin(angles)], 1) * radius[:, None]
    return xy.ravel().tolist()


def hostile_polygon_part(rng, w, h):
    kind = int(rng.integers(10))
    if kind == 0:
        return valid_polygon(rng, w, h, points=50_000)  # huge: 100k coordinates
    if kind == 1:  # far outside the image, as far as float64 goes
        return (np.array(valid_polygon(rng, w, h)) * pick(rng, [1e3, 1e9, 1e300, -1e6])).tolist()
    if kind == 2:
        part = valid_polygon(rng, w, h)
        part[int(rng.integers(len(part)))] = pick(rng, HOSTILE_NUMBERS)
        return part
    if kind == 3:
        return valid_polygon(rng, w, h)[: int(rng.integers(0, 6))]  # < 3 points
    if kind == 4:
        return valid_polygon(rng, w, h)[:-1]  # odd number of coordinates
    if kind == 5:
        return [1.0, 1.0] * int(rng.integers(3, 6))  # zero area
    if kind == 6:
        return pick(rng, HOSTILE_VALUES)  # a part that is no list of numbers
    return valid_polygon(rng, w, h)


def random_mask(rng, w, h):
    mask = np.zeros((h, w), np.uint8)
    x0, y0 = rng.integers(0, [w, h])
    mask[y0 : y0 + rng.integers(0, h), x0 : x0 + rng.integers(0, w)] = 1
    return mask


def random_rle(rng, w, h, compressed=True):
    mask = random_mask(rng, w, h)
    if compressed:
        rle = mask_util.encode(np.asfortranarray(mask))
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    flat = mask.reshape(-1, order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(bounds).tolist()
    return {"size": [h, w], "counts": runs if flat[0] == 0 else [0] + runs}


def hostile_rle(rng, w, h):
    rle = random_rle(rng, w, h, compressed=bool(rng.integers(2)))
    kind = int(rng.integers(9))
    if kind == 0:
        rle["size"] = pick(rng, [[h + 1, w], [w, h], [h], [h, w, 3], [0, 0], f"{h}x{w}"])
    elif kind == 1:
        rle["size"] = [pick(rng, HOSTILE_NUMBERS), w]
    elif kind == 2 and isinstance(rle["counts"], str):
        rle["counts"] = rle["counts"][: int(rng.integers(len(rle["counts"])))]  # truncated
    elif kind == 3:
        chars = rng.integers(32, 0x3000, int(rng.integers(1, 30)))
        rle["counts"] = "".join(map(chr, chars))  # garbage, possibly non-ASCII
    elif kind == 4:
        counts = list(rle["counts"]) if isinstance(rle["counts"], list) else [w * h]
        counts[int(rng.integers(len(counts)))] = pick(rng, HOSTILE_NUMBERS)
        rle["counts"] = counts
    elif kind == 5:
        rle.pop(pick(rng, ["size", "counts"]))
    elif kind == 6:
        rle["counts"] = pick(rng, HOSTILE_VALUES)
    elif kind == 7:
        rle["counts"] = [w * h - 5, 10]  # adds up to more than the image
    return rle


def hostile_box(rng, w, h):
    kind = int(rng.integers(4))
    if kind == 0:
        return [pick(rng, HOSTILE_NUMBERS) for _ in range(int(rng.integers(0, 6)))]
    box = [float(v) for v in rng.uniform(-4, [w, h, w, h])]
    if kind == 1:
        box[int(rng.integers(4))] = pick(rng, HOSTILE_NUMBERS)
    elif kind == 2:
        box = pick(rng, [[0, 0, 1e-6, 1e-6], [0, 0, 1e300, 1e300], [w + 5, h + 5, 3, 3]])
    return box


# ---- Broken json text ----------------------------------------------------------------------------


def break_text(rng, text):
    kind = int(rng.integers(7))
    if kind == 0:
        return text[: int(rng.integers(len(text)))].encode()  # truncated
    if kind == 1:
        return b""
    if kind == 2:
        return rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes()
    if kind == 3:
        return b"\xff\xfe" + text.encode()  # not UTF-8
    if kind == 4:
        return ("[" * 100_000 + "]" * 100_000).encode()  # nesting deeper than any parser's stack
    if kind == 5:
        return pick(rng, [b"null", b"[]", b"42", b'"images"', b"[" + text.encode() + b"]"])
    return (text + pick(rng, ["}", " x", "\n{}"])).encode()  # trailing garbage


# ---- A valid COCO json, the starting point of each COCO case ------------------------------

CATEGORY_IDS = [1, 5, 7]  # not contiguous, as COCO's


def base_coco():
    """Three images of the pool, each with a polygon, a compressed and an uncompressed RLE, a
    box-only and a crowd annotation."""
    rng = np.random.default_rng(SEED)
    images, annotations = [], []
    for image_id, (name, (w, h)) in enumerate(GOOD_IMAGES.items(), start=1):
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        segmentations = [
            [valid_polygon(rng, w, h), valid_polygon(rng, w, h)],
            random_rle(rng, w, h),
            random_rle(rng, w, h, compressed=False),
            [],
            random_rle(rng, w, h, compressed=False),
        ]
        for k, segmentation in enumerate(segmentations):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_IDS[k % len(CATEGORY_IDS)],
                    "bbox": [1.0 + k, 2.0, 8.0, 6.0 + k],
                    "segmentation": segmentation,
                    "area": 40.0,
                    "iscrowd": int(k == 4),
                }
            )
    categories = [{"id": i, "name": f"class{i}", "supercategory": "x"} for i in CATEGORY_IDS]
    return {"images": images, "annotations": annotations, "categories": categories}
