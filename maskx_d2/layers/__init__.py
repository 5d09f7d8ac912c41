"""Layers shared by every model of the project."""

from .roi_align import (
    ROI_ALIGN_BACKWARDS,
    ROIAlignSeparableBackward,
    roi_align_axis_weights,
    roi_align_separable_backward,
    roi_align_torchvision_backward,
    separable_backward_is_cheaper,
    use_separable_roi_align_backward,
)

__all__ = [
    "ROI_ALIGN_BACKWARDS",
    "ROIAlignSeparableBackward",
    "roi_align_axis_weights",
    "roi_align_separable_backward",
    "roi_align_torchvision_backward",
    "separable_backward_is_cheaper",
    "use_separable_roi_align_backward",
]
