#!/usr/bin/env python
"""The per-class table and the picture of docs/synthetic_shapes_v2.md, from a generated split.

    python tools/describe_synthetic.py --split val --images 200 --seed 1 \
        --picture docs/images/synthetic_shapes_v2.png
    python tools/describe_synthetic.py --scene wholebars_striped   # a scene variant's images

Prints a markdown table: per class, its set in the main and the shifted split, the number of
instances, the share in stacks, the share whose box holds pixels of another object, and the mean
IoU with the mask of two class-agnostic guesses
(maskx_d2/data/datasets/synthetic/properties.py): the box's pixels of the object's main colour,
and every object pixel in the box.
"""

import argparse
import json
import os
import tempfile

import cv2
import numpy as np

from maskx_d2.data.datasets.synthetic import (
    SCENE_VARIANTS,
    SHIFTED_MASK_CLASSES,
    SYNTHETIC_CLASSES,
    SYNTHETIC_MASK_CLASSES,
    generate_synthetic_shapes,
)
from maskx_d2.data.datasets.synthetic import properties as props


def per_class_table(coco: dict, image_dir: str) -> str:
    masks = props.annotation_masks(coco)
    others = props.other_objects_in_box(coco, masks)
    colour = props.colour_alone_ious(coco, image_dir, masks)
    fill = props.box_fill_ious(coco, masks)
    lines = [
        "| class | set (main) | set (shifted) | instances | in stacks | box holds another object "
        "| IoU, main colour in box | IoU, all object pixels in box |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(name, anns, main="", shifted=""):
        ids = [a["id"] for a in anns]
        stacked = np.mean([a["synthetic_role"] != "single" for a in anns])
        return (
            f"| {name} | {main} | {shifted} | {len(ids)} | {stacked:.0%} | "
            f"{np.mean([others[i] for i in ids]):.0%} | {np.mean([colour[i] for i in ids]):.2f} | "
            f"{np.mean([fill[i] for i in ids]):.2f} |"
        )

    for k, name in enumerate(SYNTHETIC_CLASSES):
        anns = [a for a in coco["annotations"] if a["category_id"] == k + 1]
        main = "A" if name in SYNTHETIC_MASK_CLASSES else "B"
        shifted = "A" if name in SHIFTED_MASK_CLASSES else "B"
        lines.append(row(name, anns, main, shifted))
    for group, names in (
        ("all of A", SYNTHETIC_MASK_CLASSES),
        ("all of B", set(SYNTHETIC_CLASSES) - set(SYNTHETIC_MASK_CLASSES)),
    ):
        ids = {SYNTHETIC_CLASSES.index(n) + 1 for n in names}
        lines.append(
            row(f"**{group}**", [a for a in coco["annotations"] if a["category_id"] in ids])
        )
    lines.append(row("**all**", coco["annotations"]))
    return "\n".join(lines)


def draw(coco: dict, image_dir: str, path: str, count: int = 8, scale: int = 3) -> None:
    """Images in the top row; below each, its ground truth: every instance's mask in its class
    colour, outlined white, with its box (green: set A, red: set B of the main split)."""
    masks = props.annotation_masks(coco)
    columns = []
    for image in coco["images"][:count]:
        pixels = cv2.imread(os.path.join(image_dir, image["file_name"]))
        big = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        truth = np.full_like(big, 255)
        for ann in (a for a in coco["annotations"] if a["image_id"] == image["id"]):
            mask = cv2.resize(
                masks[ann["id"]].astype(np.uint8),
                None,
                fx=scale,
                fy=scale,
                interpolation=cv2.INTER_NEAREST,
            ).astype(bool)
            colour = np.median(pixels[masks[ann["id"]]], axis=0)
            truth[mask] = (0.6 * truth[mask] + 0.4 * colour).astype(np.uint8)
            contours, _ = cv2.findContours(
                mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE
            )
            cv2.drawContours(truth, contours, -1, (40, 40, 40), 1)
            x, y, w, h = (v * scale for v in ann["bbox"])
            name = SYNTHETIC_CLASSES[ann["category_id"] - 1]
            box = (0, 160, 0) if name in SYNTHETIC_MASK_CLASSES else (0, 0, 220)
            cv2.rectangle(truth, (x, y), (x + w - 1, y + h - 1), box, 1)
        columns.append(np.concatenate([big, truth], axis=0))
    cv2.imwrite(path, np.concatenate(columns, axis=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="val")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--root", default=None, help="dataset root (default: a temporary one)")
    parser.add_argument("--picture", default=None, help="PNG to write")
    parser.add_argument(
        "--scene", choices=sorted(SCENE_VARIANTS), default=None, help="default: the first scene"
    )
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp()
    scene = {} if args.scene is None else {"scene": SCENE_VARIANTS[args.scene]}
    json_path = generate_synthetic_shapes(root, args.split, args.images, args.seed, **scene)
    image_dir = os.path.join(os.path.dirname(json_path), "images")
    with open(json_path) as f:
        coco = json.load(f)
    print(per_class_table(coco, image_dir))
    if args.picture:
        draw(coco, image_dir, args.picture)


if __name__ == "__main__":
    main()
