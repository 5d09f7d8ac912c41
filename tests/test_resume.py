"""Interrupted runs: --resume continues exactly, and a NaN loss stops training at a good checkpoint.

Both go through train_net.main on the instant schedule (CPU, NUM_WORKERS 0, random flips on).
"""

import json
import math
import os

import pytest
import torch
from detectron2.engine import HookBase
from detectron2.utils.events import get_event_storage
from pipeline_fixtures import INSTANT

import maskx_d2  # noqa: F401  (registers the datasets and model parts)
import train_net

# Six steps, checkpoints after steps 2 and 5; no evaluation (not what is tested here).
OPTS = ["SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "3", "DATASETS.TEST", "()"]


def _run(out, *extra):
    args = ["--config-file", INSTANT, *extra, "OUTPUT_DIR", out, *OPTS]
    return train_net.main(train_net.argument_parser().parse_args(args))


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def _losses(out):
    with open(os.path.join(out, "metrics.json")) as f:
        rows = [json.loads(line) for line in f if '"total_loss"' in line]
    return {r["iteration"]: r["total_loss"] for r in rows}


class _Crash(HookBase):
    """Stands for a killed job: the run dies before step ``at`` (after saving at step 2)."""

    def __init__(self, at):
        self.at = at

    def before_step(self):
        if self.trainer.iter == self.at:
            raise KeyboardInterrupt(f"interrupted before iteration {self.at}")


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, monkeypatch):
    whole, interrupted = str(tmp_path / "whole"), str(tmp_path / "interrupted")
    _run(whole)

    build_hooks = train_net.Trainer.build_hooks
    monkeypatch.setattr(
        train_net.Trainer, "build_hooks", lambda self: build_hooks(self) + [_Crash(at=4)]
    )
    with pytest.raises(KeyboardInterrupt):
        _run(interrupted)
    monkeypatch.undo()
    with open(os.path.join(interrupted, "last_checkpoint")) as f:
        assert f.read() == "model_0000002.pth"
    _run(interrupted, "--resume")  # iterations 3, 4, 5 again, from the step-2 checkpoint

    # Same images, same flips, same RPN/ROI samples: bit-identical weights.
    expected, got = _weights(os.path.join(whole, "model_final.pth")), _weights(
        os.path.join(interrupted, "model_final.pth")
    )
    assert expected.keys() == got.keys()
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not different, different


class _NaNLossAt(HookBase):
    """Makes the mask loss NaN at one iteration, as a diverging run would."""

    def __init__(self, at):
        self.at = at

    def before_train(self):
        def poison(module, inputs, losses):
            if module.training and get_event_storage().iter == self.at:
                losses["loss_mask"] = losses["loss_mask"] * float("nan")
            return losses

        self.trainer.model.register_forward_hook(poison)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = str(tmp_path)
    build_hooks = train_net.Trainer.build_hooks
    monkeypatch.setattr(
        train_net.Trainer, "build_hooks", lambda self: build_hooks(self) + [_NaNLossAt(at=4)]
    )
    with pytest.raises(
        FloatingPointError, match=r"iteration=4!(.|\n)*'loss_mask': (np.float64\()?nan"
    ):
        _run(out)
    monkeypatch.undo()

    # Step 4 never updated the weights; the step-2 checkpoint is the last one, and it is good.
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read() == "model_0000002.pth"
    assert not os.path.exists(os.path.join(out, "model_final.pth"))
    weights = _weights(os.path.join(out, "model_0000002.pth"))
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
    _run(out, "--resume")
    assert math.isfinite(_losses(out)[5])  # the resumed run trained to the end
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read() == "model_final.pth"
