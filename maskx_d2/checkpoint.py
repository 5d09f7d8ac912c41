"""Checkpoint loading that reports what was loaded, skipped and re-initialized.

Mask^X models are usually started from a checkpoint with other heads or class counts: a Faster
R-CNN (no mask head), an 80-class Mask R-CNN (a learned per-class mask predictor that T
replaces), a COCO detector loaded into a 3000-class model. detectron2 already skips tensors
whose shapes differ; this adds one summary that says, for every model tensor, which of the
three happened, so a wrong MODEL.WEIGHTS is obvious from the log.
"""
import logging
from typing import Dict, List

from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["MaskXCheckpointer", "summarize_load"]

logger = logging.getLogger(__name__)


def _group(keys: List[str], depth: int = 3) -> str:
    """Collapse parameter names to their first ``depth`` components, with counts."""
    groups: Dict[str, int] = {}
    for k in sorted(keys):
        prefix = ".".join(k.split(".")[:depth])
        groups[prefix] = groups.get(prefix, 0) + 1
    return ", ".join(f"{p} ({n})" if n > 1 else p for p, n in groups.items()) or "none"


def summarize_load(model_keys, incompatible) -> Dict[str, List[str]]:
    """Split the model's tensors into loaded / shape-mismatch / absent, plus unused ckpt keys."""
    shape_skipped = [k for k, _, _ in incompatible.incorrect_shapes]
    absent = [k for k in incompatible.missing_keys if k not in set(shape_skipped)]
    reinit = set(shape_skipped) | set(absent)
    return {
        "loaded": [k for k in model_keys if k not in reinit],
        "shape_mismatch": shape_skipped,
        "absent": absent,
        "unused": list(incompatible.unexpected_keys),
    }


class MaskXCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer (model-zoo URLs, .pkl and .pth files) + a loading summary."""

    def _load_model(self, checkpoint):
        incompatible = super()._load_model(checkpoint)
        summary = summarize_load(list(self.model.state_dict().keys()), incompatible)
        mismatch = {k: (a, b) for k, a, b in incompatible.incorrect_shapes}
        logger.info(
            "Checkpoint summary: %d of %d model tensors loaded; %d re-initialized "
            "(shape mismatch: %s; absent from checkpoint: %s); %d checkpoint tensors unused (%s).",
            len(summary["loaded"]), len(summary["loaded"]) + len(mismatch) + len(summary["absent"]),
            len(mismatch) + len(summary["absent"]),
            ", ".join(f"{k} {tuple(a)}->{tuple(b)}" for k, (a, b) in mismatch.items()) or "none",
            _group(summary["absent"]), len(summary["unused"]), _group(summary["unused"]),
        )
        return incompatible
