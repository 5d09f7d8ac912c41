"""Config keys of BlendMask (``MODEL.BLENDMASK``) and of detectron2's FCOS (``MODEL.FCOS``).

detectron2 ships FCOS only through its lazy Python configs; these keys give it a YAML form.
They are added to a config object by :func:`add_blendmask_config` (which
``maskx_d2.add_maskx_config`` calls); detectron2's global defaults are never touched.
"""

from detectron2.config import CfgNode as CN

__all__ = ["add_blendmask_config"]


def add_blendmask_config(cfg):
    """Add ``MODEL.FCOS`` and ``MODEL.BLENDMASK`` to ``cfg`` (in place). Defaults are those of
    detectron2's FCOS and AdelaiDet's BlendMask R-50 recipe."""
    _C = cfg
    _C.MODEL.FCOS = CN()
    # Number of foreground classes (the datasets of this project also set
    # MODEL.ROI_HEADS.NUM_CLASSES for the two-stage models; FCOS reads only this one).
    _C.MODEL.FCOS.NUM_CLASSES = 80
    # FPN levels the detection head runs on, finest first (each gets its object-size range).
    _C.MODEL.FCOS.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
    # 3x3 convs in each of the two towers (classification; box + centerness + attention).
    _C.MODEL.FCOS.NUM_CONVS = 4
    # Normalization in the towers ("GN" as FCOS; "" for none).
    _C.MODEL.FCOS.NORM = "GN"
    # Initial foreground probability of the classifier (focal-loss initialization).
    _C.MODEL.FCOS.PRIOR_PROB = 0.01
    # A location is a positive of a box when it lies within this many strides of the box's centre
    # (and inside the box, on the FPN level whose size range holds the box).
    _C.MODEL.FCOS.CENTER_SAMPLING_RADIUS = 1.5
    _C.MODEL.FCOS.FOCAL_LOSS_ALPHA = 0.25
    _C.MODEL.FCOS.FOCAL_LOSS_GAMMA = 2.0
    # Inference: locations scoring below this (sqrt(class prob x centerness)) are dropped,
    # at most TOPK_CANDIDATES_TEST per level are decoded, then class-wise NMS.
    _C.MODEL.FCOS.SCORE_THRESH_TEST = 0.05
    _C.MODEL.FCOS.TOPK_CANDIDATES_TEST = 1000
    _C.MODEL.FCOS.NMS_THRESH_TEST = 0.6

    _C.MODEL.BLENDMASK = CN()
    # K: number of bases the bottom module predicts for the whole image.
    _C.MODEL.BLENDMASK.NUM_BASES = 4
    # R: side of the bases cropped to each box with RoIAlign; the masks are R x R.
    _C.MODEL.BLENDMASK.BOTTOM_RESOLUTION = 56
    # M: side of the attention maps the top layer predicts per location (K x M x M channels),
    # upsampled (bilinear) to R x R before the softmax over K.
    _C.MODEL.BLENDMASK.ATTENTION_RESOLUTION = 14
    # Bottom module: its input FPN levels (finest first; each is refined by a 3x3 conv and
    # upsampled to the first one), the width and number of 3x3 convs of its tower, and its
    # normalization. Its output is upsampled x2: bases at half the first level's stride.
    _C.MODEL.BLENDMASK.BOTTOM_IN_FEATURES = ["p3", "p4", "p5"]
    _C.MODEL.BLENDMASK.BOTTOM_CONV_DIM = 128
    _C.MODEL.BLENDMASK.BOTTOM_NUM_CONV = 3
    _C.MODEL.BLENDMASK.BOTTOM_NORM = "BN"
    # Weight of the per-pixel binary cross-entropy of the blended masks (loss key loss_mask).
    _C.MODEL.BLENDMASK.MASK_LOSS_WEIGHT = 1.0
    # At most this many positive locations (of instances with masks) train the blender per
    # batch, drawn at random; -1 = all of them.
    _C.MODEL.BLENDMASK.MAX_TRAIN_MASKS = -1
    # Inference: a pixel is in the mask when the blended mask's probability reaches this.
    _C.MODEL.BLENDMASK.MASK_THRESHOLD = 0.5
