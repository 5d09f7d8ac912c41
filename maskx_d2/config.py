"""Config keys of Mask^X R-CNN, added under ``MODEL.MASKX`` (see ../shared/docs reference)."""

from detectron2.config import CfgNode as CN

from .blendmask.config import add_blendmask_config
from .deepmask.config import add_deepmask_config
from .mnc.config import add_mnc_config

__all__ = ["add_maskx_config", "MASK_PREDICTORS", "MASK_TRAIN_BOXES", "TRANSFER_INPUTS"]

MASK_PREDICTORS = ("transfer", "class_agnostic", "class_specific")
MASK_TRAIN_BOXES = ("proposals", "gt", "both")
TRANSFER_INPUTS = ("cls", "box", "cls+box", "embedding")


def add_maskx_config(cfg):
    """Add Mask^X R-CNN's keys to a detectron2 config (in place). Defaults are the paper's.
    The keys of the other systems (BlendMask's, FCOS's) are added too, so one config object
    serves every model of the project."""
    add_blendmask_config(cfg)
    add_deepmask_config(cfg)
    add_mnc_config(cfg)
    _C = cfg
    _C.MODEL.MASKX = CN()
    # How per-class mask weights are obtained:
    #   "transfer":       predicted from the detector's class weights by T (Mask^X R-CNN),
    #   "class_agnostic": one mask channel shared by all classes (the paper's baseline),
    #   "class_specific": one learned 1x1-conv channel per class (plain Mask R-CNN; the
    #                     fully supervised oracle when every class has masks).
    _C.MODEL.MASKX.MASK_PREDICTOR = "transfer"
    # Stage-wise training: backbone, RPN and box head are frozen and give no losses; only the
    # mask branch (FCN, T, MLP) trains. Needs MODEL.META_ARCHITECTURE = "MaskXRCNN".
    _C.MODEL.MASKX.FREEZE_DETECTOR = False

    _C.MODEL.MASKX.TRANSFER = CN()
    # Input of the weight transfer function T (Table 1a):
    #   "cls" = box-classifier row of the class (D numbers), "box" = its 4 box-regression rows
    #   (4D), "cls+box" = both (5D, best), "embedding" = row of EMBEDDING_FILE (e.g. GloVe).
    _C.MODEL.MASKX.TRANSFER.INPUT = "cls+box"
    # Path to a float (K, E) .npy of per-class vectors, K = ROI_HEADS.NUM_CLASSES, rows in
    # contiguous class order. Only read when INPUT == "embedding".
    _C.MODEL.MASKX.TRANSFER.EMBEDDING_FILE = ""
    # Number of FC layers of T (Table 1b): 1, 2 (best) or 3.
    _C.MODEL.MASKX.TRANSFER.NUM_LAYERS = 2
    # Width of T's hidden layers (the paper uses the mask head width, 256).
    _C.MODEL.MASKX.TRANSFER.HIDDEN_DIM = 256
    # Activation between T's layers: "relu", "leaky_relu" (best) or "none" (a linear T; with
    # NUM_LAYERS 2 and a narrow HIDDEN_DIM r, a linear T of rank <= r). None after the last FC.
    _C.MODEL.MASKX.TRANSFER.ACTIVATION = "leaky_relu"
    # Negative slope of the LeakyReLU.
    _C.MODEL.MASKX.TRANSFER.LEAKY_RELU_SLOPE = 0.1
    # Stop-gradient on the detector weights fed to T (Table 1d): the mask loss then never moves
    # the box classifier/regressor. Best for end-to-end training.
    _C.MODEL.MASKX.TRANSFER.DETACH_DET_WEIGHTS = True

    _C.MODEL.MASKX.MLP_BRANCH = CN()
    # Class-agnostic MLP branch ("transfer+MLP", Table 1c): FC layers on the flattened
    # C x M x M mask feature map whose M x M output is added to every class's mask logits.
    _C.MODEL.MASKX.MLP_BRANCH.ENABLED = False
    # Number of FC layers: 1 = the paper's single FC from C*M*M to M*M (~157M parameters at
    # C=256, M=28); 2 or 3 insert hidden layers of FC_DIM with ReLU.
    _C.MODEL.MASKX.MLP_BRANCH.NUM_FC = 1
    # Width of the hidden FC layers (unused when NUM_FC == 1).
    _C.MODEL.MASKX.MLP_BRANCH.FC_DIM = 1024

    _C.MODEL.MASKX.HEAD = CN()
    # The mask head's body before its deconv (maskx_d2/modeling/mask_fcn.py):
    #   "fcn":       ROI_MASK_HEAD.NUM_CONV 3x3 convs of CONV_DIM (Mask R-CNN, the paper),
    #   "residual":  a 1x1 projection to CONV_DIM and NUM_BLOCKS residual blocks,
    #   "hourglass": an hourglass with one halving per entry of HOURGLASS_CHANNELS after the
    #                first, HOURGLASS_BLOCKS residual blocks per level (Deep-MARC's head family;
    #                the defaults are its hourglass-52), then a 1x1 conv to CONV_DIM.
    # The RoI side is ROI_MASK_HEAD.POOLER_RESOLUTION (Deep-MARC: 32); the masks are twice it.
    _C.MODEL.MASKX.HEAD.ARCHITECTURE = "fcn"
    _C.MODEL.MASKX.HEAD.NUM_BLOCKS = 8
    _C.MODEL.MASKX.HEAD.HOURGLASS_CHANNELS = [128, 128, 192, 192, 192, 256]
    _C.MODEL.MASKX.HEAD.HOURGLASS_BLOCKS = [2, 2, 2, 2, 2, 4]

    # The boxes the mask branch trains on (inference always uses the detections):
    #   "proposals": the sampled foreground proposals (Mask R-CNN, the paper),
    #   "gt":        the ground-truth boxes of the instances that have masks (Deep-MARC, Birodkar
    #                et al. 2021: the head learns from well-centred boxes and needs no proposals),
    #   "both":      the union of the two.
    _C.MODEL.MASKX.MASK_TRAIN_BOXES = "proposals"
    # With "gt" or "both": each coordinate of a ground-truth box is moved by up to this fraction
    # of the box's width (x) or height (y), uniformly at random, then clipped to the image, so
    # that the head also sees the imprecise boxes of inference. 0 = exact boxes.
    _C.MODEL.MASKX.GT_BOX_JITTER = 0.0

    # Boxes as weak masks for the box-only classes (BoxInst, Tian et al. CVPR 2021). Off by
    # default. With a positive weight, the RoIs of box-only instances reach the mask branch too,
    # never through the ordinary mask loss, only through:
    _C.MODEL.MASKX.BOX_SUPERVISION = CN()
    # the projection loss: the predicted mask's maximum along y (one value per column) and along x
    # (per row) must match the ground-truth box's extent in the RoI, a dice loss on each of the
    # two projections (loss key loss_mask_projection = this weight x the mean over the RoIs).
    _C.MODEL.MASKX.BOX_SUPERVISION.PROJECTION_WEIGHT = 0.0
    # and the pairwise colour-affinity loss: each cell of the RoI's mask grid inside the box and
    # each of its 8 neighbours (inside the box or not) whose colour similarity
    # exp(-||Lab_i - Lab_j|| / 2) reaches PAIRWISE_THRESHOLD should share a label (loss key
    # loss_mask_pairwise = this weight x the mean -log P(same label)). The pairs across the
    # box's edge tie its background to the outside, where the projection loss says 0. On the
    # embedded benchmark a weight of 1 (BoxInst's) makes box-only masks fill their box; 0.25
    # with PAIRWISE_COLOUR_SMOOTHING 3 and GT_BOX_PADDING 0.5 gave masks that follow the object
    # (docs/table1c_synthetic.md, "The options beyond the paper").
    _C.MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WEIGHT = 0.0
    _C.MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_THRESHOLD = 0.3
    # Distance in grid cells between the two cells of a pair (BoxInst: 2 on its 1/4-resolution
    # image mask; a RoI's 28 x 28 grid is already coarse).
    _C.MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_DILATION = 1
    # The colours the pairwise loss compares are first averaged over this odd window of image
    # pixels (1 = the pixel itself). BoxInst reads them from a 4x average-pooled image; on noisy
    # images most pairs of neighbouring pixels of one surface otherwise fail the threshold.
    _C.MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_COLOUR_SMOOTHING = 1
    # The pairwise weight rises linearly from 0 over this many iterations (BoxInst: 10000), so
    # that the projection loss shapes the masks first; 0 = the full weight from the start.
    _C.MODEL.MASKX.BOX_SUPERVISION.PAIRWISE_WARMUP_ITERS = 0
    # Both losses learn the background from the RoI's cells outside the box. Proposals usually
    # reach beyond their boxes; a ground-truth-box RoI (MASK_TRAIN_BOXES "gt" or "both") is the
    # box itself, so the RoIs of box-only instances grow by this fraction of the box's size on
    # every side (clipped to the image). 0 = not padded.
    _C.MODEL.MASKX.BOX_SUPERVISION.GT_BOX_PADDING = 0.0

    # OPMask's class activation prior (Biertimpel et al. 2021), off by default: the box head's
    # class activation map (CAM) of each mask RoI's class (training: its ground-truth class,
    # inference: the detected class) is resized to the mask pooler's side and added to every
    # channel of the RoI's pooled mask features. The CAM is the box classifier's row of that
    # class applied at each position of the box head's last conv map, so it exists for every
    # class the detector knows, with or without masks. Needs MODEL.ROI_BOX_HEAD.NAME =
    # "ConvGAPBoxHead" (convs, then global average pooling, no FC: maskx_d2/modeling/
    # conv_gap_box_head.py) and MODEL.ROI_BOX_HEAD.NUM_FC = 0.
    _C.MODEL.MASKX.CLASS_ACTIVATION_PRIOR = CN()
    _C.MODEL.MASKX.CLASS_ACTIVATION_PRIOR.ENABLED = False
    # Per-RoI scaling of the CAM before it is added:
    #   "minmax": (cam - min) / (max - min), into [0, 1] (OPMask). The raw CAM's scale follows
    #             the classifier's, which grows in training; scaled, the prior stays comparable to
    #             the features it is added to.
    #   "max":    cam / max |cam|, into [-1, 1], keeping the sign and where the CAM is 0.
    #   "none":   the raw CAM.
    _C.MODEL.MASKX.CLASS_ACTIVATION_PRIOR.NORMALIZATION = "minmax"
    # Stop the mask loss's gradient into the box classifier's class rows (OPMask does): only the
    # classes with masks get mask loss, so it would move only their rows, the asymmetry between
    # A and B that MODEL.MASKX.TRANSFER.DETACH_DET_WEIGHTS avoids for T.
    _C.MODEL.MASKX.CLASS_ACTIVATION_PRIOR.DETACH_CLASS_WEIGHTS = True
    # Stop the mask loss's gradient into the box head's convs through the CAM. Off (OPMask lets
    # it flow): those convs are shared by all classes, like the backbone that the mask loss
    # already trains, so the mask loss can shape the map toward object extent for B as well.
    _C.MODEL.MASKX.CLASS_ACTIVATION_PRIOR.DETACH_BOX_HEAD = False

    # The backward of the box, mask (and BlendMask) poolers' RoIAlign in training on the CPU:
    #   "auto":        two matrix products where they are cheaper than torchvision's kernel
    #                  (small feature maps, as the synthetic benchmark's), the same gradients up
    #                  to float rounding (maskx_d2/layers/roi_align.py); torchvision's otherwise;
    #   "torchvision": always torchvision's kernel (the project's runs before 2026-12-05).
    # CUDA and inference always use torchvision's kernels.
    _C.MODEL.ROI_ALIGN_BACKWARD = "auto"

    _C.TEST.MASKX = CN()
    # Mask quality on ground-truth boxes: on evaluation sets of type "coco_partial" that have
    # masks, the mask branch also predicts a mask for every ground-truth instance with a mask,
    # from its ground-truth box and class, and the evaluator reports mean mask IoU and COCO mask
    # AP with those boxes as detections (score 1) on all classes, A and B (result keys
    # segm_gtbox, segm_gtbox_A, segm_gtbox_B). Detection then plays no part in the numbers.
    # Sets without masks (Visual Genome) skip it with one log line.
    _C.TEST.MASKX.GT_BOX_EVAL = True
    # Proposal recall: also evaluate the model's outputs (detections, or an RPN's proposals) as
    # class-agnostic proposals, as COCO does (pycocotools, useCats=0): box and, with masks, mask
    # AR@10/100/1000 and by object size on all classes, A and B, in a second table (result keys
    # proposals_box, proposals_box_A, proposals_box_B, proposals_segm, ...; proposal_recall.py).
    _C.TEST.MASKX.PROPOSAL_RECALL = False
