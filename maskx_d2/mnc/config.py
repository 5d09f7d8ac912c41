"""Config keys of MNC, the Multi-task Network Cascade (``MODEL.MNC``).

Added to a config object by :func:`add_mnc_config` (which ``maskx_d2.add_maskx_config`` calls);
detectron2's global defaults are never touched. The cascade's other settings are detectron2's
own keys: stage 1 is ``MODEL.RPN``, the box pathway ``MODEL.ROI_BOX_HEAD``, the mask stage
``MODEL.ROI_MASK_HEAD``.
"""

from detectron2.config import CfgNode as CN

__all__ = ["add_mnc_config", "MASK_HEADS", "MASK_POOLINGS", "MASK_POOLING_FEATURES", "NUM_STAGES"]

NUM_STAGES = (3, 5)
MASK_POOLINGS = ("soft", "hard", "none")
MASK_POOLING_FEATURES = ("box", "mask")
# Mask heads whose ``layers(x)`` give (R, 1, M, M) class-agnostic logits: detectron2's conv head
# (with MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK) and the paper's two FC layers.
MASK_HEADS = ("MaskRCNNConvUpsampleHead", "MNCFCMaskHead")


def add_mnc_config(cfg):
    """Add ``MODEL.MNC`` to ``cfg`` (in place). Defaults are the paper's where it has one."""
    _C = cfg
    _C.MODEL.MNC = CN()
    # 3: box proposals (RPN) -> a class-agnostic mask per box -> classification of each box from
    #    its box features and its mask-pooled features (and box regression, detectron2's).
    # 5: stage 3's box regression refines every RoI, then stages 2-3 run again, with the same
    #    weights, on the refined boxes (stages 4-5); the detections are stage 5's.
    _C.MODEL.MNC.NUM_STAGES = 3
    # 5 stages only, inference: the candidates of stage 3 (on the proposals) and of stage 5 (on
    # the refined boxes) go together into detectron2's box inference (score threshold, class-wise
    # NMS, TEST.DETECTIONS_PER_IMAGE), as the paper merges its 300 + 300 boxes before NMS. False:
    # stage 5's candidates only. (The paper's mask voting after NMS is not built.)
    _C.MODEL.MNC.TEST_MERGE_STAGES = True
    # What the classification stage reads beside the box features:
    #   "soft": the RoI features times the predicted mask's probability averaged over each RoI
    #           bin (the paper's F_RoI * M),
    #   "hard": times the mask thresholded at 0.5 on the RoI grid (a bin is kept when the mask
    #           covers at least half of it on average): the binary gating of the masks that
    #           inference outputs; no gradient reaches the mask through it,
    #   "none": nothing (ablation: box features only, i.e. Mask R-CNN with a class-agnostic mask
    #           head that runs on every RoI).
    _C.MODEL.MNC.MASK_POOLING = "soft"
    # Which RoI features are mask-pooled:
    #   "box":  the box pooler's (ROI_BOX_HEAD.POOLER_RESOLUTION): in the paper the same RoI
    #           features feed both pathways; the mask pathway's head then has the box head's size,
    #   "mask": the mask pooler's (ROI_MASK_HEAD.POOLER_RESOLUTION), already pooled for the mask
    #           stage; the mask pathway's first FC is then (P_mask / P_box)^2 times larger.
    # Either way the mask pathway is a second box head (ROI_BOX_HEAD.NAME and its design, own
    # weights; the paper: two FCs), and the box predictor reads both heads' outputs concatenated.
    _C.MODEL.MNC.MASK_POOLING_FEATURES = "box"
    # Stop the classification loss's gradient into the mask stage through the mask it pools with.
    # On: only ground-truth masks train the mask stage, the partial-supervision rule of the rest
    # of the project. Off (the paper's end-to-end cascade): the classification loss of every RoI,
    # box-only and background ones included, also shapes the masks, toward whatever helps
    # classify rather than toward the object's extent. Either way no ground-truth mask is read:
    # the classification stage always sees the predicted mask.
    _C.MODEL.MNC.DETACH_MASK = True
    # Loss weights of the cascade (stage 1's are detectron2's MODEL.RPN.LOSS_WEIGHT and
    # MODEL.RPN.BBOX_REG_LOSS_WEIGHT, stage 3's box regression MODEL.ROI_BOX_HEAD.
    # BBOX_REG_LOSS_WEIGHT). Stage 2: the per-pixel BCE of the masks of the foreground RoIs whose
    # instance has a mask (loss key loss_mask).
    _C.MODEL.MNC.MASK_LOSS_WEIGHT = 1.0
    # Stage 3: the (K+1)-way classification of every sampled RoI (loss key loss_cls).
    _C.MODEL.MNC.CLS_LOSS_WEIGHT = 1.0
    # 5 stages only: multiplies every loss of stages 4-5 on the refined boxes (loss_mask_stage4,
    # loss_cls_stage5, loss_box_reg_stage5), on top of the weights above. The paper sums the
    # five stages' losses with equal weights.
    _C.MODEL.MNC.REFINED_LOSS_WEIGHT = 1.0
    # The paper's mask stage, MODEL.ROI_MASK_HEAD.NAME = "MNCFCMaskHead": a first FC from the
    # pooled C x P x P features to this width, a second regressing the (2P) x (2P) mask.
    _C.MODEL.MNC.FC_MASK_HEAD_DIM = 256
