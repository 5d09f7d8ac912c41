"""tools/mask_saturation.py: its summary of a set of mask probabilities."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from mask_saturation import saturation  # noqa: E402


def test_a_filled_roi_and_a_centred_square_are_told_apart_by_the_border():
    filled = np.full((2, 6, 6), 0.9)
    square = np.zeros((2, 6, 6))
    square[:, 2:4, 2:4] = 0.8
    assert saturation(filled) == pytest.approx(
        {"mean": 90.0, "above": 100.0, "border above": 100.0}
    )
    s = saturation(square)
    assert s["mean"] == pytest.approx(100 * 0.8 * 4 / 36)
    assert s["above"] == pytest.approx(100 * 4 / 36) and s["border above"] == 0.0


def test_the_border_is_the_outermost_ring():
    p = np.zeros((1, 4, 4))
    p[0, 0, 1] = 1.0  # one of the 12 border cells
    p[0, 1, 1] = 1.0  # an inner cell
    assert saturation(p)["border above"] == pytest.approx(100 / 12)
