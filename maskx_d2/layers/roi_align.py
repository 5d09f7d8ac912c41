"""RoIAlign whose CPU backward is two matrix products: the same gradients, 3x faster here.

torchvision's CPU ``roi_align`` backward walks every RoI, channel, output cell and sample on one
thread and recomputes the bilinear weights for each channel: in the main job's training
(ResNet-18-FPN on 128 x 128 images) it took about a fifth of every step, more than the
backbone's forward (docs/benchmarks.md, "Where a training step goes"). Its forward is fast and is
kept; only the backward is replaced.

RoIAlign is separable. For a RoI r on an (H, W) map, each output cell averages bilinear samples
on a regular grid, and a bilinear weight is a product of a weight along y and one along x (the
sample's validity too: torchvision drops a sample when y or x is out of range). So

    out[r, c, p, q] = sum_{h, w} Ay[r, p, h] * x[b(r), c, h, w] * Ax[r, q, w]

with Ay (R, Ph, H) holding, for each output row p, the interpolation weights of its samples'
y coordinates divided by their number, and Ax (R, Pw, W) the same along x (the division by
torchvision's sample count gh * gw splits into 1 / gh and 1 / gw). The gradient of x is then
Ay^T (grad Ax) per image: two dense products, which BLAS runs on every core. Their cost,
R * Ph * H * W * C multiply-adds, grows with the map's area while torchvision's grows with the
samples, so on large maps (COCO-sized images) torchvision's backward is used
(:func:`separable_backward_is_cheaper`). On CUDA, and without gradients, nothing changes.
"""

from typing import Tuple

import torch
from detectron2.layers import ROIAlign
from torch import nn
from torch.nn.modules.utils import _pair
from torchvision.ops import roi_align

__all__ = [
    "ROI_ALIGN_BACKWARDS",
    "ROIAlignSeparableBackward",
    "roi_align_axis_weights",
    "roi_align_separable_backward",
    "roi_align_torchvision_backward",
    "separable_backward_is_cheaper",
    "use_roi_align_backward",
    "use_separable_roi_align_backward",
]

ROI_ALIGN_BACKWARDS = ("auto", "torchvision")

# The separable backward is used while H * W <= this * Pw * (mean samples per output cell).
# Measured on the 2-core CPU container (bench/bench_roi_align_backward.py): the products run at
# about 14 G multiply-adds per second, torchvision's backward at about 12 ns per sample and
# channel, so the two cost the same at about 170; 128 keeps the choice on the safe side.
CROSSOVER = 128


def roi_align_axis_weights(
    start: torch.Tensor, length: torch.Tensor, pooled: int, size: int, sampling_ratio: int
) -> torch.Tensor:
    """torchvision's RoIAlign sampling along one axis, as a matrix.

    Args:
        start: (R,) where each RoI starts on the axis, in feature-map cells, after the scale and
            (for aligned RoIAlign) the half-cell shift.
        length: (R,) the RoI's extent on the axis (for unaligned RoIAlign, at least 1).
        pooled: output cells along the axis.
        size: the feature map's cells along the axis.
        sampling_ratio: samples per output cell along the axis; 0: ceil(length / pooled).
    Returns:
        (R, pooled, size): entry [r, p, k] is the total bilinear weight that output cell p's
        samples give to map cell k, divided by their number (torchvision's average).
    """
    count = start.shape[0]
    bin_size = length / pooled
    if sampling_ratio > 0:
        grid = torch.full((count,), sampling_ratio, dtype=torch.long, device=start.device)
    else:
        grid = torch.ceil(bin_size).long()
    most = max(int(grid.max()) if count else 1, 1)
    cells = torch.arange(pooled, dtype=start.dtype, device=start.device)
    samples = torch.arange(most, dtype=start.dtype, device=start.device)
    spacing = (bin_size / grid.clamp(min=1))[:, None, None]
    # (R, pooled, most): every sample's coordinate; those past the RoI's own grid are dropped.
    position = (
        start[:, None, None]
        + cells[None, :, None] * bin_size[:, None, None]
        + (samples[None, None, :] + 0.5) * spacing
    )
    kept = (samples[None, None, :] < grid[:, None, None]) & (position >= -1.0)
    kept &= position <= size
    # torchvision's bilinear_interpolate: clamp at 0, and a sample at or past the last cell
    # reads that cell alone.
    position = position.clamp(min=0)
    low = position.floor().long()
    at_end = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(at_end, low, low + 1)
    fraction = torch.where(at_end, torch.zeros_like(position), position - low)
    scale = kept.to(start.dtype) / grid.clamp(min=1).to(start.dtype)[:, None, None]
    weights = torch.zeros(count, pooled, size, dtype=start.dtype, device=start.device)
    weights.scatter_add_(2, low, (1 - fraction) * scale)
    weights.scatter_add_(2, high, fraction * scale)
    return weights


def _roi_starts_and_lengths(rois: torch.Tensor, spatial_scale: float, aligned: bool):
    """(R, 5) RoIs -> (x start, y start, width, height), each (R,), in feature-map cells."""
    boxes = rois[:, 1:] * spatial_scale - (0.5 if aligned else 0.0)
    x1, y1, x2, y2 = boxes.unbind(1)
    width, height = x2 - x1, y2 - y1
    if not aligned:  # torchvision's legacy mode: at least one cell
        width, height = width.clamp(min=1), height.clamp(min=1)
    return x1, y1, width, height


