"""Run a Mask^X R-CNN model on images and save pictures like the paper's figures.

    python demo.py --config-file CFG --input img.png dir/ "glob/*.jpg" --output OUT_DIR \
        [--confidence-threshold 0.5] [--opts MODEL.WEIGHTS model_final.pth ...]

Each input gives OUT_DIR/<input name>.png, of the input's size: masks of every detection,
boxes green for classes that had masks in training (set A) and red for box-only classes (B).
A is read from the metadata of the config's first training dataset.
"""

import argparse
import glob
import logging
import os
from typing import List, Sequence

import cv2
import torch
from detectron2.config import get_cfg
from detectron2.data.detection_utils import read_image
from detectron2.engine import DefaultPredictor
from detectron2.utils.logger import setup_logger

import maskx_d2
from maskx_d2.visualization import draw_partial_predictions, partial_supervision_classes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
logger = logging.getLogger("maskx_d2.demo")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--input", nargs="+", required=True, help="image files, folders of images, or glob patterns"
    )
    parser.add_argument("--output", required=True, help="folder for the output PNGs")
    parser.add_argument(
        "--confidence-threshold",
        type=float,
        default=0.5,
        help="minimum score of the detections drawn",
    )
    parser.add_argument(
        "--opts", nargs=argparse.REMAINDER, default=[], help="config overrides as KEY VALUE pairs"
    )
    return parser


def setup_cfg(args):
    cfg = get_cfg()
    maskx_d2.add_maskx_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.confidence_threshold
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.info("CUDA is not available: running on CPU")
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    maskx_d2.check_compiled_ops(cfg)  # a clear error before the model is built
    return cfg


def expand_inputs(inputs: Sequence[str]) -> List[str]:
    """Image paths of files, folders (their images, not recursive) and glob patterns."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            paths += sorted(
                os.path.join(item, f)
                for f in os.listdir(item)
                if f.lower().endswith(IMAGE_EXTENSIONS)
            )
        elif os.path.isfile(item):
            paths.append(item)
        else:
            matches = sorted(glob.glob(item))
            if not matches:
                raise FileNotFoundError(f"--input {item!r}: no such file, folder or match")
            paths += matches
    return paths


def class_names_and_mask_classes(cfg):
    """Class names and contiguous ids of A from cfg.DATASETS.TRAIN[0]; without a training
    dataset, classes are numbered and all count as A."""
    if cfg.DATASETS.TRAIN:
        return partial_supervision_classes(cfg.DATASETS.TRAIN[0])
    k = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    return [f"class {i}" for i in range(k)], list(range(k))


def main(argv=None) -> List[str]:
    """Run the demo; returns the paths of the written PNGs."""
    args = get_parser().parse_args(argv)
    setup_logger(name="maskx_d2")
    cfg = setup_cfg(args)
    class_names, mask_classes = class_names_and_mask_classes(cfg)
    predictor = DefaultPredictor(cfg)
    os.makedirs(args.output, exist_ok=True)
    written = []
    for path in expand_inputs(args.input):
        image_bgr = read_image(path, format="BGR")
        instances = predictor(image_bgr)["instances"]
        drawn = draw_partial_predictions(
            image_bgr[:, :, ::-1], instances, class_names, mask_classes
        )
        out_path = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png")
        cv2.imwrite(out_path, drawn[:, :, ::-1])
        logger.info(f"{path}: {len(instances)} detections -> {out_path}")
        written.append(out_path)
    return written


if __name__ == "__main__":
    main()
