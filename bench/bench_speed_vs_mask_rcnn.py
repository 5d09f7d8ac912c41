#!/usr/bin/env python
"""Training and inference speed / memory of Mask^X R-CNN against detectron2's plain Mask R-CNN.

Same backbone, same inputs, same batch, one run. Variants:
  - ``mask_rcnn``: detectron2's StandardROIHeads + MaskRCNNConvUpsampleHead (class-specific),
  - ``transfer``: MaskXROIHeads + MaskXMaskHead, transfer (cls+box, 2-layer T),
  - ``transfer+mlp``: the same + the class-agnostic MLP branch;
  - with ``--variants``, the options beyond the paper on top of ``transfer``: ``+gt-boxes``
    (mask training on proposals and ground-truth boxes), ``+boxinst`` (BoxInst's two losses on
    box-only instances: give some with ``--box-only-fraction``), ``+boxinst-gentle`` (the
    benchmark's best combination: the projection loss, a quarter-weight pairwise loss on
    smoothed colours, GT-box mask training with box-only boxes padded), ``+residual`` (8
    residual blocks), ``+hourglass`` (Deep-MARC's hourglass-52 at the config's mask pooler size),
    ``+cam-prior`` (OPMask's class activation prior; the config's box convs, then global average
    pooling instead of its FCs: the config needs ROI_BOX_HEAD.NUM_CONV >= 1, as the default
    synthetic one has), ``+separable-roi-align`` (train_net.py's RoIAlign CPU backward; every
    other variant has torchvision's kernel, as detectron2);
  - with ``--variants``, another system on the same ResNet: ``blendmask`` (BlendMask on FCOS,
    with FCOS's P3-P7 FPN; BlendMask's paper claims about 20% less inference time than Mask
    R-CNN). Its box-only instances never reach the blender, like Mask^X's.
Each variant runs in its own process (peak memory: the process's peak RSS above its imports
on CPU, model and optimizer state included; torch.cuda.max_memory_allocated on GPU) on the same
random images and ground truth, every instance with a mask, so all variants do the same mask
work (``--box-only-fraction`` gives the Mask^X variants box-only instances, which only makes
them cheaper). At inference the score threshold is 0, so every variant masks exactly
TEST.DETECTIONS_PER_IMAGE detections per image. Prints ms per training iteration, peak memory and
ms per image at inference, and the ratios to plain Mask R-CNN.

    python bench/bench_speed_vs_mask_rcnn.py                       # CPU, small R-18 config
    python bench/bench_speed_vs_mask_rcnn.py --device cuda --size 800 1333 --batch max --amp \
        --config configs/Base-MaskX-RCNN-FPN.yaml                 # R-50-FPN, paper input size

``--batch max`` (GPU) doubles the batch from 2 until some variant runs out of memory and measures
at the largest batch all variants fit. On a GPU the script also estimates the paper's 90k-iteration
schedule on 1 and 8 GPUs from the measured times (see schedule_estimate.py for the assumptions).
"""

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time

import numpy as np
from config_keys import own_keys
from schedule_estimate import estimate_schedule

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BOXSUP_CONFIG = os.path.join(ROOT, "configs/Synthetic/maskx_boxsup_R_18_FPN_synthetic.yaml")

