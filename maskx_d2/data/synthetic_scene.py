"""Render one synthetic image: a cluttered background, then shapes that occlude each other.

Colour says nothing about class or extent: object colours are drawn independently of the class
from the same distribution as the background texture, the stripes, the lines and the distractor
blobs (irregular polygons that are not objects); objects are shaded by a random gradient and the
whole image gets pixel noise. Objects are painted in order, so later ones occlude earlier ones;
a placement is rejected when it would leave an earlier object (or itself, through the image
border) with too little visible area, so every painted object is annotated and every visible
mask is large enough to learn from.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .synthetic_shapes import render_shape

__all__ = ["SceneObject", "SceneParams", "render_scene"]


@dataclass(frozen=True)
class SceneParams:
    """Everything that shapes the rendered images (part of the dataset cache key)."""

    image_size: int = 128
    # Defaults are moderate so a small model learns from scratch in minutes on a CPU; raise the
    # clutter knobs for a harder set.
    radius_range: Tuple[float, float] = (11.0, 28.0)
    aspect_range: Tuple[float, float] = (0.75, 1.33)
    min_visible_fraction: float = 0.3  # of the object's in-image area when it was placed
    min_area: int = 40  # pixels
    min_in_image_fraction: float = 0.6  # of the full (unclipped) shape
    min_contrast: int = 60  # max channel difference between object and background under it
    noise_std: float = 5.0
    max_tries: int = 30
    background_stripes_probability: float = 0.3
    num_lines_range: Tuple[int, int] = (1, 4)  # [low, high) random lines per image
    num_blobs_range: Tuple[int, int] = (0, 3)  # [low, high) distractor blobs per image
    object_stripes_probability: float = 0.15
    # Each class has a base hue and an instance's colour is that plus Gaussian jitter of this
    # std (per RGB channel): detection becomes learnable in minutes from scratch, which is not
    # what the paper studies, while the clutter reuses object colours so the mask is still not
    # given by colour. None: colours independent of the class.
    class_colour_jitter: Optional[float] = 30.0


@dataclass
class SceneObject:
    """One annotated object: class index into the shape list and its masks, (H, W) bool."""

    class_index: int
    full_mask: np.ndarray  # the whole shape, clipped to the image
    visible_mask: np.ndarray  # what later objects leave visible


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def _object_colour(rng, class_index: int, num_classes: int, jitter: Optional[float]):
    """(3,) float32 RGB: the class's base hue (evenly spaced on the hue circle) + jitter."""
    if jitter is None:
        return _random_colour(rng)
    hue = np.uint8(round(180 * class_index / num_classes))  # OpenCV hue range is [0, 180)
    base = cv2.cvtColor(np.array([[[hue, 220, 220]]], dtype=np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return np.clip(base + rng.normal(0.0, jitter, 3), 0, 255).astype(np.float32)


def _low_frequency(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) smooth random field in [0, 1]."""
    field = cv2.resize(
        rng.random((cells, cells)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC
    )
    return np.clip(field, 0.0, 1.0)


def _background(
    rng: np.random.Generator, params: SceneParams, camouflage: Sequence[np.ndarray]
) -> np.ndarray:
    """(size, size, 3) float32 RGB clutter: colour texture, stripes, lines, distractor blobs.

    Lines and blobs often take a colour of ``camouflage`` (the colours of the objects to come),
    so an object's colour also occurs off the object.
    """

    def colour() -> np.ndarray:
        if len(camouflage) and rng.random() < 0.6:
            return camouflage[int(rng.integers(len(camouflage)))]
        return _random_colour(rng)

    size = params.image_size
    t = _low_frequency(rng, size, int(rng.integers(2, 6)))[..., None]
    # The smooth background also borrows object colours, so a colour threshold around an
    # object also selects background far from it.
    image = colour() * (1 - t) + colour() * t
    if rng.random() < params.background_stripes_probability:  # parallel stripes
        period, thickness = int(rng.integers(6, 16)), int(rng.integers(1, 4))
        angle = rng.uniform(0, np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        stripe_colour = colour().tolist()
        for offset in range(-2 * size, 2 * size, period):
            centre = size / 2 + offset * normal
            p, q = centre - 2 * size * direction, centre + 2 * size * direction
            cv2.line(
                image, tuple(int(v) for v in p), tuple(int(v) for v in q), stripe_colour, thickness
            )
    for _ in range(int(rng.integers(*params.num_lines_range))):  # random lines
        p, q = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(
            image,
            (int(p[0]), int(p[1])),
            (int(q[0]), int(q[1])),
            colour().tolist(),
            int(rng.integers(1, 3)),
        )
    for _ in range(int(rng.integers(*params.num_blobs_range))):  # blobs that are not objects
        n = int(rng.integers(5, 12))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(4, 20) * rng.uniform(0.4, 1.0, n)
        centre = rng.uniform(0, size, 2)
        pts = centre + radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        cv2.fillPoly(image, [np.round(pts).astype(np.int32)], colour().tolist())
    return image


def _place(rng, shape, params: SceneParams) -> Tuple[np.ndarray, int]:
    """Random pose of a shape: its in-image mask (bool) and its full (unclipped) area."""
    size = params.image_size
    radius = rng.uniform(*params.radius_range)
    aspect = np.exp(rng.uniform(*np.log(params.aspect_range)))
    angle = rng.uniform(0, 2 * np.pi)
    pad = int(np.ceil(params.radius_range[1] * np.sqrt(params.aspect_range[1]))) + 1
    centre = rng.uniform(0, size, 2)
    full = render_shape(
        shape, (size + 2 * pad, size + 2 * pad), tuple(centre + pad), radius, aspect, angle
    )
    return full[pad : pad + size, pad : pad + size].astype(bool), int(full.sum())


def _paint(rng, colour: np.ndarray, mask: np.ndarray, stripes_probability: float) -> np.ndarray:
    """(P, 3) texture of the P pixels of ``mask``: a random linear gradient, sometimes stripes of
    a second colour, so an object is not one flat colour."""
    ys, xs = np.nonzero(mask)
    ys, xs = ys / mask.shape[0] - 0.5, xs / mask.shape[1] - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys)[:, None]
    texture = colour + rng.uniform(0, 60) * ramp
    if rng.random() < stripes_probability:
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 10) / mask.shape[0]
        phase = (np.cos(angle) * xs + np.sin(angle) * ys) / period
        stripes = (phase - np.floor(phase) < 0.5)[:, None]
        texture = np.where(stripes, _random_colour(rng), texture)
    return texture


def render_scene(
    rng: np.random.Generator,
    shapes: Sequence[str],
    class_indices: Sequence[int],
    params: SceneParams = SceneParams(),
) -> Tuple[np.ndarray, List[SceneObject]]:
    """Draw one image with one object per entry of ``class_indices`` (when it can be placed).

    Args:
        rng: the image's own generator (determinism).
        shapes: shape names, indexed by ``class_indices``.
        class_indices: classes of the objects, in painting order (later occlude earlier).
        params: geometry and appearance knobs.

    Returns:
        the (S, S, 3) uint8 RGB image and its objects. Objects that found no valid pose in
        ``max_tries`` are left out (rare).
    """
    colours = [
        _object_colour(rng, k, len(shapes), params.class_colour_jitter) for k in class_indices
    ]
    image = _background(rng, params, colours)
    objects: List[SceneObject] = []
    for k, colour in zip(class_indices, colours):
        for _ in range(params.max_tries):
            mask, full_area = _place(rng, shapes[k], params)
            area = int(mask.sum())
            if area < max(params.min_area, params.min_in_image_fraction * full_area):
                continue
            if any(
                (o.visible_mask & ~mask).sum()
                < max(params.min_area, params.min_visible_fraction * o.full_mask.sum())
                for o in objects
            ):
                continue
            if np.abs(colour - image[mask].mean(axis=0)).max() < params.min_contrast:
                continue  # keep objects visible against what lies under them on average
            image[mask] = _paint(rng, colour, mask, params.object_stripes_probability)
            for o in objects:
                o.visible_mask &= ~mask
            objects.append(SceneObject(int(k), mask, mask.copy()))
            break
    image += rng.normal(0.0, params.noise_std, image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), objects
