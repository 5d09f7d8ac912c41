"""Visual Genome end to end through train_net.py, on generated files in the real formats.

The joint set (COCO images with masks of the 80 COCO classes, VG images with boxes of every
class, one label space) trains; the VG val split, which has no masks, is evaluated with box AP
on all classes, on A (COCO) and on B.
"""

import json
import os

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image
from pipeline_fixtures import INSTANT
from visual_genome_fixtures import standard_vg

import train_net
from maskx_d2.data.datasets.visual_genome.loading import register_vg3k, register_vg3k_coco_joint

NUM_CLASSES = 90  # the 80 COCO classes + the 10 most frequent other synsets


def _write_images(root, names, width, height):
    rng = np.random.default_rng(0)
    for name in names:
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=50)


def _coco_train(tmp_path):
    """Four COCO images with masks of two COCO classes (person, toothbrush)."""
    images = [{"id": i, "file_name": f"{i:06d}.jpg", "height": 96, "width": 128} for i in range(4)]
    annotations = []
    for image in images:
        for category_id, x in ((1, 10), (90, 60)):
            x0, y0, w, h = x, 20, 40, 50
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "category_id": category_id,
                    "bbox": [x0, y0, w, h],
                    "area": w * h / 2,
                    "iscrowd": 0,
                    "segmentation": [[x0, y0, x0 + w, y0, x0, y0 + h]],
                }
            )
    coco_json = tmp_path / "instances_train2017.json"
    categories = [{"id": 1, "name": "person"}, {"id": 90, "name": "toothbrush"}]
    coco_json.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    image_root = str(tmp_path / "train2017")
    _write_images(image_root, [i["file_name"] for i in images], 128, 96)
    return str(coco_json), image_root


def test_joint_set_trains_and_vg_val_gets_box_ap(tmp_path):
    vg_root = str(tmp_path / "vg")
    standard_vg(vg_root, num_images=120)  # every image is 800 x 600
    with open(os.path.join(vg_root, "image_data.json")) as f:
        urls = [image["url"] for image in json.load(f)]
    _write_images(vg_root, ["/".join(url.split("/")[-2:]) for url in urls], 800, 600)
    coco_json, coco_images = _coco_train(tmp_path)
    train, val = "vg3k_coco_joint_pipeline_test", "vg3k_val_pipeline_test"
    register_vg3k_coco_joint(train, vg_root, coco_json, coco_images, num_classes=NUM_CLASSES)
    register_vg3k(val, vg_root, "val", num_classes=NUM_CLASSES)
    try:
        assert DatasetCatalog.get(val), "the generated VG has no val images"
        out = str(tmp_path / "out")
        common = ["--config-file", INSTANT, "OUTPUT_DIR", out]
        common += ["DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{val}',)"]
        common += ["MODEL.ROI_HEADS.NUM_CLASSES", str(NUM_CLASSES)]
        parse = train_net.argument_parser().parse_args
        train_net.main(parse(common + ["SOLVER.MAX_ITER", "2"]))  # train, then evaluate
        weights = os.path.join(out, "model_final.pth")
        results = train_net.main(parse(["--eval-only"] + common + ["MODEL.WEIGHTS", weights]))
    finally:
        for name in (train, val):
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
    assert set(results) == {"bbox", "bbox_A", "bbox_B"}  # no masks in VG: no mask AP
    assert all(set(r) >= {"AP", "AP50", "AP75"} for r in results.values())
