#!/usr/bin/env python
"""RoIAlign's CPU backward: torchvision's kernel against the separable products of
maskx_d2/layers/roi_align.py, on the feature maps of the synthetic benchmark and of COCO.

    python bench/bench_roi_align_backward.py [--threads 2] [--repeats 5]

For each case: the backward's time with each, the largest gradient difference, and which one
``MODEL.ROI_ALIGN_BACKWARD "auto"`` picks (:func:`separable_backward_is_cheaper`). The
crossover constant of that choice was set from this table. Prints a markdown table.
"""

import argparse
import time

import torch
from maskx_d2.layers import (
    roi_align_separable_backward,
    roi_align_torchvision_backward,
    separable_backward_is_cheaper,
)

# (label, images, channels, map height, map width, stride, RoIs, largest RoI side in pixels)
CASES = [
    ("synthetic p2: 128 px images, 4 x 64 box RoIs", 4, 64, 32, 32, 4, 256, 60),
    ("synthetic p3", 4, 64, 16, 16, 8, 256, 120),
    ("synthetic p2, 64 mask RoIs", 4, 64, 32, 32, 4, 64, 60),
    ("256 px images, p2", 4, 64, 64, 64, 4, 256, 120),
    ("COCO p5: 800 x 1280, 2 x 512 RoIs", 2, 256, 25, 40, 32, 1024, 400),
    ("COCO p4", 2, 256, 50, 80, 16, 1024, 200),
    ("COCO p3", 2, 256, 100, 160, 8, 1024, 100),
]


def random_rois(images, count, width_px, height_px, largest, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(count, 2, generator=generator) * torch.tensor([width_px, height_px])
    sizes = torch.rand(count, 2, generator=generator) * (largest - 4) + 4
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], 1)
    image = torch.randint(0, images, (count, 1), generator=generator).float()
    return torch.cat([image, boxes], 1)


def time_backward(backward, grad_output, rois, features_shape, scale, repeats):
    """Mean seconds of one backward, and the gradient."""
    backward(grad_output, rois, features_shape, scale, 0, True)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        grad = backward(grad_output, rois, features_shape, scale, 0, True)
    return (time.perf_counter() - start) / repeats, grad


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, {args.threads} threads, CPU capability {capability}")
    print()
    print(
        "| case | map | RoIs | torchvision ms | separable ms | ratio | max grad diff | auto picks |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, images, channels, height, width, stride, count, largest in CASES:
        shape = (images, channels, height, width)
        rois = random_rois(images, count, width * stride, height * stride, largest)
        grad_output = torch.randn(count, channels, 7, 7)
        scale = 1.0 / stride
        timed = [
            time_backward(backward, grad_output, rois, shape, scale, args.repeats)
            for backward in (roi_align_torchvision_backward, roi_align_separable_backward)
        ]
        (tv_s, tv_grad), (sep_s, sep_grad) = timed
        picks = separable_backward_is_cheaper(rois, (height, width), (7, 7), scale, 0, True)
        print(
            f"| {label} | {channels} x {height} x {width} | {count} | {tv_s * 1e3:.1f} | "
            f"{sep_s * 1e3:.1f} | {sep_s / tv_s:.2f} | {(sep_grad - tv_grad).abs().max():.1e} | "
            f"{'separable' if picks else 'torchvision'} |"
        )


if __name__ == "__main__":
    main()
