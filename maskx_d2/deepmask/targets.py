"""DeepMask's training targets: which windows are positives, and the scale an image trains at.

Pure tensor functions. Shape letters: L windows of one image at one scale, G its ground-truth
instances. Lengths are in pixels of the resized image ("patch pixels"), where a window is
``patch`` pixels wide and the canonical object ``object_size``.
"""

import math
from typing import Sequence

import torch

__all__ = ["NEGATIVE", "IGNORE", "choose_scale", "fitting", "label_windows"]

NEGATIVE, IGNORE = 0, -1  # window labels; a positive is 1 (detectron2's subsample_labels' use)


def fitting(
    centres: torch.Tensor,
    boxes: torch.Tensor,
    *,
    patch: float,
    object_size: float,
    center_tolerance: float,
    scale_tolerance: float,
) -> torch.Tensor:
    """(L, G) bool: window l would be a positive of instance g.

    Args:
        centres: (L, 2) window centres (x, y).
        boxes: (G, 4) XYXY instance boxes, in the same pixels.
    The instance's box centre is within ``center_tolerance`` of the window's centre along x and
    along y, its larger side within ``object_size`` x 2^(+-``scale_tolerance``), and its box lies
    entirely inside the window.
    """
    box_centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # (G, 2)
    offset = (centres[:, None, :] - box_centres[None]).abs()  # (L, G, 2)
    centred = (offset <= center_tolerance).all(dim=2)
    larger_side = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values.clamp(min=1e-6)
    scaled = (torch.log2(larger_side / object_size).abs() <= scale_tolerance)[None]
    half = patch / 2
    low, high = centres[:, None, :] - half, centres[:, None, :] + half  # (L, 1, 2)
    inside = ((boxes[None, :, :2] >= low) & (boxes[None, :, 2:] <= high)).all(dim=2)
    return centred & scaled & inside


def label_windows(
    centres: torch.Tensor,
    boxes: torch.Tensor,
    is_object: torch.Tensor,
    is_ignored: torch.Tensor,
    **fit,
):
    """Labels of an image's windows.

    Args:
        centres: (L, 2); boxes: (G, 4), as for :func:`fitting`.
        is_object: (G,) bool, the instances a window may be a positive of.
        is_ignored: (G,) bool, instances whose windows are neither positive nor negative.
            An instance in neither set is background: its windows are negatives.
        fit: the keyword arguments of :func:`fitting`.
    Returns:
        labels (L,) int64: 1 positive, :data:`NEGATIVE` or :data:`IGNORE`; matched (L,) int64: the
        instance of each positive (the one with the nearest centre when several fit), -1 elsewhere.
    """
    num_windows = len(centres)
    labels = torch.full((num_windows,), NEGATIVE, dtype=torch.long, device=centres.device)
    matched = torch.full_like(labels, -1)
    if len(boxes) == 0:
        return labels, matched
    fits = fitting(centres, boxes, **fit)
    labels[(fits & is_ignored[None]).any(dim=1)] = IGNORE
    positive_fits = fits & is_object[None]
    distance = torch.cdist(centres, (boxes[:, :2] + boxes[:, 2:]) / 2)  # (L, G)
    nearest = distance.masked_fill(~positive_fits, math.inf).argmin(dim=1)
    positive = positive_fits.any(dim=1)
    labels[positive] = 1
    matched[positive] = nearest[positive]
    return labels, matched


def choose_scale(
    boxes: torch.Tensor, is_object: torch.Tensor, scales: Sequence[float], object_size: float
) -> int:
    """Index into ``scales`` of the scale an image trains at: the one that brings a random object
    (``is_object``; boxes (G, 4) on the network input) nearest to ``object_size`` (log scale), so
    that every image holds positives; a uniformly random scale when it has no object. The other
    instances give the negatives of wrong scales. Random numbers from torch's generator."""
    candidates = is_object.nonzero().squeeze(1)
    if len(candidates) == 0:
        return int(torch.randint(len(scales), ()).item())
    box = boxes[candidates[torch.randint(len(candidates), ()).item()]]
    larger_side = max(float((box[2:] - box[:2]).max()), 1e-6)
    wanted = math.log2(object_size / larger_side)
    return min(range(len(scales)), key=lambda k: abs(math.log2(scales[k]) - wanted))
