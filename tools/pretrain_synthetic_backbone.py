#!/usr/bin/env python
"""Pre-train the synthetic benchmark's ResNet on shape classification: its "ImageNet" stage.

The backbone of a benchmark config (default: the main job's ResNet-18) learns to name the shape
of single objects in random colours (:mod:`maskx_d2.data.datasets.synthetic.pretraining`: 21
shapes, labels only, no mask, no box), then is saved as a detectron2 checkpoint whose keys are
``backbone.bottom_up.*``, for ``MODEL.WEIGHTS``. The images are normalised exactly as the
detector's inputs (BGR, ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD``).

    python tools/pretrain_synthetic_backbone.py --output datasets/pretrained/R18_shapes.pth
    python train_net.py --config-file configs/Synthetic/maskx_R_18_FPN_synthetic.yaml \\
        MODEL.WEIGHTS datasets/pretrained/R18_shapes.pth

Prints the loss and accuracy while training and the accuracy on held-out samples at the end.
"""

import argparse
import math
import os
import time

import numpy as np
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import build_resnet_backbone
from torch import nn
from torch.nn import functional as F

from maskx_d2 import add_maskx_config
from maskx_d2.data.datasets.synthetic.pretraining import PRETRAINING_SHAPES, pretraining_sample

PREFIX = "backbone.bottom_up."


class ShapeClassifier(nn.Module):
    """detectron2's ResNet (the config's, every stage trainable) + global average pooling + a
    linear layer over the shapes. Input (N, 3, S, S) normalised BGR; output (N, shapes) logits."""

    def __init__(self, cfg):
        super().__init__()
        cfg = cfg.clone()
        cfg.defrost()
        cfg.MODEL.BACKBONE.FREEZE_AT = 0
        cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
        self.resnet = build_resnet_backbone(cfg, ShapeSpec(channels=3))
        channels = self.resnet.output_shape()["res5"].channels
        self.classifier = nn.Linear(channels, len(PRETRAINING_SHAPES))
        mean = torch.tensor(cfg.MODEL.PIXEL_MEAN).view(1, -1, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer(
            "pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(1, -1, 1, 1), False
        )
        self.input_format = cfg.INPUT.FORMAT

    def normalise(self, rgb: torch.Tensor) -> torch.Tensor:
        """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) as the detector normalises its inputs."""
        x = rgb.permute(0, 3, 1, 2).float()
        if self.input_format == "BGR":
            x = x.flip(1)
        return (x - self.pixel_mean) / self.pixel_std

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        features = self.resnet(self.normalise(rgb))["res5"]
        return self.classifier(features.mean(dim=(2, 3)))

    def backbone_state_dict(self):
        """The ResNet's parameters and BN statistics under the detector's names."""
        return {PREFIX + k: v.detach().cpu() for k, v in self.resnet.state_dict().items()}


def batch(indices, seed: int, size: int):
    samples = [pretraining_sample(int(i), seed, size) for i in indices]
    images = torch.from_numpy(np.stack([s[0] for s in samples]))
    return images, torch.tensor([s[1] for s in samples])


@torch.no_grad()
def accuracy(model: ShapeClassifier, num: int, seed: int, size: int, chunk: int = 128) -> float:
    model.eval()
    correct = 0
    for start in range(0, num, chunk):
        images, labels = batch(range(start, min(num, start + chunk)), seed, size)
        correct += (model(images).argmax(1) == labels).sum().item()
    model.train()
    return correct / num


def learning_rate(base: float, step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/Synthetic/Base-Synthetic-R-18-FPN.yaml")
    parser.add_argument("--output", required=True, help=".pth file to write")
    parser.add_argument("--iters", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--size", type=int, default=64, help="image side")
    parser.add_argument("--seed", type=int, default=0, help="training stream; held-out: seed+1")
    parser.add_argument("--val", type=int, default=1024, help="held-out samples")
    args = parser.parse_args()

    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(args.config)
    torch.manual_seed(args.seed)
    model = ShapeClassifier(cfg).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    start = time.perf_counter()
    for step in range(args.iters):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(args.lr, step, args.iters, args.warmup)
        first = step * args.batch
        images, labels = batch(range(first, first + args.batch), args.seed, args.size)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == args.iters - 1:
            train_acc = (logits.argmax(1) == labels).float().mean().item()
            elapsed = time.perf_counter() - start
            print(f"iter {step}: loss {loss.item():.3f} acc {train_acc:.2f} ({elapsed:.0f} s)")
    held_out = accuracy(model, args.val, args.seed + 1, args.size)
    print(f"held-out accuracy over {len(PRETRAINING_SHAPES)} shapes: {held_out:.3f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    torch.save(
        {
            "model": model.backbone_state_dict(),
            "pretraining": {
                "task": "shape classification (maskx_d2.data.datasets.synthetic.pretraining)",
                "iters": args.iters,
                "batch": args.batch,
                "held_out_accuracy": held_out,
            },
        },
        args.output,
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
