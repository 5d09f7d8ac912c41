"""The 20 shapes of the synthetic dataset, as outlines, and their rasterisation.

A shape is a list of ``(ring, fill)`` pairs in a canonical frame where the shape fits the unit
disc: ``ring`` is an (N, 2) float array of x, y points and ``fill`` is 1 (draw) or 0 (cut out,
for holes and the bite of the crescent); rings are drawn in order. Shapes differ in outline and
topology (holes, concavities, thin parts), so a mask prior learned for one class does not fit
another: that is what makes class-specific mask weights matter.
"""

from typing import Dict, List, Tuple

import cv2
import numpy as np

__all__ = ["BAR_HALF_WIDTH", "SHAPES", "render_shape"]

Ring = Tuple[np.ndarray, int]
_SUBPIXEL_BITS = 4  # cv2.fillPoly fixed-point precision: 1/16 pixel
# Half the thickness of the bar, whose length is 2 in the canonical frame.
BAR_HALF_WIDTH = 0.28


def _regular(n: int, radius: float = 1.0, phase: float = -np.pi / 2) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def _pts(*xy: float) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


def _star() -> np.ndarray:
    outer, inner = _regular(5, 1.0), _regular(5, 0.42, -np.pi / 2 + np.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(-1, 2)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y + 2.5], axis=1) / 17.0


def _plus(arm: float) -> np.ndarray:
    a = arm
    return _pts(-a, -1, a, -1, a, -a, 1, -a, 1, a, a, a, a, 1, -a, 1, -a, a, -1, a, -1, -a, -a, -a)


def _semicircle() -> np.ndarray:
    t = np.linspace(np.pi, 2 * np.pi, 33)
    # Centred on the half-disc's middle rather than on the full circle's centre.
    return np.stack([np.cos(t), np.sin(t) + 0.45], axis=1)


SHAPES: Dict[str, List[Ring]] = {
    "circle": [(_regular(48), 1)],
    "ellipse": [(_regular(48) * [1.0, 0.5], 1)],
    "square": [(_pts(-0.72, -0.72, 0.72, -0.72, 0.72, 0.72, -0.72, 0.72), 1)],
    "diamond": [(_pts(0, -1, 0.55, 0, 0, 1, -0.55, 0), 1)],
    "triangle": [(_regular(3), 1)],
    "trapezoid": [(_pts(-1, 0.55, 1, 0.55, 0.4, -0.55, -0.4, -0.55), 1)],
    "pentagon": [(_regular(5), 1)],
    "hexagon": [(_regular(6), 1)],
    "star": [(_star(), 1)],
    "heart": [(_heart(), 1)],
    "cross": [(_plus(0.3), 1)],
    "hourglass": [(_pts(-0.8, -1, 0.8, -1, 0.12, 0, 0.8, 1, -0.8, 1, -0.12, 0), 1)],
    "ring": [(_regular(48), 1), (_regular(48, 0.55), 0)],
    "frame": [(_regular(4, 1.0, np.pi / 4), 1), (_regular(4, 0.6, np.pi / 4), 0)],
    "l_shape": [(_pts(-0.8, -1, -0.15, -1, -0.15, 0.35, 0.8, 0.35, 0.8, 1, -0.8, 1), 1)],
    "t_shape": [
        (_pts(-1, -0.9, 1, -0.9, 1, -0.3, 0.3, -0.3, 0.3, 1, -0.3, 1, -0.3, -0.3, -1, -0.3), 1)
    ],
    "arrow": [(_pts(-1, -0.3, 0.15, -0.3, 0.15, -0.75, 1, 0, 0.15, 0.75, 0.15, 0.3, -1, 0.3), 1)],
    "semicircle": [(_semicircle(), 1)],
    "crescent": [(_regular(48), 1), (_regular(48, 0.85) + [0.5, 0.0], 0)],
    "plus_hole": [(_plus(0.38), 1), (_regular(4, 0.28, np.pi / 4), 0)],
    "bar": [(_pts(-1, -1, 1, -1, 1, 1, -1, 1) * [1.0, BAR_HALF_WIDTH], 1)],
}


def render_shape(
    shape: str,
    canvas_hw: Tuple[int, int],
    center: Tuple[float, float],
    radius: float,
    aspect: float,
    angle: float,
) -> np.ndarray:
    """Rasterise a shape scaled, stretched and rotated about its centre.

    Args:
        shape: a key of :data:`SHAPES`.
        canvas_hw: (H, W) of the output mask.
        center: (x, y) in pixels; may lie outside the canvas.
        radius: half-size in pixels (the canonical unit disc maps to this radius).
        aspect: width / height stretch before rotation (area is kept).
        angle: rotation in radians.

    Returns:
        (H, W) uint8 mask of 0/1.
    """
    scale = radius * np.array([np.sqrt(aspect), 1.0 / np.sqrt(aspect)])
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    mask = np.zeros(canvas_hw, dtype=np.uint8)
    for ring, fill in SHAPES[shape]:
        xy = (ring * scale) @ rotation.T + np.asarray(center)
        fixed = np.round(xy * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillPoly(mask, [fixed], int(fill), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return mask
