"""The benchmark's "ImageNet": single-object images labelled only by shape, for pre-training.

Mask^X R-CNN's backbone starts from ImageNet: classification labels only, over many classes and
appearances, with no mask and no box, and it has seen the box-only classes' appearance. This
module gives the synthetic benchmark the same stage. Each sample is one object of any of the
21 shapes of :data:`.shapes.SHAPES` (the benchmark's four among them) in a random colour (any
hue, not the benchmark's palette), textured and striped like the benchmark's objects, on the
benchmark's cluttered background; its label is the shape alone, so features that recognise it
must not depend on colour. Samples are a pure function of (seed, index).
"""

import colorsys
from typing import Tuple

import numpy as np

from .scene import SceneParams, _background, _paint
from .shapes import SHAPES, render_shape

__all__ = ["PRETRAINING_SHAPES", "pretraining_sample"]

PRETRAINING_SHAPES = tuple(sorted(SHAPES))


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """(3,) float32 RGB of a random hue, saturation 0.5-1 and value 0.45-1."""
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.5, 1.0), rng.uniform(0.45, 1.0))
    return np.asarray(rgb, np.float32) * 255


def pretraining_sample(index: int, seed: int = 0, size: int = 64) -> Tuple[np.ndarray, int]:
    """Sample ``index`` of the pre-training stream ``seed``.

    Returns:
        (size, size, 3) uint8 RGB image and the index of its shape in
        :data:`PRETRAINING_SHAPES`.
    """
    rng = np.random.default_rng([seed, index])
    params = SceneParams(image_size=size)
    image = _background(rng, params)
    label = int(rng.integers(len(PRETRAINING_SHAPES)))
    radius = rng.uniform(0.16, 0.4) * size
    centre = size / 2 + rng.uniform(-0.12, 0.12, 2) * size
    aspect = rng.uniform(*params.aspect_range)
    mask = render_shape(
        PRETRAINING_SHAPES[label], (size, size), tuple(centre), radius, aspect, rng.uniform(0, 6.3)
    ).astype(bool)
    image[mask] = _paint(rng, _random_colour(rng), mask, params)
    noise = rng.normal(0.0, params.noise_std, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), label
