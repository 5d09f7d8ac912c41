"""tools/class_weight_structure.py's statistics on weights built with a known structure."""

import os
import sys

import numpy as np
import pytest

from maskx_d2.data.datasets.synthetic import CLASS_PARTS as PARTS
from maskx_d2.data.datasets.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_MASK_CLASSES
from maskx_d2.data.datasets.synthetic.classes import COLOUR_NAMES as COLOURS
from maskx_d2.data.datasets.synthetic.classes import SHAPE_NAMES as SHAPES

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from class_weight_structure import (  # noqa: E402
    additive_prediction_cosine,
    band_split,
    explained_variance,
    mean_cosine_by_relation,
)

CHESS_A = [SYNTHETIC_CLASSES.index(name) for name in SYNTHETIC_MASK_CLASSES]


def _additive(shape_scale=1.0, colour_scale=1.0, seed=0):
    """(16, 32) rows u_shape + v_colour with random u, v."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(4, 32)) * shape_scale, rng.normal(size=(4, 32)) * colour_scale
    return np.stack([u[SHAPES.index(s)] + v[COLOURS.index(c)] for s, c in PARTS])


def test_explained_variance_of_known_structures():
    shapes, colours = [p[0] for p in PARTS], [p[1] for p in PARTS]
    w = _additive()
    assert explained_variance(w, shapes, colours) == pytest.approx(1.0)
    only_shape = _additive(colour_scale=0.0)
    assert explained_variance(only_shape, shapes) == pytest.approx(1.0)
    assert explained_variance(only_shape, colours) == pytest.approx(0.0, abs=1e-12)
    noise = np.random.default_rng(1).normal(size=(16, 32))
    # 7 free parameters of 15 per dimension: about 7/15 of pure noise is "explained".
    assert 0.3 < explained_variance(noise, shapes, colours) < 0.65


def test_mean_cosine_by_relation():
    # Colour only: B rows equal the A rows of their colour (cos 1); different colours are
    # orthogonal one-hots (cos 0).
    w = np.stack([np.eye(4)[COLOURS.index(c)] for _, c in PARTS])
    cos = mean_cosine_by_relation(w, PARTS, CHESS_A)
    assert cos == {"same colour": 1.0, "same shape": 0.0, "neither": 0.0}
    w = np.stack([np.eye(4)[SHAPES.index(s)] for s, _ in PARTS])
    cos = mean_cosine_by_relation(w, PARTS, CHESS_A)
    assert cos == {"same colour": 0.0, "same shape": 1.0, "neither": 0.0}


def test_additive_prediction_needs_a_connected_split():
    """Exactly additive rows: the band split determines every B row (cos 1); the chess board
    leaves one offset per dimension to the minimum-norm fit, so it cannot."""
    w = _additive(seed=3)
    band = band_split(PARTS)
    assert len(band) == 8
    assert sorted(band) != sorted(CHESS_A)
    assert additive_prediction_cosine(w, PARTS, band) == pytest.approx(1.0)
    assert additive_prediction_cosine(w, PARTS, CHESS_A) < 0.99


def test_an_affine_transfer_keeps_additive_structure_and_a_leaky_relu_breaks_it():
    """The columns on T(w) measure whether T keeps its input's compositional structure: exactly
    for a 1-layer (affine) T, not for two layers with a LeakyReLU (slope 0.1) between them."""
    shapes, colours = [p[0] for p in PARTS], [p[1] for p in PARTS]
    w = _additive(seed=4)
    rng = np.random.default_rng(5)
    first, bias = rng.normal(size=(32, 32)), rng.normal(size=32)
    affine = w @ first + bias
    assert explained_variance(affine, shapes, colours) == pytest.approx(1.0)
    band = band_split(PARTS)
    assert additive_prediction_cosine(affine, PARTS, band) == pytest.approx(1.0)
    two_layer = np.where(affine > 0, affine, 0.1 * affine) @ rng.normal(size=(32, 32))
    assert explained_variance(two_layer, shapes, colours) < 0.95
    assert additive_prediction_cosine(two_layer, PARTS, band) < 0.98
