#!/usr/bin/env python
"""Training and inference speed / memory of Mask^X R-CNN against detectron2's plain Mask R-CNN.

Same backbone, same inputs, same batch, one run. Variants:
  - ``mask_rcnn``: detectron2's StandardROIHeads + MaskRCNNConvUpsampleHead (class-specific),
  - ``transfer``: MaskXROIHeads + MaskXMaskHead, transfer (cls+box, 2-layer T),
  - ``transfer+mlp``: the same + the class-agnostic MLP branch.
Each variant runs in its own process (peak memory: the process's peak RSS above its imports
on CPU, model and optimizer state included; torch.cuda.max_memory_allocated on GPU) on the same
random images and ground truth, every instance with a mask, so all variants do the same mask
work (``--box-only-fraction`` gives the Mask^X variants box-only instances, which only makes
them cheaper). At inference the score threshold is 0, so every variant masks exactly
TEST.DETECTIONS_PER_IMAGE detections per image. Prints ms per training iteration, peak memory and
ms per image at inference, and the ratios to plain Mask R-CNN.

    python bench/bench_speed_vs_mask_rcnn.py                       # CPU, small R-18 config
    python bench/bench_speed_vs_mask_rcnn.py --device cuda --size 800 1333 --batch 8 --amp \
        --config configs/Base-MaskX-RCNN-FPN.yaml                 # R-50-FPN, paper input size
"""

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np

VARIANTS = ("mask_rcnn", "transfer", "transfer+mlp")


def _batch(num_images, size, num_classes, device, box_only_fraction, gen):
    import torch
    from detectron2.structures import Boxes, Instances, PolygonMasks

    h, w = size
    batch = []
    for _ in range(num_images):
        n = 8
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.7, h * 0.7])
        wh = 20 + torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.25, h * 0.25])
        boxes = torch.cat([xy, xy + wh], dim=1)
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(boxes)
        inst.gt_classes = torch.randint(0, num_classes, (n,), generator=gen)
        inst.gt_masks = PolygonMasks(
            [[[b[0], b[1], b[2], b[1], b[2], b[3]]] for b in boxes.tolist()]
        )
        if box_only_fraction > 0:
            inst.gt_has_mask = torch.rand(n, generator=gen) >= box_only_fraction
        image = torch.rand(3, h, w, generator=gen) * 255
        batch.append(
            {"image": image.to(device), "instances": inst.to(device), "height": h, "width": w}
        )
    return batch


def _measure(variant, args, queue):
    import torch
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from detectron2.solver import build_optimizer
    from detectron2.utils.events import EventStorage

    from maskx_d2 import add_maskx_config

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after imports, before the model
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(args.config)
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # same number of masked detections for all
    if variant == "mask_rcnn":
        cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
        cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
        cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    else:
        cfg.MODEL.MASKX.MASK_PREDICTOR = "transfer"
        cfg.MODEL.MASKX.MLP_BRANCH.ENABLED = variant == "transfer+mlp"
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer = build_optimizer(cfg, model)
    gen = torch.Generator().manual_seed(0)
    batch = _batch(
        args.batch,
        args.size,
        cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        args.device,
        0.0 if variant == "mask_rcnn" else args.box_only_fraction,
        gen,
    )
    cuda = args.device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def train_step():
        with torch.autocast("cuda", enabled=args.amp and cuda):
            losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()

    with EventStorage():
        for _ in range(args.warmup):
            train_step()
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(args.iters):
            train_step()
        sync()
        train_ms = (time.perf_counter() - start) / args.iters * 1000
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    )
    model.eval()
    inputs = [{k: v for k, v in b.items() if k != "instances"} for b in batch[:1]]
    with torch.no_grad(), torch.autocast("cuda", enabled=args.amp and cuda):
        for _ in range(args.warmup):
            model(inputs)
        sync()
        start = time.perf_counter()
        for _ in range(args.iters):
            model(inputs)
        sync()
    infer_ms = (time.perf_counter() - start) / args.iters * 1000
    queue.put((train_ms, peak, infer_ms))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/Synthetic/Base-Synthetic-R-18-FPN.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument(
        "--box-only-fraction",
        type=float,
        default=0.0,
        help="fraction of box-only instances for the Mask^X variants",
    )
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    # Rounds interleave the variants and the median is reported, so drift of a shared machine
    # over the run does not favour whichever variant ran at a quiet moment.
    runs = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            queue = ctx.Queue()
            proc = ctx.Process(target=_measure, args=(variant, args, queue))
            proc.start()
            proc.join()
            runs[variant].append(queue.get() if proc.exitcode == 0 else (float("nan"),) * 3)
    results = {v: tuple(float(np.median(col)) for col in zip(*r)) for v, r in runs.items()}
    print(
        f"config={args.config} device={args.device} batch={args.batch} size={args.size} "
        f"amp={args.amp} iters={args.iters} rounds={args.rounds} (medians)"
    )
    print(
        f"{'variant':>14} {'train ms/it':>12} {'peak MB':>9} {'infer ms/img':>13} "
        f"{'train x':>8} {'mem x':>7} {'infer x':>8}"
    )
    base = results["mask_rcnn"]
    for variant, (t, m, i) in results.items():
        print(
            f"{variant:>14} {t:>12.1f} {m:>9.1f} {i:>13.1f} {t / base[0]:>8.3f} "
            f"{m / base[1]:>7.3f} {i / base[2]:>8.3f}"
        )


if __name__ == "__main__":
    main()
