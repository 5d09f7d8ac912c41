"""Render one synthetic image: stacked and single objects on clutter that borrows their colours.

A class is a (shape, colour) pair (see :mod:`.synthetic`). Images are built so that the mask of
an object is decided by its class, not by what fills its box:

- **stacks**: an object is often drawn on top of another one of a different class and colour
  with nearly the same box (same centre, 75-100% of its size), as a cup on a saucer or a rider
  on a horse. The two boxes hold the same pixels, so a mask head that does not know the class
  cannot tell which of the two it should segment; one that knows the class's colour and shape
  can.
- **camouflage**: lines and blobs in the background, and small "accessory" blobs glued to an
  object's outline (most often in the object's own colour), take the colours of the objects,
  and objects are often striped black or white, so the pixels of an object's colour inside its
  box are not its mask.

Objects are painted in order, so later ones occlude earlier ones; a placement is rejected when
it would leave an earlier object (or itself, through the image border) with too little visible
area, so every painted object is annotated and every visible mask is large enough to learn from.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .shapes import BAR_HALF_WIDTH, render_shape

__all__ = ["PALETTE", "SceneObject", "SceneParams", "render_scene"]

# The class colours (RGB). Every colour is used by classes with masks (A) and box-only classes
# (B) in the default split, so appearance statistics are shared between A and B.
PALETTE = {
    "red": (215, 45, 40),
    "yellow": (225, 195, 35),
    "green": (45, 165, 70),
    "blue": (45, 85, 215),
}


@dataclass(frozen=True)
class SceneParams:
    """Everything that shapes the rendered images (part of the dataset cache key)."""

    image_size: int = 128
    radius_range: Tuple[float, float] = (13.0, 28.0)
    aspect_range: Tuple[float, float] = (0.8, 1.25)
    num_units_range: Tuple[int, int] = (2, 4)  # [low, high]: stacks or single objects per image
    stack_probability: float = 0.5  # a unit is a stack of two objects (else a single object)
    stack_scale_range: Tuple[float, float] = (0.8, 1.0)  # front box size / back box size
    stack_back_visible_fraction: float = 0.5  # of the back's area, around the front
    stack_max_offset: float = 0.08  # of the back's radius: the two centres nearly coincide
    min_visible_fraction: float = 0.3  # of the object's in-image area when it was placed
    min_area: int = 60  # pixels
    min_in_image_fraction: float = 0.7  # of the full (unclipped) shape
    min_contrast: int = 60  # max channel difference between object and background under it
    colour_jitter: float = 12.0  # per-channel std around the class colour
    shading: float = 40.0  # max amplitude of an object's linear brightness ramp
    noise_std: float = 4.0
    max_tries: int = 40
    num_lines_range: Tuple[int, int] = (1, 4)  # [low, high) random lines per image
    num_blobs_range: Tuple[int, int] = (1, 4)  # [low, high) distractor blobs per image
    accessory_probability: float = 0.4  # a blob glued under an object, sticking out
    accessory_same_colour_probability: float = 0.7  # ... in the object's colour
    stripes_probability: float = 0.5  # an object is striped black or white
    camouflage_probability: float = 0.6  # clutter takes a class colour (else a grey)
    # Half the thickness of a bar over half its length (0.28: about 3.6 : 1). Thicker bars are
    # the `thickbars` scene variant's one change; they did not make bars easier to detect
    # (docs/synthetic_shapes_v2.md, "Thicker bars do not help").
    bar_half_width: float = BAR_HALF_WIDTH
    # Shapes kept whole: wholly inside the image, never in a stack (generate._plan_units), never
    # covered by a later object; accessory blobs, which no mask records, are not checked (the
    # `wholebars` variant has none). () is the main data; ("bar",) asks whether detection loses
    # bars to being seen in pieces (docs/synthetic_shapes_v2.md, "Whole bars").
    whole_shapes: Tuple[str, ...] = ()
    # None: stripes are black or white (the main data). A number f: stripes are the object's
    # own colour times f, a shade of its hue, so the stripes keep colour from giving the mask
    # without drawing black or white lines across the outline (`wholebars_shadestripes`).
    stripe_shade: Optional[float] = None


@dataclass
class SceneObject:
    """One annotated object: class index and its masks, (H, W) bool."""

    class_index: int
    full_mask: np.ndarray  # the whole shape, clipped to the image
    visible_mask: np.ndarray  # what later objects leave visible
    role: str = "single"  # "single", or "back" / "front" of a stack
    whole: bool = False  # its shape is in SceneParams.whole_shapes: nothing may cover it


def _class_colour(rng: np.random.Generator, base, params: SceneParams) -> np.ndarray:
    """(3,) float32: the class colour with brightness and per-channel jitter."""
    colour = np.asarray(base, np.float32) * rng.uniform(0.85, 1.1)
    return np.clip(colour + rng.normal(0.0, params.colour_jitter, 3), 0, 255).astype(np.float32)


def _grey(rng: np.random.Generator) -> np.ndarray:
    return (rng.uniform(60, 200) + rng.normal(0.0, 12.0, 3)).astype(np.float32)


def _clutter_colour(rng, params: SceneParams) -> np.ndarray:
    if rng.random() < params.camouflage_probability:
        palette = list(PALETTE.values())
        return _class_colour(rng, palette[int(rng.integers(len(palette)))], params)
    return _grey(rng)


def _blob(rng, centre, radius: float) -> np.ndarray:
    """(N, 2) int32 points of an irregular polygon around ``centre``."""
    n = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.5, 1.0, n)
    pts = np.asarray(centre) + radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
    return np.round(pts).astype(np.int32)


def _background(rng: np.random.Generator, params: SceneParams) -> np.ndarray:
    """(size, size, 3) float32: a smooth grey field, random lines and blobs (not objects)."""
    size = params.image_size
    cells = int(rng.integers(2, 5))
    t = cv2.resize(
        rng.random((cells, cells)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC
    )
    t = np.clip(t, 0.0, 1.0)[..., None]
    image = _grey(rng) * (1 - t) + _grey(rng) * t
    for _ in range(int(rng.integers(*params.num_lines_range))):
        p, q = rng.integers(0, size, 2), rng.integers(0, size, 2)
        thickness = int(rng.integers(1, 4))
        colour = _clutter_colour(rng, params).tolist()
        cv2.line(image, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, thickness)
    for _ in range(int(rng.integers(*params.num_blobs_range))):
        pts = _blob(rng, rng.uniform(0, size, 2), rng.uniform(5, 14))
        cv2.fillPoly(image, [pts], _clutter_colour(rng, params).tolist())
    return image


def _shape_mask(shape, params: SceneParams, centre, radius, aspect, angle):
    """In-image bool mask of a shape and its full (unclipped) area, via a padded canvas."""
    if shape == "bar" and params.bar_half_width != BAR_HALF_WIDTH:
        # Thicken across the bar, keep its length: render_shape scales x by
        # radius * sqrt(aspect) and y by radius / sqrt(aspect).
        thicker = params.bar_half_width / BAR_HALF_WIDTH
        radius, aspect = radius * np.sqrt(thicker), aspect / thicker
    size = params.image_size
    pad = int(np.ceil(2 * radius * max(aspect, 1 / aspect))) + 2
    full = render_shape(
        shape,
        (size + 2 * pad, size + 2 * pad),
        tuple(np.asarray(centre) + pad),
        radius,
        aspect,
        angle,
    )
    return full[pad : pad + size, pad : pad + size].astype(bool), int(full.sum())


def _extent(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    return max(xs.max() - xs.min(), ys.max() - ys.min()) + 1.0


def _random_pose(rng, params: SceneParams):
    radius = rng.uniform(*params.radius_range)
    aspect = float(np.exp(rng.uniform(*np.log(params.aspect_range))))
    return rng.uniform(0, params.image_size, 2), radius, aspect, rng.uniform(0, 2 * np.pi)


def _front_pose(rng, front_shape, back_pose, back_mask, params: SceneParams):
    """A pose for the front of a stack: nearly the back's centre, its box a fraction of the
    back's box (the shapes' outlines differ, so the radius is rescaled to match extents)."""
    centre, radius, _, _ = back_pose
    offset = rng.normal(0.0, params.stack_max_offset / 2, 2).clip(
        -params.stack_max_offset, params.stack_max_offset
    )
    aspect = float(np.exp(rng.uniform(*np.log(params.aspect_range))))
    angle = rng.uniform(0, 2 * np.pi)
    centre = np.asarray(centre) + radius * offset
    probe, _ = _shape_mask(front_shape, params, centre, radius, aspect, angle)
    if not probe.any() or not back_mask.any():
        return None
    scale = rng.uniform(*params.stack_scale_range) * _extent(back_mask) / _extent(probe)
    return centre, radius * scale, aspect, angle


def _paint(rng, colour: np.ndarray, mask: np.ndarray, params: SceneParams) -> np.ndarray:
    """(P, 3) texture of the P pixels of ``mask``: the colour under a random linear ramp, and
    sometimes black or white stripes, so an object is not one colour."""
    ys, xs = np.nonzero(mask)
    ys, xs = ys / mask.shape[0] - 0.5, xs / mask.shape[1] - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys)[:, None]
    texture = colour + rng.uniform(0, params.shading) * 2 * ramp
    if rng.random() < params.stripes_probability:
        second = rng.choice([25.0, 235.0]) + rng.normal(0.0, params.colour_jitter, 3)
        if params.stripe_shade is not None:  # the same draws, so the scenes pair image by image
            second = colour * params.stripe_shade
        angle, period = rng.uniform(0, np.pi), rng.uniform(5, 9) / mask.shape[0]
        phase = (np.cos(angle) * xs + np.sin(angle) * ys) / period
        texture = np.where((phase - np.floor(phase) < 0.35)[:, None], second, texture)
    return texture


def _accessory(rng, image: np.ndarray, mask: np.ndarray, colour, params: SceneParams) -> None:
    """Paint a small blob centred on the outline of ``mask`` (in place), often in the object's
    own colour ``colour``.

    Drawn before the object, so the object covers half of it: what sticks out touches the
    object and may share its colour, but is not part of it.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = np.concatenate([c[:, 0, :] for c in contours])
    centre = outline[int(rng.integers(len(outline)))]
    radius = rng.uniform(0.25, 0.45) * np.sqrt(mask.sum() / np.pi)
    if rng.random() < params.accessory_same_colour_probability:
        fill = colour + rng.normal(0.0, params.colour_jitter, 3)
    else:
        fill = _clutter_colour(rng, params)
    cv2.fillPoly(image, [_blob(rng, centre, radius)], np.clip(fill, 0, 255).tolist())


