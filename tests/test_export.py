"""Deployment: the whole Mask^X R-CNN traces with detectron2's TracingAdapter.

The traced model must give the eager model's detections and masks on an image it was not
traced with (T runs on whichever classes are detected, so nothing about the first image may
be baked in).
"""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.export import TracingAdapter
from detectron2.modeling import build_model
from pipeline_fixtures import INSTANT

from maskx_d2 import add_maskx_config


def _inference(model, inputs):
    return model.inference(inputs, do_postprocess=False)


# Tracing warns about every Python-level branch of detectron2's code; the comparison on a new
# image below is what tells whether the trace generalizes.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("predictor", ["transfer", "class_agnostic", "class_specific"])
def test_traced_model_matches_eager_on_a_new_image(predictor):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(INSTANT)
    cfg.MODEL.MASKX.MASK_PREDICTOR = predictor
    cfg.MODEL.MASKX.MLP_BRANCH.ENABLED = predictor == "transfer"
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # many detections of many classes
    # Random weights in eval mode: BatchNorm in the FPN and the box head (the synthetic recipe)
    # would normalise with its initial running statistics (0, 1), and one class would win every
    # box; the comparison needs several classes detected.
    cfg.MODEL.FPN.NORM = cfg.MODEL.ROI_BOX_HEAD.NORM = ""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(0)
    first, second = (torch.rand(3, 96, 128, generator=g) * 255 for _ in range(2))
    with torch.no_grad():
        adapter = TracingAdapter(model, [{"image": first}], inference_func=_inference)
        traced = torch.jit.trace(adapter, adapter.flattened_inputs, strict=False)
        expected = _inference(model, [{"image": second}])[0]
        actual = adapter.outputs_schema(traced(second))[0]
    assert len(expected) > 0 and len(expected.pred_classes.unique()) > 1
    assert torch.equal(actual.pred_classes, expected.pred_classes)
    assert torch.allclose(actual.pred_boxes.tensor, expected.pred_boxes.tensor, atol=1e-4)
    assert torch.allclose(actual.pred_masks, expected.pred_masks, atol=1e-5)
