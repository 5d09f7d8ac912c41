"""Fuzz Visual Genome files (image_data.json, objects.json) through load_vg_tables, then
vg_dataset_dicts and the training mapper: hostile values in, or missing, fields of images,
object lists and objects, and broken text (truncated, not UTF-8, too deeply nested, trailing
garbage).

The policy every case is held to is stated once, in fuzz_checks.py; here the files named in
errors are image_data.json and objects.json.
"""

import json
import os

import numpy as np
import pytest
from fuzz_checks import check_clear_error, check_mapped, check_record
from fuzz_fixtures import (
    HOSTILE_NUMBERS,
    HOSTILE_VALUES,
    bounded_case,
    break_text,
    case_rng,
    dict_entries,
    pick,
)

from maskx_d2.data.datasets.visual_genome.dicts import vg_dataset_dicts
from maskx_d2.data.datasets.visual_genome.tables import load_vg_tables
from maskx_d2.data.datasets.visual_genome.vocab import VGCategories

NUM_VG_CASES = 100
VG_SYNSETS = [["dog.n.01"], ["cat.n.01"], [], ["dog.n.01", "cat.n.01"], ["tree.n.01"]]


@pytest.fixture(scope="module")
def vg_image_root(tmp_path_factory, fuzz_image_root):
    root = tmp_path_factory.mktemp("vg_images")
    os.mkdir(root / "VG_100K")
    for image_id in (1, 2, 3):
        os.link(os.path.join(fuzz_image_root, "a.jpg"), root / "VG_100K" / f"{image_id}.jpg")
    return str(root)


def _base_vg():
    url = "https://cs.stanford.edu/people/rak248/VG_100K/{}.jpg"
    images = [
        {"image_id": i, "width": 32, "height": 32, "coco_id": None, "url": url.format(i)}
        for i in (1, 2, 3)
    ]
    objects = [
        {
            "image_id": i,
            "objects": [
                {"object_id": 10 * i + k, "synsets": s, "x": k, "y": 2, "w": 9, "h": 7}
                for k, s in enumerate(VG_SYNSETS)
            ],
        }
        for i in (1, 2, 3)
    ]
    return images, objects


def _mutate_vg(rng, images, objects):
    kind = int(rng.integers(5))
    if kind == 0:
        entry, keys = pick(rng, images), ["image_id", "width", "height", "coco_id", "url"]
    elif kind == 1:
        entry, keys = pick(rng, objects), ["image_id", "objects"]
    else:
        entry = pick(rng, dict_entries(pick(rng, objects), "objects") or [{}])
        keys = ["synsets", "x", "y", "w", "h"]
    if rng.integers(3):
        entry[pick(rng, keys)] = pick(rng, HOSTILE_VALUES + HOSTILE_NUMBERS)
    else:
        entry.pop(pick(rng, keys), None)


def _vg_case(rng, folder):
    images, objects = _base_vg()
    log = []
    for _ in range(int(rng.integers(1, 4))):
        _mutate_vg(rng, images, objects)
    files = [os.path.join(folder, "image_data.json"), os.path.join(folder, "objects.json")]
    texts = [json.dumps(images), json.dumps(objects)]
    log.append(texts)
    if rng.random() < 0.25:
        k = int(rng.integers(2))
        texts[k] = break_text(rng, texts[k])
        log.append(f"text of {os.path.basename(files[k])}: {texts[k][:60]!r}")
    for path, text in zip(files, texts):
        with open(path, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode())
    return files, log


def test_visual_genome_fuzz(tmp_path, vg_image_root, fuzz_mappers):
    outcomes = {"error": 0, "loaded": 0}
    for case in range(NUM_VG_CASES):
        rng = case_rng(2, case)
        folder = tmp_path / f"vg{case}"
        folder.mkdir()
        files, log = _vg_case(rng, str(folder))

        def describe():
            return f"VG case {case}: {log!r:.3000}"

        with bounded_case(describe):
            try:
                tables = load_vg_tables(*files)
            except Exception as e:
                check_clear_error(e, files, None, describe)
                outcomes["error"] += 1
                continue
            synsets = [str(s) for s in tables.synsets]
            categories = VGCategories(thing_classes=synsets, synsets=synsets, num_coco=0)
            keep = np.ones(len(tables.image_ids), dtype=bool)
            for record in vg_dataset_dicts(tables, categories, vg_image_root, keep):
                check_record(record, len(synsets), describe)
                check_mapped(fuzz_mappers, record, describe, num_classes=len(synsets))
            outcomes["loaded"] += 1
    assert min(outcomes.values()) >= NUM_VG_CASES // 10, outcomes