class _Canvas:
    """The image and its objects while they are placed, with the acceptance rules."""

    def __init__(self, rng, params: SceneParams):
        self.rng, self.params = rng, params
        self.image = _background(rng, params)
        self.objects: List[SceneObject] = []

    def fits(self, mask: np.ndarray, full_area: int, colour: np.ndarray, whole=False) -> bool:
        """Whether an object may be painted at ``mask``: mostly inside the image (wholly if
        ``whole``), leaving every earlier object visible enough, and contrasting with what lies
        under it on average."""
        p = self.params
        if mask.sum() < max(p.min_area, p.min_in_image_fraction * full_area):
            return False
        if whole and mask.sum() < full_area:
            return False
        return self.keeps_others_visible(mask) and (
            np.abs(colour - self.image[mask].mean(axis=0)).max() >= p.min_contrast
        )

    def keeps_others_visible(self, mask: np.ndarray) -> bool:
        """Whether painting ``mask`` leaves every earlier object visible enough, and every
        object kept whole untouched."""
        p = self.params
        return all(
            (o.visible_mask & ~mask).sum()
            >= max(p.min_area, p.min_visible_fraction * o.full_mask.sum())
            and not (o.whole and (o.visible_mask & mask).any())
            for o in self.objects
        )

    def paint(
        self, class_index: int, mask: np.ndarray, colour: np.ndarray, role: str, whole=False
    ) -> None:
        if self.rng.random() < self.params.accessory_probability:
            _accessory(self.rng, self.image, mask, colour, self.params)
        self.image[mask] = _paint(self.rng, colour, mask, self.params)
        for o in self.objects:
            o.visible_mask &= ~mask
        self.objects.append(SceneObject(int(class_index), mask, mask.copy(), role, whole))


