"""What decides a run's floating-point results besides its config, seed and data.

Detectron2's environment table (logged by ``default_setup``) names the library versions but
not the CPU's instruction set or the number of threads, and both change the order of float
sums inside MKL / oneDNN kernels. On the embedded benchmark that is enough to change a run:
the same commit, seed and data gave GT-box mIoU on B of 28.9 with one thread and 52.8 with two
(docs/table1c_synthetic.md, "One commit, two results"). ``train_net.py`` logs this summary so
that every run's log says under which of these conditions it was made.
"""

import os
import platform
from typing import Dict

import torch

__all__ = ["NUMERICS_LOG_PREFIX", "cpu_model_name", "numerics_environment", "numerics_log_line"]

# What train_net.py's log line starts with (the bench finds a run's numerics by it).
NUMERICS_LOG_PREFIX = "Numerics: "


def cpu_model_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name from ``cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass  # no /proc/cpuinfo (not Linux): ask the platform module below
    return platform.processor() or "unknown"


def numerics_environment() -> Dict[str, str]:
    """``{what: value}`` for the CPU model, the SIMD level torch dispatches to, and threads."""
    return {
        "cpu": cpu_model_name(),
        "torch cpu capability": torch.backends.cpu.get_cpu_capability(),
        "torch intra-op threads": str(torch.get_num_threads()),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "<not set>"),
        "cuda device": (
            torch.cuda.get_device_name(torch.cuda.current_device())
            if torch.cuda.is_available()
            else "none"
        ),
    }


def numerics_log_line() -> str:
    """``Numerics: cpu <model>, torch cpu capability <level>, torch intra-op threads <n>, ...``"""
    return NUMERICS_LOG_PREFIX + ", ".join(f"{k} {v}" for k, v in numerics_environment().items())
