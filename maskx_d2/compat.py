"""Run on detectron2 installs with or without its compiled extension ``detectron2._C``.

Offline installs (the PyPI snapshot, see DEVELOPERS.md) ship a ``_C`` built for another
Python, which cannot load; ``detectron2.layers`` then fails to import and nothing works.
Everything Mask^X R-CNN needs on CPU and GPU (RoIAlign, NMS, FPN, the Python COCO evaluator)
has a pure-PyTorch/torchvision path in detectron2, so we register a stand-in ``detectron2._C``
module whose every compiled op raises :class:`CompiledOpsUnavailable` naming the op, and
register the ``torch.ops.detectron2`` rotated-box ops to raise the same error. Nothing of
detectron2's own code is modified; with a working ``_C`` this module does nothing.

This must run before ``detectron2.layers`` is imported: ``maskx_d2/__init__.py`` calls it first.
"""

import importlib
import sys
import types

__all__ = ["CompiledOpsUnavailable", "compiled_ops_available", "ensure_detectron2_importable"]

_STATE = {"available": None, "reason": ""}

# Ops that detectron2 reaches through ``torch.ops.detectron2`` (rotated boxes).
_TORCH_OPS = {
    "box_iou_rotated": "box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor",
    "nms_rotated": "nms_rotated(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "roi_align_rotated_forward": (
        "roi_align_rotated_forward(Tensor input, Tensor rois, float spatial_scale, "
        "int pooled_height, int pooled_width, int sampling_ratio) -> Tensor"
    ),
    "roi_align_rotated_backward": (
        "roi_align_rotated_backward(Tensor grad, Tensor rois, float spatial_scale, "
        "int pooled_height, int pooled_width, int batch_size, int channels, int height, "
        "int width, int sampling_ratio) -> Tensor"
    ),
}


class CompiledOpsUnavailable(RuntimeError):
    """Raised when an operation needs detectron2's compiled extension and it is not loaded."""


def _message(op_name: str) -> str:
    return (
        f"'{op_name}' needs detectron2's compiled extension detectron2._C, which is not "
        f"available in this installation ({_STATE['reason']}). Rotated boxes, deformable "
        "convolution on GPU and the fast COCO evaluator need it; build detectron2 from its "
        "official git source (python -m pip install --no-build-isolation "
        "'git+https://github.com/facebookresearch/detectron2.git') to use them."
    )


def _make_stub_module() -> types.ModuleType:
    stub = types.ModuleType("detectron2._C")
    stub.__doc__ = "maskx_d2 stand-in for detectron2's missing compiled extension."
    stub.__file__ = __file__
    # collect_env_info() (called by default_setup) prints these; everything else raises.
    stub.get_compiler_version = lambda: "n/a (detectron2._C not loaded)"
    stub.get_cuda_version = lambda: "n/a (detectron2._C not loaded)"
    stub.has_cuda = lambda: False

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise CompiledOpsUnavailable(_message(f"detectron2._C.{name}"))

    stub.__getattr__ = __getattr__
    return stub


def _register_failing_torch_ops() -> None:
    import torch

    missing = [n for n in _TORCH_OPS if not hasattr(torch.ops.detectron2, n)]
    if not missing:
        return
    lib = torch.library.Library("detectron2", "FRAGMENT")
    for name in missing:
        lib.define(_TORCH_OPS[name])

        def _fail(*args, _name=name, **kwargs):
            raise CompiledOpsUnavailable(_message(f"torch.ops.detectron2.{_name}"))

        for key in ("CPU", "CUDA", "Meta"):
            lib.impl(name, _fail, key)
    _STATE["torch_library"] = lib  # keep the registration alive


def ensure_detectron2_importable() -> bool:
    """Make ``detectron2.layers`` importable; return whether the real ``_C`` is loaded.

    Idempotent and cheap after the first call.
    """
    if _STATE["available"] is not None:
        return _STATE["available"]
    try:
        importlib.import_module("detectron2._C")
        _STATE["available"] = True
    except ImportError as e:  # missing, or built for another Python/torch
        _STATE["available"] = False
        _STATE["reason"] = f"{type(e).__name__}: {e}"
        sys.modules["detectron2._C"] = stub = _make_stub_module()
        import detectron2

        detectron2._C = stub
        _register_failing_torch_ops()
    return _STATE["available"]


def compiled_ops_available() -> bool:
    """Whether detectron2's compiled extension is loaded (False means stand-ins are used)."""
    return ensure_detectron2_importable()