def _place_single(canvas: _Canvas, classes, k: int) -> bool:
    params, rng = canvas.params, canvas.rng
    colour = _class_colour(rng, PALETTE[classes[k][1]], params)
    whole = classes[k][0] in params.whole_shapes
    for _ in range(params.max_tries):
        mask, area = _shape_mask(classes[k][0], params, *_random_pose(rng, params))
        if canvas.fits(mask, area, colour, whole):
            canvas.paint(k, mask, colour, "single", whole)
            return True
    return False


def _place_stack(canvas: _Canvas, classes, first: int, second: int) -> bool:
    """Paint ``first`` and, on top of it with nearly the same box, ``second``; when no pose
    works the other way round is tried too (a dense shape cannot lie on a sparse one and leave
    it visible enough). A shape kept whole (``whole_shapes``) is only ever the front."""
    params, rng = canvas.params, canvas.rng
    colours = {k: _class_colour(rng, PALETTE[classes[k][1]], params) for k in (first, second)}
    for attempt in range(params.max_tries):
        back, front = (first, second) if attempt % 2 == 0 else (second, first)
        if classes[back][0] in params.whole_shapes:
            continue
        front_whole = classes[front][0] in params.whole_shapes
        pose = _random_pose(rng, params)
        back_mask, back_area = _shape_mask(classes[back][0], params, *pose)
        if not canvas.fits(back_mask, back_area, colours[back]):
            continue
        front_pose = _front_pose(rng, classes[front][0], pose, back_mask, params)
        if front_pose is None:
            continue
        front_mask, front_area = _shape_mask(classes[front][0], params, *front_pose)
        # The back must stay recognisable around the front, and every earlier object visible.
        back_visible = (back_mask & ~front_mask).sum()
        if back_visible < max(params.min_area, params.stack_back_visible_fraction * back_area):
            continue
        if front_mask.sum() < params.min_in_image_fraction * front_area:
            continue
        if front_whole and front_mask.sum() < front_area:
            continue
        if not canvas.keeps_others_visible(front_mask | back_mask):
            continue
        if np.abs(colours[front] - colours[back]).max() < params.min_contrast:
            continue
        canvas.paint(back, back_mask, colours[back], "back")
        canvas.paint(front, front_mask, colours[front], "front", front_whole)
        return True
    return False


def render_scene(
    rng: np.random.Generator,
    classes: Sequence[Tuple[str, str]],
    units: Sequence[Tuple[int, Optional[int]]],
    params: SceneParams = SceneParams(),
) -> Tuple[np.ndarray, List[SceneObject]]:
    """Draw one image with the given units (when they can be placed).

    Args:
        rng: the image's own generator (determinism).
        classes: (shape name, colour name) of each class index.
        units: a pair of class indices for a stack (either may end up in front), or
            ``(k, None)`` for one object; painted in order (later units occlude earlier ones).
            The two classes of a stack must have different colours.
        params: geometry and appearance knobs.

    Returns:
        the (S, S, 3) uint8 RGB image and its objects. A unit that found no valid pose in
        ``max_tries`` is left out (rare).
    """
    canvas = _Canvas(rng, params)
    for first, second in units:
        if second is None:
            _place_single(canvas, classes, first)
        elif classes[first][1] == classes[second][1]:
            raise ValueError(f"a stack needs two colours, got {classes[first]}, {classes[second]}")
        else:
            _place_stack(canvas, classes, first, second)
    image = canvas.image + rng.normal(0.0, params.noise_std, canvas.image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), canvas.objects
