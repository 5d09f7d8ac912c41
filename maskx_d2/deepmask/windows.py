"""Where DeepMask's windows lie: one pyramid scale of a batch, and its grid of windows.

At scale s the batch (N, 3, H, W) is resized to (H_s, W_s) = round(s H), round(s W) and padded
with zeros (the mean colour, after normalisation) by half a patch P/2 before and at least P/2
after, to a multiple of the trunk's stride t. A window of P x P pixels is then w = P / t cells
of the trunk's map; window (i, j), i.e. cells [i, i + w) x [j, j + w), is centred on the point
(x, y) = (t j, t i) of the resized image: the windows are centred on the stride-t grid, as far
out as the image's borders (the published code pads the same way). A map of R x C cells has
(R - w + 1) x (C - w + 1) windows, flattened row-major (index i * cols + j).

Three coordinate frames: the padded tensor the trunk reads (for RoIAlign), the resized image
(for the training labels: patch pixels) and the network input (boxes, masks, outputs).
"""

import math
from dataclasses import dataclass
from typing import Sequence, Tuple

import torch
from torch.nn import functional as F

__all__ = ["PyramidLevel", "fitting_windows", "resize_and_pad", "window_grid"]


@dataclass(frozen=True)
class PyramidLevel:
    """One scale of a batch: ``scale_y``, ``scale_x`` (resized / input size, per axis, after
    rounding), ``rows``, ``cols`` (windows), ``patch`` P and ``stride`` t in pixels."""

    scale_y: float
    scale_x: float
    rows: int
    cols: int
    patch: int
    stride: int

    def centres(self, device=None) -> torch.Tensor:
        """(rows * cols, 2) window centres (x, y) in pixels of the resized image."""
        ys = torch.arange(self.rows, device=device, dtype=torch.float32) * self.stride
        xs = torch.arange(self.cols, device=device, dtype=torch.float32) * self.stride
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([x.flatten(), y.flatten()], dim=1)

    def padded_boxes(self, index: torch.Tensor) -> torch.Tensor:
        """(K, 4) XYXY boxes, in pixels of the padded tensor, of windows ``index`` (K,): exactly
        their w x w cells (RoIAlign with ``aligned=True`` and one sample per bin reads the cells
        themselves)."""
        y0 = torch.div(index, self.cols, rounding_mode="floor").float() * self.stride
        x0 = (index % self.cols).float() * self.stride
        return torch.stack([x0, y0, x0 + self.patch, y0 + self.patch], dim=1)

    def input_boxes(self, index: torch.Tensor) -> torch.Tensor:
        """(K, 4) XYXY boxes of windows ``index`` (K,) on the network input: the P x P patch
        around each centre, divided by the scale (they may reach outside the image)."""
        centres = self.centres(index.device)[index]
        half = self.patch / 2
        scale = centres.new_tensor([self.scale_x, self.scale_y])
        return torch.cat([(centres - half) / scale, (centres + half) / scale], dim=1)

    def inside(self, image_size: Tuple[int, int], device=None) -> torch.Tensor:
        """(rows * cols,) bool: the window's centre lies on the image (height, width), not on the
        batch's padding."""
        centres = self.centres(device)
        height, width = image_size
        return (centres[:, 0] < width * self.scale_x) & (centres[:, 1] < height * self.scale_y)

    def nearest(self, points: torch.Tensor) -> torch.Tensor:
        """(K,) index of the window whose centre is nearest each point (K, 2) (x, y) of the
        network input."""
        scale = points.new_tensor([self.scale_x, self.scale_y])
        grid = torch.round(points * scale / self.stride).long()
        col = grid[:, 0].clamp(0, self.cols - 1)
        row = grid[:, 1].clamp(0, self.rows - 1)
        return row * self.cols + col


def resize_and_pad(images: torch.Tensor, scale: float, patch: int, stride: int):
    """The batch at one pyramid scale, ready for the trunk.

    Args:
        images: (N, 3, H, W) normalised images (zero = the mean colour).
        scale: the pyramid scale s.
        patch, stride: P and t; P must be a multiple of t.
    Returns:
        (padded (N, 3, H', W'), scale_y, scale_x), H' and W' multiples of t.
    """
    height, width = images.shape[-2:]
    resized_h, resized_w = max(1, round(height * scale)), max(1, round(width * scale))
    if (resized_h, resized_w) != (height, width):
        # Antialiasing when shrinking: a 4x smaller image without it aliases thin structures.
        images = F.interpolate(
            images,
            size=(resized_h, resized_w),
            mode="bilinear",
            align_corners=False,
            antialias=scale < 1,
        )
    half = patch // 2
    bottom = math.ceil((resized_h + patch) / stride) * stride - resized_h - half
    right = math.ceil((resized_w + patch) / stride) * stride - resized_w - half
    padded = F.pad(images, (half, right, half, bottom))
    return padded, resized_h / height, resized_w / width


def window_grid(feature_shape, window: int, scale_y: float, scale_x: float, patch: int, stride):
    """The :class:`PyramidLevel` of a trunk map of ``feature_shape`` (..., R, C) read in windows
    of ``window`` cells."""
    rows, cols = feature_shape[-2] - window + 1, feature_shape[-1] - window + 1
    return PyramidLevel(scale_y, scale_x, rows, cols, patch, stride)


def fitting_windows(levels: Sequence[PyramidLevel], boxes: torch.Tensor, object_size: float):
    """(B, 2) (level index, window index): for each box (B, 4) XYXY on the network input, the
    level where its larger side is nearest ``object_size`` (log scale), and that level's window
    nearest its centre: the window the model would propose for the box's object."""
    sizes = boxes[:, 2:] - boxes[:, :2]  # (B, 2)
    factors = boxes.new_tensor([[lv.scale_x, lv.scale_y] for lv in levels])  # (levels, 2)
    larger_sides = (sizes[:, None, :] * factors[None]).max(dim=2).values.clamp(min=1e-6)
    level_index = torch.log2(larger_sides / object_size).abs().argmin(dim=1)  # (B,)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    index = torch.stack([lv.nearest(centres) for lv in levels], dim=1)  # (B, levels)
    return torch.stack([level_index, index.gather(1, level_index[:, None])[:, 0]], dim=1)
