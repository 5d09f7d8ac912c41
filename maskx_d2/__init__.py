"""maskx_d2: Mask^X R-CNN ("Learning to Segment Every Thing") as a Detectron2 extension.

Importing this package registers the ROI heads, mask head, meta-architecture, datasets and
evaluator into detectron2's registries. It first makes sure detectron2 imports even when its
compiled extension is missing (see :mod:`maskx_d2.compat`).
"""

from .compat import CompiledOpsUnavailable, compiled_ops_available, ensure_detectron2_importable

ensure_detectron2_importable()

from . import data, evaluation, modeling  # noqa: E402,F401  (registration side effects)
from .config import add_maskx_config  # noqa: E402

__all__ = ["add_maskx_config", "compiled_ops_available", "CompiledOpsUnavailable"]
