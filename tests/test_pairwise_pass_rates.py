"""tools/pairwise_pass_rates.py: which neighbouring pairs of cells the pairwise loss keeps."""

import os
import sys

import numpy as np
import torch
from detectron2.data.datasets import load_coco_json

from maskx_d2.data.datasets.synthetic import generate_synthetic_shapes

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from pairwise_pass_rates import KINDS, dataset_pass_rates, pair_counts  # noqa: E402


def _scene(side=8):
    """A 2 x 2 object (colour 50) in a 4 x 4 box (rows/columns 2-5) on a flat background (0),
    except one background cell in the box of another colour (20)."""
    lab = torch.zeros(1, 3, side, side)
    on_object = torch.zeros(1, 1, side, side, dtype=torch.bool)
    on_object[0, 0, 3:5, 3:5] = True
    lab[0, 0][on_object[0, 0]] = 50.0
    lab[0, 0, 2, 2] = 20.0
    in_box = torch.zeros_like(on_object)
    in_box[0, 0, 2:6, 2:6] = True
    return lab, on_object, in_box


def test_pairs_are_sorted_by_kind_and_kept_by_colour():
    lab, on_object, in_box = _scene()
    counts = pair_counts(lab, on_object, in_box, threshold=0.3)
    # Inside the 2 x 2 object: 2 + 2 straight and 2 diagonal pairs, all of one colour.
    assert counts["object-object"].tolist() == [6.0, 6.0]
    # Every pair touching the object has another colour on its other cell.
    assert counts["object-background"][0] == 0 and counts["object-background"][1] > 0
    # The odd cell (2, 2) is a box corner: its 3 neighbours in the box and 5 outside fail.
    kept, total = counts["background in box"]
    assert total - kept == 2  # (2, 3) and (3, 2); (3, 3) is on the object
    kept, total = counts["background across edge"]
    assert total - kept == 5
    assert set(counts) == set(KINDS)


def test_the_rates_of_a_generated_set(tmp_path):
    path = generate_synthetic_shapes(str(tmp_path), "val", 4, 1)
    records = load_coco_json(path, os.path.join(os.path.dirname(path), "images"))
    rates = dataset_pass_rates(records, 1, 0.25, 28, 0.3)
    # Colours across an object's outline differ by far more than the threshold allows.
    assert rates["object-background"] < 2.0
    assert all(0 <= rates[k] <= 100 for k in KINDS)
    smoothed = dataset_pass_rates(records, 3, 0.25, 28, 0.3)
    # The synthetic images' pixel noise (std 4) makes most background pairs fail unsmoothed.
    assert smoothed["background across edge"] > rates["background across edge"] + 5
    assert np.isfinite(list(smoothed.values())).all()
