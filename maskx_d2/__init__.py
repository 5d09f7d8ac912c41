"""maskx_d2: Mask^X R-CNN ("Learning to Segment Every Thing") as a Detectron2 extension.

Importing this package registers the ROI heads, mask head, meta-architecture, datasets and
evaluator into detectron2's registries, and does nothing else: it may be imported before or
after detectron2, with or without detectron2's compiled extension (see :mod:`maskx_d2.compat`).
"""

from . import blendmask, data, deepmask, evaluation, mnc, modeling  # noqa: F401  (registration)
from .compat import CompiledOpsUnavailable, check_compiled_ops, compiled_ops_available
from .config import add_maskx_config

__all__ = [
    "add_maskx_config",
    "check_compiled_ops",
    "compiled_ops_available",
    "CompiledOpsUnavailable",
]
