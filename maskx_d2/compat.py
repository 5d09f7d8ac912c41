"""Run on detectron2 installs with or without its compiled extension ``detectron2._C``.

Offline installs (the PyPI snapshot, see DEVELOPERS.md) ship a ``_C`` built for another Python,
which cannot load. detectron2 runs without it: ``detectron2.layers`` falls back to pure
PyTorch/torchvision ops for everything Mask^X R-CNN needs (RoIAlign, NMS, FPN) and to dummy
classes for deformable convolution, and its COCO evaluator falls back to pycocotools. So
nothing is patched here and import order does not matter. What is left is to fail early and
clearly where a config asks for an op that only ``_C`` has:

- :func:`check_compiled_ops` at model-building time (deformable convolution, rotated boxes);
- the A/B evaluator refuses ``use_fast_impl=True`` (detectron2 would silently use pycocotools).
"""

import functools
import importlib
from typing import List, Tuple

__all__ = ["CompiledOpsUnavailable", "compiled_ops_available", "check_compiled_ops"]

HOW_TO_GET_IT = (
    "build detectron2 from its official git source (python -m pip install "
    "--no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'), "
    "see DEVELOPERS.md"
)


class CompiledOpsUnavailable(RuntimeError):
    """Raised when a config or call needs detectron2's compiled extension and it is not loaded."""


@functools.lru_cache(maxsize=None)
def _load_error() -> str:
    """'' when ``detectron2._C`` imports, else why it does not (cached: the answer is fixed)."""
    try:
        importlib.import_module("detectron2._C")
        return ""
    except ImportError as e:  # missing, or built for another Python/torch
        return f"{type(e).__name__}: {e}"


def compiled_ops_available() -> bool:
    """Whether detectron2's compiled extension ``detectron2._C`` loads in this installation."""
    return not _load_error()


def compiled_ops_requested(cfg) -> List[Tuple[str, str]]:
    """The (op, config key) pairs of ``cfg`` that only detectron2's compiled extension has."""
    m = cfg.MODEL
    requested = []
    if any(m.RESNETS.DEFORM_ON_PER_STAGE):
        requested.append(("deformable convolution", "MODEL.RESNETS.DEFORM_ON_PER_STAGE"))
    rotated = [
        ("MODEL.PROPOSAL_GENERATOR.NAME", m.PROPOSAL_GENERATOR.NAME, "RRPN"),
        ("MODEL.ANCHOR_GENERATOR.NAME", m.ANCHOR_GENERATOR.NAME, "RotatedAnchorGenerator"),
        ("MODEL.ROI_HEADS.NAME", m.ROI_HEADS.NAME, "RROIHeads"),
        ("MODEL.ROI_BOX_HEAD.POOLER_TYPE", m.ROI_BOX_HEAD.POOLER_TYPE, "ROIAlignRotated"),
    ]
    for key, value, needs_c in rotated:
        if value == needs_c:
            requested.append((f"rotated boxes ({needs_c})", key))
    return requested


def check_compiled_ops(cfg) -> None:
    """Raise :class:`CompiledOpsUnavailable` naming the op and the config key when ``cfg`` asks
    for an op of ``detectron2._C`` and it does not load; otherwise do nothing."""
    requested = compiled_ops_requested(cfg)
    if not requested or compiled_ops_available():
        return
    what = "; ".join(f"{op} (set by {key})" for op, key in requested)
    raise CompiledOpsUnavailable(
        f"This config asks for {what}, which needs detectron2's compiled extension "
        f"detectron2._C; it does not load here ({_load_error()}). To use it, {HOW_TO_GET_IT}."
    )