_MNC = [
    "MODEL.META_ARCHITECTURE",
    "GeneralizedRCNN",
    "MODEL.ROI_HEADS.NAME",
    "MNCROIHeads",
    "MODEL.ROI_MASK_HEAD.NAME",
    "MaskRCNNConvUpsampleHead",
    "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK",
    True,
]
# name -> config overrides on top of the Mask^X config (mask_rcnn: detectron2's own heads).
VARIANTS = {
    "mask_rcnn": None,
    "transfer": [],
    "transfer+mlp": ["MODEL.MASKX.MLP_BRANCH.ENABLED", True],
    "+gt-boxes": ["MODEL.MASKX.MASK_TRAIN_BOXES", "both"],
    "+boxinst": [
        "MODEL.MASKX.BOX_SUPERVISION.PROJECTION_WEIGHT",
        1.0,
        "MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WEIGHT",
        1.0,
    ],
    # The best combination on the embedded benchmark (docs/table1c_synthetic.md), read from its
    # config's own MODEL.MASKX keys: projection loss, pairwise loss x0.25 on 3 x 3-averaged
    # colours, mask training on proposals and GT boxes, box-only GT boxes padded by 50%. Without
    # its warm-up, so that the pairwise loss is computed from the first timed step.
    "+boxinst-gentle": [
        *own_keys(BOXSUP_CONFIG, "MODEL.MASKX"),
        "MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WARMUP_ITERS",
        0,
    ],
    # train_net.py's default RoIAlign CPU backward (maskx_d2/layers/roi_align.py); every other
    # variant, the baseline included, keeps torchvision's kernel, as detectron2 has it.
    "+separable-roi-align": ["MODEL.ROI_ALIGN_BACKWARD", "auto"],
    "+residual": ["MODEL.MASKX.HEAD.ARCHITECTURE", "residual"],
    "+hourglass": ["MODEL.MASKX.HEAD.ARCHITECTURE", "hourglass"],
    # The config's box convs become a ConvGAPBoxHead (needs ROI_BOX_HEAD.NUM_CONV >= 1).
    "+cam-prior": [
        "MODEL.ROI_BOX_HEAD.NAME",
        "ConvGAPBoxHead",
        "MODEL.ROI_BOX_HEAD.NUM_FC",
        0,
        "MODEL.MASKX.CLASS_ACTIVATION_PRIOR.ENABLED",
        True,
    ],
    # Another system on the same ResNet: BlendMask on FCOS (maskx_d2/blendmask) with FCOS's own
    # FPN (P3-P7 from res3-res5, no P2), bases from P3-P5; K, R and M from the config.
    "blendmask": [
        "MODEL.META_ARCHITECTURE",
        "BlendMask",
        "MODEL.BACKBONE.NAME",
        "build_retinanet_resnet_fpn_backbone",
        "MODEL.RESNETS.OUT_FEATURES",
        ["res3", "res4", "res5"],
        "MODEL.FPN.IN_FEATURES",
        ["res3", "res4", "res5"],
        "MODEL.FCOS.IN_FEATURES",
        ["p3", "p4", "p5", "p6", "p7"],
        "MODEL.FCOS.SCORE_THRESH_TEST",
        0.0,  # as the R-CNNs: every variant masks TEST.DETECTIONS_PER_IMAGE detections
    ],
    # MNC (maskx_d2/mnc) on the same RPN, box head and poolers: a class-agnostic mask stage,
    # then classification on box plus mask-pooled features; "mnc-5stage" runs stages 2-3 again.
    "mnc": _MNC + ["MODEL.MNC.NUM_STAGES", 3],
    "mnc-5stage": _MNC + ["MODEL.MNC.NUM_STAGES", 5],
    # DeepMask (maskx_d2/deepmask) as configs/Synthetic/deepmask_R_18_synthetic.yaml: trunk to
    # res3, dense windows over a 5-scale pyramid, its top TEST.DETECTIONS_PER_IMAGE masks.
    "deepmask": [
        "MODEL.META_ARCHITECTURE",
        "DeepMask",
        "MODEL.BACKBONE.NAME",
        "build_resnet_backbone",
        "MODEL.RESNETS.OUT_FEATURES",
        ["res3"],
        "MODEL.DEEPMASK.IN_FEATURE",
        "res3",
        "MODEL.DEEPMASK.PATCH_SIZE",
        64,
        "MODEL.DEEPMASK.OBJECT_SIZE",
        36,
        "MODEL.DEEPMASK.SCALES_LOG2",
        [-1.0, -0.5, 0.0, 0.5, 1.0],
        "MODEL.DEEPMASK.MASK_CONV_DIM",
        64,
        "MODEL.DEEPMASK.MASK_RANK",
        128,
        "MODEL.DEEPMASK.MASK_SIZE",
        28,
        "MODEL.DEEPMASK.SCORE_FC_DIMS",
        [128, 256],
        "MODEL.DEEPMASK.WINDOWS_PER_IMAGE",
        32,
    ],
}
DEFAULT_VARIANTS = ["mask_rcnn", "transfer", "transfer+mlp"]


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


def _measure(variant, args, batch_size, queue):
    """Runs in a fresh process; puts (train ms/it, peak MB, infer ms/img), or None on OOM."""
    import torch
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from detectron2.solver import build_optimizer

    from maskx_d2 import add_maskx_config
    from maskx_d2.layers import use_roi_align_backward

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after imports, before the model
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(args.config)
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # same number of masked detections for all
    cfg.MODEL.ROI_ALIGN_BACKWARD = "torchvision"  # detectron2's kernel unless a variant says
    if variant == "mask_rcnn":
        cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
        cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
        cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    else:
        cfg.MODEL.MASKX.MASK_PREDICTOR = "transfer"
        cfg.MODEL.MASKX.MLP_BRANCH.ENABLED = False
        cfg.merge_from_list(VARIANTS[variant])
        cfg.MODEL.FCOS.NUM_CLASSES = cfg.MODEL.ROI_HEADS.NUM_CLASSES  # read by BlendMask only
        cfg.MODEL.DEEPMASK.TOPK_TEST = cfg.TEST.DETECTIONS_PER_IMAGE  # read by DeepMask only
    torch.manual_seed(0)
    model = build_model(cfg).train()
    use_roi_align_backward(model, cfg.MODEL.ROI_ALIGN_BACKWARD)  # as train_net.py's Trainer
    # The learning rate of a real run's first iterations (its warm-up starts at this factor):
    # the time of a step does not depend on it, but the full rate on one random batch repeated
    # for every step can diverge to NaN boxes (MNC's 5-stage cascade did at 0.02).
    cfg.SOLVER.BASE_LR *= cfg.SOLVER.WARMUP_FACTOR
    optimizer = build_optimizer(cfg, model)
    gen = torch.Generator().manual_seed(0)
    batch = _batch(
        batch_size,
        args.size,
        cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        args.device,
        0.0 if variant == "mask_rcnn" else args.box_only_fraction,
        gen,
    )
    cuda = args.device.startswith("cuda")
    try:
        queue.put(_time_variant(model, optimizer, batch, args, cuda, rss0))
    except torch.cuda.OutOfMemoryError:
        queue.put(None)


