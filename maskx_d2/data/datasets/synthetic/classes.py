"""The classes of the synthetic shapes v2 and their A/B splits.

A class is a (shape, colour) pair: 4 shapes times 4 colours, named ``<colour>_<shape>``, with
category ids 1..16 in :data:`SYNTHETIC_CLASSES` order. With as many shapes as colours, the chess
board split gives A and B the same number of classes of every shape and of every colour.
"""

import numpy as np

from .scene import PALETTE

__all__ = [
    "A12_MASK_CLASSES",
    "BAND_MASK_CLASSES",
    "class_attributes",
    "CLASS_PARTS",
    "COLOUR_NAMES",
    "SHAPE_NAMES",
    "SHIFTED_MASK_CLASSES",
    "STACK_SHAPES",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_MASK_CLASSES",
]

SHAPE_NAMES = ("circle", "ring", "cross", "bar")
# Shapes that form stacks: two objects of one of these shapes and different colours, one on the
# other. A stack never mixes shapes, so a detector cannot pair one object's shape with the
# other's colour; circles do not stack (one on another of nearly its size hides it).
STACK_SHAPES = ("ring", "cross", "bar")
COLOUR_NAMES = tuple(PALETTE)  # red, yellow, green, blue
# (shape, colour) of each class, in category id order.
CLASS_PARTS = [(shape, colour) for shape in SHAPE_NAMES for colour in COLOUR_NAMES]
SYNTHETIC_CLASSES = [f"{colour}_{shape}" for shape, colour in CLASS_PARTS]
# Set A of the main split: a chess board over (shape, colour), so each shape and each colour has
# two classes in A and two in B.
SYNTHETIC_MASK_CLASSES = [
    name
    for name, (shape, colour) in zip(SYNTHETIC_CLASSES, CLASS_PARTS)
    if (SHAPE_NAMES.index(shape) + COLOUR_NAMES.index(colour)) % 2 == 0
]
# Set A of the appearance-shifted split: two colours have masks, the other two boxes only.
SHIFTED_MASK_CLASSES = [
    name for name, (_, colour) in zip(SYNTHETIC_CLASSES, CLASS_PARTS) if colour in ("red", "yellow")
]
# Set A of the twelve-class split: every class has masks except one of each shape and of each
# colour (colour index = shape index + 1 mod 4), so T learns from 12 classes instead of 8. Those
# four box-only classes are all in the main split's B, so their masks can be compared between
# the two splits class by class.
A12_MASK_CLASSES = [
    name
    for name, (shape, colour) in zip(SYNTHETIC_CLASSES, CLASS_PARTS)
    if COLOUR_NAMES.index(colour) != (SHAPE_NAMES.index(shape) + 1) % len(COLOUR_NAMES)
]

# Set A of the band split: the classes whose colour index is their shape index or the next one
# (mod 4). Like the chess board, every shape and every colour has two classes in A and two in B,
# but the graph that links each shape to the colours it has in A is one cycle through all 8
# shapes and colours, where the chess board's falls into two parts (even shapes with even
# colours, odd with odd). So a box-only class's (shape, colour) is an additive combination of
# A's: w(s, c) = w(s, c') - w(s', c') + w(s', c) along the cycle. On the chess board nothing in A
# fixes the offset between the two parts, and a transfer function fitted on A must guess it.
BAND_MASK_CLASSES = [
    name
    for name, (shape, colour) in zip(SYNTHETIC_CLASSES, CLASS_PARTS)
    if (COLOUR_NAMES.index(colour) - SHAPE_NAMES.index(shape)) % len(COLOUR_NAMES) in (0, 1)
]


def class_attributes() -> np.ndarray:
    """(16, 8) float32: each class's shape as a one-hot over :data:`SHAPE_NAMES` followed by its
    colour as a one-hot over :data:`COLOUR_NAMES`, rows in :data:`SYNTHETIC_CLASSES` order.

    The synthetic counterpart of the paper's GloVe vectors (Table 1a): a description of the class
    that does not come from the detector. It is exactly compositional, so a transfer function fed
    with it can give a box-only class mask weights from its shape's and its colour's share alone
    (``MODEL.MASKX.TRANSFER.INPUT: embedding`` with this array saved as EMBEDDING_FILE)."""
    attributes = np.zeros((len(CLASS_PARTS), len(SHAPE_NAMES) + len(COLOUR_NAMES)), np.float32)
    for row, (shape, colour) in enumerate(CLASS_PARTS):
        attributes[row, SHAPE_NAMES.index(shape)] = 1.0
        attributes[row, len(SHAPE_NAMES) + COLOUR_NAMES.index(colour)] = 1.0
    return attributes
