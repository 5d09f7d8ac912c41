"""Checkpoint loading that reports what was loaded, skipped and re-initialized.

Mask^X models are usually started from a checkpoint with other heads or class counts: a Faster
R-CNN (no mask head), an 80-class Mask R-CNN (a learned per-class mask predictor that T
replaces), a COCO detector loaded into a 3000-class model. detectron2 already skips tensors
whose shapes differ; this adds one summary that says, for every model tensor, which of the
three happened, so a wrong MODEL.WEIGHTS is obvious from the log.

Saving is atomic: a checkpoint is written under a temporary name in the same directory and
renamed over its final name, and ``last_checkpoint`` likewise, so a crash or SIGKILL during a save
leaves the previous checkpoint and the pointer to it usable (``--resume`` picks it up). Weights
that are no longer finite are never saved: the last checkpoint stays the last good one.
"""

import logging
import os
from typing import Dict, List

import torch
from detectron2.checkpoint import DetectionCheckpointer

from .atomic_files import fsync_file, write_atomic

__all__ = ["MaskXCheckpointer", "summarize_load"]

logger = logging.getLogger(__name__)

# Names written while a save is in progress; never pointed to by last_checkpoint.
_TMP_PREFIX = ".tmp-"


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
            len(summary["loaded"]),
            len(summary["loaded"]) + len(mismatch) + len(summary["absent"]),
            len(mismatch) + len(summary["absent"]),
            ", ".join(f"{k} {tuple(a)}->{tuple(b)}" for k, (a, b) in mismatch.items()) or "none",
            _group(summary["absent"]),
            len(summary["unused"]),
            _group(summary["unused"]),
        )
        return incompatible

    def save(self, name: str, **kwargs) -> None:
        """Save ``<name>.pth`` atomically (temporary file + rename), then tag it as last."""
        if not self.save_dir or not self.save_to_disk:
            return
        if not os.path.isdir(self.save_dir):  # a remote path_manager URL: no rename there
            return super().save(name, **kwargs)
        _check_finite(self.model, name)
        tmp_name = f"{_TMP_PREFIX}{name}.{os.getpid()}"
        tmp_file = os.path.join(self.save_dir, tmp_name + ".pth")
        try:
            super().save(tmp_name, **kwargs)  # fvcore writes it; our tag_last_checkpoint skips it
            fsync_file(tmp_file)  # the data must be on disk before the rename can be
            os.replace(tmp_file, os.path.join(self.save_dir, name + ".pth"))
            self.logger.info("Checkpoint %s.pth complete.", name)  # fvcore logged the temp name
        except BaseException:
            if os.path.exists(tmp_file):
                os.remove(tmp_file)
            raise
        self.tag_last_checkpoint(name + ".pth")

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if last_filename_basename.startswith(_TMP_PREFIX):
            return
        if not os.path.isdir(self.save_dir):
            return super().tag_last_checkpoint(last_filename_basename)
        path = os.path.join(self.save_dir, "last_checkpoint")
        write_atomic(path, last_filename_basename, durable=True)


def _check_finite(model, name: str) -> None:
    """Refuse to save NaN/inf weights: they would replace the last good checkpoint."""
    bad = [
        k
        for k, v in model.state_dict().items()
        if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise FloatingPointError(
            f"Not saving checkpoint '{name}': {len(bad)} model tensors hold NaN or inf "
            f"({_group(bad)}); the previous checkpoint is kept."
        )
