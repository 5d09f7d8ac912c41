"""The benchmark's "ImageNet" stage: shape-labelled single objects, and the backbone checkpoint
that tools/pretrain_synthetic_backbone.py writes for MODEL.WEIGHTS."""

import os
import subprocess
import sys

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from maskx_d2 import add_maskx_config
from maskx_d2.data.datasets.synthetic.classes import SHAPE_NAMES
from maskx_d2.data.datasets.synthetic.pretraining import PRETRAINING_SHAPES, pretraining_sample

ROOT = os.path.join(os.path.dirname(__file__), "..")
CONFIG = os.path.join(ROOT, "configs", "Synthetic", "maskx_R_18_FPN_synthetic.yaml")


def test_samples_are_deterministic_and_labelled_by_shape_only():
    image, label = pretraining_sample(7, seed=3)
    again, label_again = pretraining_sample(7, seed=3)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.array_equal(image, again) and label == label_again
    assert not np.array_equal(image, pretraining_sample(7, seed=4)[0])
    assert set(SHAPE_NAMES) <= set(PRETRAINING_SHAPES)  # the benchmark's shapes are among them
    labels = [pretraining_sample(i)[1] for i in range(300)]
    assert set(labels) == set(range(len(PRETRAINING_SHAPES)))  # every shape occurs


def test_one_shape_comes_in_many_colours():
    """The label says nothing about colour: the benchmark's shapes appear in every hue."""
    circle = PRETRAINING_SHAPES.index("circle")
    hues = []
    for i in range(600):
        image, label = pretraining_sample(i)
        if label == circle:
            centre = image[28:36, 28:36].reshape(-1, 3).astype(float).mean(0)
            hues.append(np.argmax(centre))  # dominant channel of the object's middle
    assert len(hues) >= 15
    assert set(hues) == {0, 1, 2}


def test_the_checkpoint_loads_into_the_detectors_backbone(tmp_path):
    output = str(tmp_path / "shapes.pth")
    command = [sys.executable, "tools/pretrain_synthetic_backbone.py", "--output", output]
    command += ["--iters", "2", "--batch", "4", "--val", "8", "--warmup", "1"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "held-out accuracy" in result.stdout
    saved = torch.load(output)["model"]
    assert all(k.startswith("backbone.bottom_up.") for k in saved)
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(CONFIG)
    model = build_model(cfg)
    DetectionCheckpointer(model).load(output)
    state = model.state_dict()
    for key in ("backbone.bottom_up.stem.conv1.weight", "backbone.bottom_up.res5.1.conv2.weight"):
        assert torch.equal(state[key], saved[key]), key
