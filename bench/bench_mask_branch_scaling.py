#!/usr/bin/env python
"""Mask branch cost vs number of classes K: Mask^X (per-RoI logits) vs a K x M x M head.

For K in (80, 3000), measures one training step (forward + backward) of the mask branch on R
foreground RoIs, for
  - ``maskx``: MaskXMaskHead in transfer mode (logits only for each RoI's class, T once on the
    distinct classes), and
  - ``kxmxm``: detectron2's MaskRCNNConvUpsampleHead + mask_rcnn_loss (a 1x1 conv to K channels
    of M x M per RoI, then picks one).
Each case runs in a fresh process; peak memory is the rise of the process's peak RSS over the
steps (inputs and weights already allocated) on CPU, or torch.cuda.max_memory_allocated above
the memory allocated before the steps on GPU. Prints a table and the ratios.

    python bench/bench_mask_branch_scaling.py                 # CPU, R=128
    python bench/bench_mask_branch_scaling.py --device cuda --rois 2048
"""

import argparse
import multiprocessing as mp
import resource
import time

import torch


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(impl, num_classes, rois, steps, device, queue):
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.box_regression import Box2BoxTransform
    from detectron2.modeling.roi_heads import FastRCNNOutputLayers
    from detectron2.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead
    from detectron2.structures import Boxes, Instances, PolygonMasks
    from detectron2.utils.events import EventStorage

    from maskx_d2.modeling import MaskXMaskHead, WeightTransfer

    torch.manual_seed(0)
    shape, dims = ShapeSpec(channels=256, height=14, width=14), [256] * 5
    if impl == "maskx":
        head = MaskXMaskHead(
            shape, num_classes=num_classes, conv_dims=dims, transfer=WeightTransfer(5 * 1024, 256)
        )
    else:
        head = MaskRCNNConvUpsampleHead(shape, num_classes=num_classes, conv_dims=dims)
    predictor = FastRCNNOutputLayers(
        ShapeSpec(channels=1024),
        box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=num_classes,
    )
    head.to(device).train(), predictor.to(device)
    inst = Instances((800, 800))
    inst.proposal_boxes = Boxes(torch.tensor([[10.0, 10.0, 400.0, 400.0]]).repeat(rois, 1))
    inst.gt_classes = torch.randint(0, num_classes, (rois,))
    inst.gt_masks = PolygonMasks([[[20.0, 20.0, 300.0, 40.0, 100.0, 350.0]]] * rois)
    inst = inst.to(device)
    x = torch.rand(rois, 256, 14, 14, device=device)

    def step():
        with EventStorage():
            if impl == "maskx":
                loss = head(x, [inst], box_predictor=predictor)["loss_mask"]
            else:
                from detectron2.modeling.roi_heads.mask_head import mask_rcnn_loss

                loss = mask_rcnn_loss(head.layers(x), [inst])
        loss.backward()
        head.zero_grad(set_to_none=True)

    # Baseline before the first step: RSS is a high-water mark, so the warm-up step (which
    # allocates the largest temporaries) must come after it.
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = _peak_rss_mb()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _peak_rss_mb() - rss_before
    queue.put(((time.perf_counter() - start) / steps * 1000, peak))


def run(impl, num_classes, rois, steps, device):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(impl, num_classes, rois, steps, device, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return float("nan"), float("nan")
    return queue.get()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rois", type=int, default=128, help="foreground RoIs with masks")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--classes", type=int, nargs="+", default=[80, 3000])
    args = parser.parse_args()
    print(f"mask branch train step, R={args.rois} RoIs, C=256, M=28, device={args.device}")
    print(f"{'K':>6} {'impl':>6} {'ms/step':>9} {'peak MB':>9}")
    results = {}
    for k in args.classes:
        for impl in ("maskx", "kxmxm"):
            results[k, impl] = run(impl, k, args.rois, args.steps, args.device)
            print(
                f"{k:>6} {impl:>6} {results[k, impl][0]:>9.1f} {results[k, impl][1]:>9.1f}",
                flush=True,
            )
    print("\nratios (kxmxm / maskx):")
    for k in args.classes:
        (tm, mm), (tk, mk) = results[k, "maskx"], results[k, "kxmxm"]
        print(f"  K={k}: time x{tk / tm:.2f}, peak memory x{mk / max(mm, 1e-6):.2f}")
    k0, k1 = args.classes[0], args.classes[-1]
    print(
        f"\ngrowth from K={k0} to K={k1}: maskx time x"
        f"{results[k1, 'maskx'][0] / results[k0, 'maskx'][0]:.2f}, memory x"
        f"{results[k1, 'maskx'][1] / max(results[k0, 'maskx'][1], 1e-6):.2f}; kxmxm time x"
        f"{results[k1, 'kxmxm'][0] / results[k0, 'kxmxm'][0]:.2f}, memory x"
        f"{results[k1, 'kxmxm'][1] / max(results[k0, 'kxmxm'][1], 1e-6):.2f}"
    )


if __name__ == "__main__":
    main()
