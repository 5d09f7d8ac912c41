"""Shared by the tests that run the whole pipeline through train_net.py."""

import os

# A few iterations of the main job on the synthetic data (train, checkpoint, evaluate).
INSTANT = os.path.join(
    os.path.dirname(__file__),
    "..",
    "configs",
    "Synthetic",
    "quick_schedules",
    "maskx_R_18_FPN_synthetic_instant_test.yaml",
)
