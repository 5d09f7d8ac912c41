"""maskx_d2 runs with and without detectron2's compiled extension, imported in any order, and
configs that need a compiled op fail clearly when the model is built."""

import os
import subprocess
import sys

import pytest
import torch
from detectron2.config import get_cfg

from maskx_d2 import (
    CompiledOpsUnavailable,
    add_maskx_config,
    check_compiled_ops,
    compiled_ops_available,
)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONFIG = os.path.join(ROOT, "configs", "Synthetic", "maskx_R_18_FPN_synthetic.yaml")

without_c = pytest.mark.skipif(
    compiled_ops_available(), reason="detectron2._C is compiled here: nothing is unavailable"
)


def _cfg(*opts):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *opts])
    return cfg


def test_detectron2_layers_and_env_info_import():
    from detectron2.layers import ROIAlign, batched_nms  # noqa: F401
    from detectron2.utils.collect_env import collect_env_info

    assert "detectron2" in collect_env_info()  # default_setup() prints this


@without_c
def test_nothing_stands_in_for_the_compiled_extension():
    with pytest.raises(ImportError):
        from detectron2 import _C  # noqa: F401
    assert not hasattr(torch.ops.detectron2, "nms_rotated")


# Each order in a fresh interpreter: the test process has imported everything already.
IMPORT_ORDERS = {
    "detectron2 first": "import detectron2.layers, detectron2.modeling, detectron2.engine\n"
    "import maskx_d2\n",
    "maskx_d2 first": "import maskx_d2\nimport detectron2.layers, detectron2.modeling\n",
}
BUILD_AND_RUN = """
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from maskx_d2 import add_maskx_config
cfg = get_cfg()
add_maskx_config(cfg)
cfg.merge_from_file({config!r})
cfg.MODEL.DEVICE = "cpu"
cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # an untrained model still detects something
model = build_model(cfg).eval()
with torch.no_grad():
    out = model([{{"image": torch.randint(0, 255, (3, 128, 128), dtype=torch.uint8)}}])
instances = out[0]["instances"]
assert len(instances) > 0 and instances.pred_masks.shape[1:] == (128, 128)
print("built and ran")
"""


@pytest.mark.parametrize("order", list(IMPORT_ORDERS))
def test_any_import_order_builds_and_runs_the_model(order):
    code = IMPORT_ORDERS[order] + BUILD_AND_RUN.format(config=CONFIG)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "built and ran" in result.stdout


def test_the_default_config_needs_no_compiled_op():
    check_compiled_ops(_cfg())  # raises if it did


@without_c
@pytest.mark.parametrize(
    "opts, op, key",
    [
        (
            ["MODEL.RESNETS.DEFORM_ON_PER_STAGE", [False, True, True, True]],
            "deformable convolution",
            "MODEL.RESNETS.DEFORM_ON_PER_STAGE",
        ),
        (["MODEL.PROPOSAL_GENERATOR.NAME", "RRPN"], "RRPN", "MODEL.PROPOSAL_GENERATOR.NAME"),
        (["MODEL.ROI_HEADS.NAME", "RROIHeads"], "RROIHeads", "MODEL.ROI_HEADS.NAME"),
    ],
)
def test_configs_needing_a_compiled_op_fail_naming_it(opts, op, key):
    cfg = _cfg(*opts)
    with pytest.raises(CompiledOpsUnavailable, match=rf"{op}.*{key}.*detectron2._C.*git"):
        check_compiled_ops(cfg)


@without_c
def test_train_net_refuses_before_detectron2_builds_a_dummy_layer():
    from train_net import Trainer

    cfg = _cfg("MODEL.RESNETS.DEFORM_ON_PER_STAGE", [False, True, True, True])
    with pytest.raises(CompiledOpsUnavailable, match="deformable convolution"):
        Trainer.build_model(cfg)


def test_pure_pytorch_ops_used_by_mask_rcnn_work():
    from detectron2.layers import ROIAlign, batched_nms

    features = torch.rand(1, 4, 16, 16)
    out = ROIAlign((7, 7), 1.0, 0, aligned=True)(features, torch.tensor([[0, 1.0, 1, 9, 9]]))
    assert out.shape == (1, 4, 7, 7)
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    keep = batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 0]), 0.5)
    assert keep.tolist() == [0, 2]
