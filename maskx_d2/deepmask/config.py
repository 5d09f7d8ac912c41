"""Config keys of DeepMask (``MODEL.DEEPMASK``).

Added to a config object by :func:`add_deepmask_config` (which ``maskx_d2.add_maskx_config``
calls); detectron2's global defaults are never touched. Defaults are the paper's (Pinheiro,
Collobert, Dollár, NeurIPS 2015) translated to a detectron2 trunk: lengths are in pixels of the
image as the trunk sees it at one pyramid scale ("patch pixels").
"""

from detectron2.config import CfgNode as CN

__all__ = ["SCORE_OBJECTS", "add_deepmask_config", "check_deepmask_config"]

# Which ground-truth instances are objects for the score branch (MODEL.DEEPMASK.SCORE_OBJECTS).
SCORE_OBJECTS = ("all", "masked", "masked_ignore")


def add_deepmask_config(cfg):
    """Add ``MODEL.DEEPMASK`` to ``cfg`` (in place)."""
    _C = cfg
    _C.MODEL.DEEPMASK = CN()
    # The trunk's output the branches read (the paper's trunk is ResNet without its last stage:
    # res4, stride 16). Its stride sets the window grid: one window per feature cell.
    _C.MODEL.DEEPMASK.IN_FEATURE = "res4"
    # Side of the square patch one window sees (paper: 224): a window of PATCH_SIZE / stride
    # cells (14 x 14 on res4). A multiple of twice the stride (the score branch max-pools 2x2).
    _C.MODEL.DEEPMASK.PATCH_SIZE = 224
    # Larger side of the object of a positive window (paper: 128 in a 224 patch).
    _C.MODEL.DEEPMASK.OBJECT_SIZE = 128
    # A window is a positive of an object when the object's box centre is within this many
    # pixels of the window's centre along x and along y (paper: +-16, one stride: every object
    # has a window of the grid that close), its larger side is within OBJECT_SIZE x
    # 2^(+-SCALE_TOLERANCE) (paper: 2^(+-1/4), half the pyramid's sqrt(2) step: each object fits
    # one scale), and its box lies entirely inside the window. Every other window is a negative.
    _C.MODEL.DEEPMASK.CENTER_TOLERANCE = 16.0
    _C.MODEL.DEEPMASK.SCALE_TOLERANCE = 0.25
    # The image pyramid, as log2 of the scales (paper: 2^-2 to 2^1 in steps of sqrt(2)).
    # Inference runs on every scale; training, per image, on the one that fits a random object.
    _C.MODEL.DEEPMASK.SCALES_LOG2 = [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0]
    # Segmentation branch: a 1x1 conv (+ReLU) to MASK_CONV_DIM channels (paper, VGG: 512, as
    # its input; the published ResNet code: 128), then the low-rank FC: window -> MASK_RANK
    # (paper: 512) -> MASK_SIZE^2 (paper: 56 x 56), no non-linearity between the two.
    _C.MODEL.DEEPMASK.MASK_CONV_DIM = 512
    _C.MODEL.DEEPMASK.MASK_RANK = 512
    _C.MODEL.DEEPMASK.MASK_SIZE = 56
    # Score branch: 2x2 max pooling, FC layers of these widths, each + ReLU (paper: 512 and
    # 1024), and a last FC to one logit.
    _C.MODEL.DEEPMASK.SCORE_FC_DIMS = [512, 1024]
    # Training windows sampled per image (on the grid of the image's scale), at most this
    # fraction of them positives, the rest negatives (as detectron2's subsample_labels). The paper
    # balances positives and negatives.
    _C.MODEL.DEEPMASK.WINDOWS_PER_IMAGE = 32
    _C.MODEL.DEEPMASK.POSITIVE_FRACTION = 0.5
    # Partial supervision. The segmentation branch learns only from positive windows of
    # instances with a mask (gt_has_mask); a positive of a box-only instance gives no mask loss.
    # The score branch learns objectness from:
    #   "all":           every instance, with or without a mask (B's boxes teach objectness);
    #   "masked":        only instances with a mask; windows centred on a box-only one are
    #                    negatives. This is DeepMask20: trained on the annotations of the 20
    #                    PASCAL classes only, it never knew the other objects, so windows on them
    #                    were sampled as background;
    #   "masked_ignore": as "masked", but such windows are neither positives nor negatives.
    _C.MODEL.DEEPMASK.SCORE_OBJECTS = "all"
    # Loss weights (loss keys loss_mask: mean per-pixel binary cross-entropy over the positives
    # with masks; loss_score: mean binary cross-entropy over the sampled windows).
    _C.MODEL.DEEPMASK.MASK_LOSS_WEIGHT = 1.0
    _C.MODEL.DEEPMASK.SCORE_LOSS_WEIGHT = 1.0
    # Inference: the TOPK_TEST best-scored windows of all scales (no NMS, as the published code)
    # become proposals; a pixel is in a mask when its probability reaches MASK_THRESHOLD.
    _C.MODEL.DEEPMASK.TOPK_TEST = 1000
    _C.MODEL.DEEPMASK.MASK_THRESHOLD = 0.5


def check_deepmask_config(dm, feature_shapes):
    """Check ``MODEL.DEEPMASK`` (``dm``) against the backbone's ``output_shape()``; return the
    ShapeSpec of IN_FEATURE. Raises ValueError naming the key."""
    if dm.IN_FEATURE not in feature_shapes:
        raise ValueError(
            f"MODEL.DEEPMASK.IN_FEATURE={dm.IN_FEATURE!r}: the backbone gives "
            f"{sorted(feature_shapes)} (MODEL.RESNETS.OUT_FEATURES)"
        )
    stride = feature_shapes[dm.IN_FEATURE].stride
    if dm.PATCH_SIZE <= 0 or dm.PATCH_SIZE % (2 * stride):
        raise ValueError(
            f"MODEL.DEEPMASK.PATCH_SIZE={dm.PATCH_SIZE} must be a positive multiple of twice the "
            f"stride of {dm.IN_FEATURE} ({2 * stride}): a window of whole cells, which the score "
            "branch max-pools 2x2"
        )
    checks = [
        ("OBJECT_SIZE", 0 < dm.OBJECT_SIZE <= dm.PATCH_SIZE, "in (0, PATCH_SIZE]"),
        ("CENTER_TOLERANCE", dm.CENTER_TOLERANCE >= 0, ">= 0"),
        ("SCALE_TOLERANCE", dm.SCALE_TOLERANCE >= 0, ">= 0"),
        ("SCALES_LOG2", len(dm.SCALES_LOG2) > 0, "non-empty"),
        ("SCORE_OBJECTS", dm.SCORE_OBJECTS in SCORE_OBJECTS, f"one of {SCORE_OBJECTS}"),
        ("WINDOWS_PER_IMAGE", dm.WINDOWS_PER_IMAGE >= 1, ">= 1"),
        ("POSITIVE_FRACTION", 0 < dm.POSITIVE_FRACTION <= 1, "in (0, 1]"),
        ("SCORE_FC_DIMS", all(d >= 1 for d in dm.SCORE_FC_DIMS), "positive widths"),
    ]
    checks += [(k, dm[k] >= 1, ">= 1") for k in ("MASK_CONV_DIM", "MASK_RANK", "MASK_SIZE")]
    checks += [("TOPK_TEST", dm.TOPK_TEST >= 1, ">= 1")]
    for key, ok, what in checks:
        if not ok:
            raise ValueError(f"MODEL.DEEPMASK.{key}={dm[key]!r} must be {what}")
    return feature_shapes[dm.IN_FEATURE]
