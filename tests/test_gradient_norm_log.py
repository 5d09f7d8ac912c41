"""tools/gradient_norm_log.py: the norms it prints, its stop on non-finite weights, and a short
training through train_net's trainer with the log on."""

import math
import os
import sys

import pytest
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import gradient_norm_log as tool  # noqa: E402
from pipeline_fixtures import quick_schedule  # noqa: E402


def _two_layers():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1, bias=False))
    model[0].weight.grad = torch.full((2, 2), 3.0)  # norm 6
    model[0].bias.grad = None
    model[1].weight.grad = torch.tensor([[8.0, 0.0]])  # norm 8
    return model


def test_gradient_norms_total_and_largest():
    total, largest, name = tool.gradient_norms(_two_layers().named_parameters())
    assert total == pytest.approx(10.0)  # sqrt(6^2 + 8^2), the bias has no gradient
    assert largest == pytest.approx(8.0) and name == "1.weight"
    assert tool.gradient_norms(nn.Linear(1, 1).named_parameters()) == (0.0, 0.0, "")


def test_the_step_that_breaks_a_weight_stops_the_run_with_its_name():
    model = _two_layers()
    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    tool.log_gradient_norms(model, optimizer, out=Out())
    optimizer.step()
    assert "step 0: total grad norm 10, largest per-parameter norm 8 (1.weight)" in "".join(lines)
    assert tool.first_non_finite(model.named_parameters()) is None
    model[1].weight.grad = torch.tensor([[math.inf, 0.0]])
    with pytest.raises(FloatingPointError, match="step 1 made parameter 1.weight non-finite"):
        optimizer.step()


def test_training_through_train_net_logs_every_step(tmp_path, capsys):
    config = quick_schedule("mnc_R_18_FPN_synthetic_instant_test")
    tool.main(
        ["--config-file", config, "SOLVER.MAX_ITER", "2", "DATASETS.TEST", "()"]
        + ["OUTPUT_DIR", str(tmp_path)]
    )
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in steps] == ["step 0", "step 1"]
    norms = [float(line.split("total grad norm ")[1].split(",")[0]) for line in steps]
    assert all(math.isfinite(n) and n > 0 for n in norms)
    assert os.path.exists(tmp_path / "model_final.pth")