def _time_variant(model, optimizer, batch, args, cuda, rss0):
    import torch
    from detectron2.utils.events import EventStorage

    def sync():
        if cuda:
            torch.cuda.synchronize()

    # As detectron2's AMPTrainer: a GradScaler around fp16 autocast, so its cost is counted.
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp and cuda)

    def train_step():
        with torch.autocast("cuda", enabled=args.amp and cuda):
            losses = model(batch)
        optimizer.zero_grad()
        scaler.scale(sum(losses.values())).backward()
        scaler.step(optimizer)
        scaler.update()

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
    return train_ms, peak, infer_ms


def _run_variant(ctx, variant, args, batch_size):
    """(train ms/it, peak MB, infer ms/img) from a fresh process; None if out of memory."""
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(variant, args, batch_size, queue))
    proc.start()
    proc.join()  # the result is a few numbers: the child's exit never waits on the pipe
    if proc.exitcode != 0:  # crashed: nothing was put, so get() would wait forever
        raise SystemExit(f"{variant} at batch {batch_size} failed (exit code {proc.exitcode})")
    return queue.get()


def _largest_batch(ctx, args):
    """Doubles the batch from 2 while every variant still fits; the last that did."""
    fits, batch_size = None, 2
    while all(_run_variant(ctx, v, args, batch_size) is not None for v in args.variants):
        fits, batch_size = batch_size, batch_size * 2
    if fits is None:
        raise SystemExit("even a batch of 2 images runs out of memory")
    return fits


def _batch_size(text):
    return text if text == "max" else int(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/Synthetic/Base-Synthetic-R-18-FPN.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    parser.add_argument(
        "--batch", type=_batch_size, default=8, help="images per iteration, or 'max' (GPU)"
    )
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
    parser.add_argument(
        "--schedule-gpus",
        type=int,
        nargs="*",
        default=None,
        help="estimate the paper's 90k x 16-image schedule on these GPU counts "
        "(default on a GPU: 1 8; none on a CPU)",
    )
    parser.add_argument("--scaling-efficiency", type=float, default=0.9)
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=DEFAULT_VARIANTS,
        help="what to measure; mask_rcnn, the baseline of the ratios, is always included",
    )
    args = parser.parse_args()
    args.variants = ["mask_rcnn"] + [v for v in args.variants if v != "mask_rcnn"]
    cuda = args.device.startswith("cuda")
    if args.batch == "max" and not cuda:
        parser.error("--batch max searches for the largest batch that fits a GPU's memory")
    ctx = mp.get_context("spawn")
    batch_size = _largest_batch(ctx, args) if args.batch == "max" else args.batch
    # Rounds interleave the variants and the median is reported, so drift of a shared machine
    # over the run does not favour whichever variant ran at a quiet moment.
    runs = {v: [] for v in args.variants}
    for round_index in range(args.rounds):
        for variant in args.variants:
            result = _run_variant(ctx, variant, args, batch_size)
            if result is None:
                raise SystemExit(f"{variant} ran out of memory at batch {batch_size}")
            runs[variant].append(result)
            # Each measurement as it comes, so a run stopped at a time limit still tells.
            print(
                f"round {round_index + 1} {variant}: train {result[0]:.1f} ms/it, peak "
                f"{result[1]:.1f} MB, infer {result[2]:.1f} ms/img",
                file=sys.stderr,
                flush=True,
            )
    results = {v: tuple(float(np.median(col)) for col in zip(*r)) for v, r in runs.items()}
    print(
        f"config={args.config} device={_device_name(args.device)} batch={batch_size} "
        f"size={args.size} amp={args.amp} iters={args.iters} rounds={args.rounds} (medians)"
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
    schedule_gpus = args.schedule_gpus if args.schedule_gpus is not None else [1, 8] * cuda
    for num_gpus in schedule_gpus:
        for variant, (t, _, _) in results.items():
            estimate = estimate_schedule(
                t, batch_size, num_gpus=num_gpus, scaling_efficiency=args.scaling_efficiency
            )
            print(f"schedule {variant:>14}: {estimate.hours:6.1f} h ({estimate.assumptions})")


def _device_name(device):
    import torch

    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(device)}, torch {torch.__version__})"
    return f"{device} (torch {torch.__version__})"


if __name__ == "__main__":
    main()
