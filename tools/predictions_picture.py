#!/usr/bin/env python
"""The README's picture: demo.py's drawing of a model's predictions on validation images, tiled.

    python tools/predictions_picture.py \
        --config-file configs/Synthetic/maskx_attributes_boxsup_R_18_FPN_synthetic.yaml \
        --weights output/synthetic/maskx_attributes_boxsup/model_final.pth \
        --output docs/images/synthetic_maskx_predictions.png

The images are enlarged (nearest neighbour) before demo.py sees them, so that the class names
are legible; the network still sees them at INPUT.MIN_SIZE_TEST, and its boxes and masks are
mapped back to the enlarged size as for any image.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--images", default="datasets/synthetic_shapes_v2/val/images")
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--columns", type=int, default=3)
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    names = sorted(os.listdir(args.images))[: args.count]
    with tempfile.TemporaryDirectory() as tmp:
        big_dir, out_dir = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        os.makedirs(big_dir)
        for name in names:
            image = cv2.imread(os.path.join(args.images, name))
            big = cv2.resize(
                image, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_NEAREST
            )
            cv2.imwrite(os.path.join(big_dir, name), big)
        subprocess.run(
            [
                sys.executable,
                "demo.py",
                "--config-file",
                args.config_file,
                "--input",
                big_dir,
                "--output",
                out_dir,
                "--opts",
                "MODEL.WEIGHTS",
                args.weights,
            ],
            cwd=ROOT,
            check=True,
        )
        tiles = [cv2.imread(os.path.join(out_dir, os.path.splitext(n)[0] + ".png")) for n in names]
    pad = np.full_like(tiles[0][:, :6], 255)
    rows = []
    for start in range(0, len(tiles), args.columns):
        row = tiles[start : start + args.columns]
        rows.append(np.concatenate([x for t in row for x in (t, pad)][:-1], axis=1))
    gap = np.full_like(rows[0][:6], 255)
    cv2.imwrite(args.output, np.concatenate([x for r in rows for x in (r, gap)][:-1], axis=0))


if __name__ == "__main__":
    main()