def separable_backward_is_cheaper(
    rois: torch.Tensor,
    map_size: Tuple[int, int],
    pooled: Tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> bool:
    """Whether the two products cost less than torchvision's backward for these RoIs: the
    products cost R * Ph * H * W * C, torchvision's R * Ph * Pw * (samples per cell) * C times a
    larger constant (:data:`CROSSOVER`)."""
    if rois.shape[0] == 0:
        return True
    _, _, width, height = _roi_starts_and_lengths(rois, spatial_scale, aligned)
    if sampling_ratio > 0:
        samples = float(sampling_ratio * sampling_ratio)
    else:
        along_y = torch.ceil(height / pooled[0]).clamp(min=1)
        along_x = torch.ceil(width / pooled[1]).clamp(min=1)
        samples = float((along_y * along_x).mean())
    return map_size[0] * map_size[1] <= CROSSOVER * pooled[1] * samples


class _ROIAlignSeparableBackward(torch.autograd.Function):
    """torchvision's forward; the backward as Ay^T (grad Ax), or torchvision's when cheaper."""

    @staticmethod
    def forward(ctx, features, rois, pooled, spatial_scale, sampling_ratio, aligned):
        ctx.save_for_backward(rois)
        ctx.features_shape = features.shape
        ctx.settings = (pooled, spatial_scale, sampling_ratio, aligned)
        return roi_align(features, rois, pooled, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        pooled, spatial_scale, sampling_ratio, aligned = ctx.settings
        images, channels, height, width = ctx.features_shape
        grad_output = grad_output.contiguous()
        if separable_backward_is_cheaper(
            rois, (height, width), pooled, spatial_scale, sampling_ratio, aligned
        ):
            backward = roi_align_separable_backward
        else:
            backward = roi_align_torchvision_backward
        grad = backward(
            grad_output, rois, ctx.features_shape, spatial_scale, sampling_ratio, aligned
        )
        return grad, None, None, None, None, None


def roi_align_torchvision_backward(
    grad_output, rois, features_shape, spatial_scale, sampling_ratio, aligned
):
    """torchvision's kernel: (R, C, Ph, Pw) gradient of the output -> (N, C, H, W)."""
    images, channels, height, width = features_shape
    return torch.ops.torchvision._roi_align_backward(
        grad_output, rois, spatial_scale, grad_output.shape[2], grad_output.shape[3], images,
        channels, height, width, sampling_ratio, aligned,
    )  # fmt: skip


def roi_align_separable_backward(
    grad_output, rois, features_shape, spatial_scale, sampling_ratio, aligned
):
    """The two products: (R, C, Ph, Pw) gradient of the output -> (N, C, H, W)."""
    images, channels, height, width = features_shape
    pooled_h, pooled_w = grad_output.shape[2], grad_output.shape[3]
    x1, y1, roi_width, roi_height = _roi_starts_and_lengths(rois, spatial_scale, aligned)
    along_y = roi_align_axis_weights(y1, roi_height, pooled_h, height, sampling_ratio)
    along_x = roi_align_axis_weights(x1, roi_width, pooled_w, width, sampling_ratio)
    along_y, along_x = along_y.to(grad_output.dtype), along_x.to(grad_output.dtype)
    # (R, C, Ph, Pw) @ (R, 1, Pw, W) -> (R, C, Ph, W) -> (R, Ph, C, W)
    spread = (grad_output @ along_x[:, None]).transpose(1, 2)
    grad = grad_output.new_zeros(images, height, channels * width)
    image_of_roi = rois[:, 0].long()
    for image in range(images):
        mine = (image_of_roi == image).nonzero().squeeze(1)
        if mine.numel():
            # (H, R_i * Ph) @ (R_i * Ph, C * W): every RoI of the image at once.
            rows = along_y[mine].reshape(-1, height).t()
            grad[image] = rows @ spread[mine].reshape(-1, channels * width)
    return grad.view(images, height, channels, width).transpose(1, 2)


class ROIAlignSeparableBackward(ROIAlign):
    """detectron2's :class:`~detectron2.layers.ROIAlign` with the separable CPU backward; the
    same module otherwise (no parameters, same outputs, same state dict)."""

    def forward(self, input, rois):
        """As :meth:`ROIAlign.forward`: (N, C, H, W) features and (R, 5) RoIs (image index, then
        XYXY) -> (R, C, Ph, Pw)."""
        needs_grad = torch.is_grad_enabled() and input.requires_grad
        if input.is_cuda or input.is_quantized or not needs_grad:
            return super().forward(input, rois)
        assert rois.dim() == 2 and rois.size(1) == 5
        return _ROIAlignSeparableBackward.apply(
            input,
            rois.to(dtype=input.dtype),
            _pair(self.output_size),
            float(self.spatial_scale),
            int(self.sampling_ratio),
            bool(self.aligned),
        )


def use_separable_roi_align_backward(model: nn.Module) -> int:
    """Replace every detectron2 ``ROIAlign`` in ``model`` (the box, mask and BlendMask poolers)
    with :class:`ROIAlignSeparableBackward` of the same settings; returns how many."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is ROIAlign:
                setattr(
                    parent,
                    name,
                    ROIAlignSeparableBackward(
                        child.output_size, child.spatial_scale, child.sampling_ratio, child.aligned
                    ),
                )
                replaced += 1
    return replaced


def use_roi_align_backward(model: nn.Module, backward: str) -> int:
    """``MODEL.ROI_ALIGN_BACKWARD`` applied to a built model: "auto" swaps the separable backward
    into every pooler (:func:`use_separable_roi_align_backward`), "torchvision" keeps
    detectron2's modules. Returns how many were replaced."""
    if backward not in ROI_ALIGN_BACKWARDS:
        raise ValueError(
            f"MODEL.ROI_ALIGN_BACKWARD must be one of {ROI_ALIGN_BACKWARDS}, got {backward!r}"
        )
    return use_separable_roi_align_backward(model) if backward == "auto" else 0
