"""MaskXMaskHead: detectron2's mask FCN with Mask^X R-CNN's class-specific mask predictors.

Shape letters: R RoIs, C mask-head width (256), M mask side (28), K foreground classes,
U distinct classes among the R RoIs.

The FCN (4 x conv3x3 + deconv, from :class:`MaskRCNNConvUpsampleHead`) is unchanged. Only the
last step differs: instead of a 1x1 conv producing K x M x M logits per RoI and then picking one
channel, we gather each RoI's own (C,) mask weight and compute only its M x M logits. Memory
and time therefore do not grow with K, which is what makes 3000 classes trainable.
"""

from typing import List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec, cat
from detectron2.modeling.roi_heads.mask_head import (
    ROI_MASK_HEAD_REGISTRY,
    MaskRCNNConvUpsampleHead,
    mask_rcnn_inference,
    mask_rcnn_loss,
)
from detectron2.structures import Instances
from detectron2.utils.events import get_event_storage
from torch import nn

from ..config import MASK_PREDICTORS
from .box_supervision import box_projection_loss, pairwise_affinity_loss
from .mask_fcn import MASK_HEAD_ARCHITECTURES, HourglassFCN, ResidualFCN
from .mlp_branch import MaskMLPBranch
from .partial_supervision import mask_availability
from .weight_transfer import (
    WeightTransfer,
    check_box_predictor,
    gather_detector_weights,
    transfer_input_dim,
)

__all__ = ["MaskXMaskHead", "box_head_output_dim", "build_mask_body", "load_class_embeddings"]


def box_head_output_dim(cfg) -> int:
    """D: width of the features that the box head (detectron2's FastRCNNConvFCHead, or
    ConvGAPBoxHead: the global average of its last conv map) gives the box predictor."""
    head = cfg.MODEL.ROI_BOX_HEAD
    if head.NAME == "ConvGAPBoxHead":
        return head.CONV_DIM
    if head.NUM_FC > 0:
        return head.FC_DIM
    res = head.POOLER_RESOLUTION
    channels = head.CONV_DIM if head.NUM_CONV > 0 else cfg.MODEL.FPN.OUT_CHANNELS
    return channels * res * res


def load_class_embeddings(path: str, num_classes: int) -> torch.Tensor:
    """Read a (K, E) float .npy of per-class vectors (rows in contiguous class order)."""
    if not path:
        raise ValueError(
            "MODEL.MASKX.TRANSFER.INPUT='embedding' needs "
            "MODEL.MASKX.TRANSFER.EMBEDDING_FILE (a K x E .npy file)"
        )
    try:
        array = np.load(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"Cannot read class embeddings from {path}: {e}") from e
    if array.ndim != 2 or array.shape[0] != num_classes:
        raise ValueError(
            f"Class embeddings in {path} have shape {array.shape}; expected "
            f"({num_classes}, E) for MODEL.ROI_HEADS.NUM_CLASSES={num_classes}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"Class embeddings in {path} contain NaN or inf")
    return torch.as_tensor(array, dtype=torch.float32)


def build_mask_body(cfg, in_channels: int, conv_dims: List[int]) -> Optional[nn.Module]:
    """The body of ``MODEL.MASKX.HEAD`` (None for "fcn": the head's own convs)."""
    head = cfg.MODEL.MASKX.HEAD
    if head.ARCHITECTURE not in MASK_HEAD_ARCHITECTURES:
        raise ValueError(
            f"MODEL.MASKX.HEAD.ARCHITECTURE must be one of {MASK_HEAD_ARCHITECTURES}, "
            f"got {head.ARCHITECTURE!r}"
        )
    if head.ARCHITECTURE == "fcn":
        return None
    if len(conv_dims) < 2:
        raise ValueError(
            f"MODEL.MASKX.HEAD.ARCHITECTURE={head.ARCHITECTURE!r} needs "
            "MODEL.ROI_MASK_HEAD.NUM_CONV >= 1 (CONV_DIM sets the body's width)"
        )
    channels, norm = conv_dims[-2], cfg.MODEL.ROI_MASK_HEAD.NORM
    if head.ARCHITECTURE == "residual":
        return ResidualFCN(in_channels, channels, head.NUM_BLOCKS, norm)
    return HourglassFCN(in_channels, channels, head.HOURGLASS_CHANNELS, head.HOURGLASS_BLOCKS, norm)


@ROI_MASK_HEAD_REGISTRY.register()
class MaskXMaskHead(MaskRCNNConvUpsampleHead):
    """Mask FCN + one of three predictors, optionally + the class-agnostic MLP branch.

    ``mask_predictor``:
      - "class_specific": a learned 1x1 conv with K output channels (plain Mask R-CNN). Its
        parameters are named like detectron2's (``predictor.*``) so Mask R-CNN checkpoints load.
      - "class_agnostic": a learned 1x1 conv with one output channel shared by all classes.
      - "transfer": no learned per-class weights; ``transfer`` (T) maps the detector's weights
        of each class (or a fixed class embedding) to a (C,) bias-free 1x1-conv weight.
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        num_classes: int,
        conv_dims: List[int],
        conv_norm="",
        mask_predictor: str = "transfer",
        transfer: Optional[WeightTransfer] = None,
        transfer_input: str = "cls+box",
        class_embeddings: Optional[torch.Tensor] = None,
        detach_det_weights: bool = True,
        mlp_branch: Optional[MaskMLPBranch] = None,
        projection_weight: float = 0.0,
        pairwise_weight: float = 0.0,
        pairwise_threshold: float = 0.3,
        pairwise_dilation: int = 1,
        pairwise_warmup_iters: int = 0,
        body: Optional[nn.Module] = None,
        **kwargs,
    ):
        """
        Args:
            input_shape, conv_dims, conv_norm: as in :class:`MaskRCNNConvUpsampleHead`.
            num_classes (int): K, the number of foreground classes.
            mask_predictor (str): "transfer", "class_agnostic" or "class_specific".
            transfer (WeightTransfer): T, required for "transfer".
            transfer_input (str): "cls", "box", "cls+box" or "embedding".
            class_embeddings (Tensor): (K, E) fixed class vectors, for "embedding".
            detach_det_weights (bool): stop the mask loss's gradient into the detector weights.
            mlp_branch (MaskMLPBranch or None): class-agnostic MLP branch.
            projection_weight (float): weight of the box projection loss of the RoIs of
                box-only instances (:mod:`.box_supervision`); 0: none.
            pairwise_weight, pairwise_threshold, pairwise_dilation: the pairwise colour loss of
                those RoIs (they then carry ``gt_lab``); weight 0: none.
            pairwise_warmup_iters: the pairwise weight rises linearly over these iterations.
            body (nn.Module or None): replaces the 3x3 convs (:mod:`.mask_fcn`): maps
                (R, C_in, P, P) to (R, conv_dims[-2], P, P), before the deconv. None: the convs.
        """
        if mask_predictor not in MASK_PREDICTORS:
            raise ValueError(
                f"MODEL.MASKX.MASK_PREDICTOR must be one of {MASK_PREDICTORS}, "
                f"got {mask_predictor!r}"
            )
        predictor_channels = {"class_specific": num_classes}.get(mask_predictor, 1)
        super().__init__(
            input_shape,
            num_classes=predictor_channels,
            conv_dims=conv_dims,
            conv_norm=conv_norm,
            **kwargs,
        )
        if body is not None:
            # The deconv (built above for conv_dims[-2] channels) stays; the convs go.
            for k in range(len(self.conv_norm_relus)):
                delattr(self, f"mask_fcn{k + 1}")
            self.conv_norm_relus = []
        self.body = body
        self.num_classes = num_classes
        self.mask_predictor = mask_predictor
        self.transfer_input = transfer_input
        self.detach_det_weights = detach_det_weights
        if mask_predictor == "transfer":
            if transfer is None:
                raise ValueError("mask_predictor='transfer' needs a WeightTransfer module")
            if transfer.out_dim != conv_dims[-1]:
                raise ValueError(
                    f"T outputs {transfer.out_dim} numbers per class but the mask "
                    f"features have {conv_dims[-1]} channels"
                )
            # T replaces the learned per-class 1x1 conv.
            del self.predictor
            self.transfer = transfer
            if transfer_input == "embedding":
                if class_embeddings is None or class_embeddings.shape[0] != num_classes:
                    raise ValueError("transfer_input='embedding' needs (K, E) class_embeddings")
                self.register_buffer("class_embeddings", class_embeddings)
        self.mlp_branch = mlp_branch
        self.projection_weight = projection_weight
        self.pairwise_weight = pairwise_weight
        self.pairwise_threshold = pairwise_threshold
        self.pairwise_dilation = pairwise_dilation
        self.pairwise_warmup_iters = pairwise_warmup_iters

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        mx = cfg.MODEL.MASKX
        num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
        conv_dim = ret["conv_dims"][-1]
        ret.update(
            num_classes=num_classes,
            mask_predictor=mx.MASK_PREDICTOR,
            transfer_input=mx.TRANSFER.INPUT,
            detach_det_weights=mx.TRANSFER.DETACH_DET_WEIGHTS,
            projection_weight=mx.BOX_SUPERVISION.PROJECTION_WEIGHT,
            pairwise_weight=mx.BOX_SUPERVISION.PAIRWISE_WEIGHT,
            pairwise_threshold=mx.BOX_SUPERVISION.PAIRWISE_THRESHOLD,
            pairwise_dilation=mx.BOX_SUPERVISION.PAIRWISE_DILATION,
            pairwise_warmup_iters=mx.BOX_SUPERVISION.PAIRWISE_WARMUP_ITERS,
            body=build_mask_body(cfg, input_shape.channels, ret["conv_dims"]),
        )
        if cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK and mx.MASK_PREDICTOR != "class_agnostic":
            raise ValueError(
                "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK=True conflicts with "
                f"MODEL.MASKX.MASK_PREDICTOR={mx.MASK_PREDICTOR!r}; use "
                "MASK_PREDICTOR='class_agnostic' instead"
            )
        if mx.MASK_PREDICTOR == "transfer":
            embedding_dim = None
            if mx.TRANSFER.INPUT == "embedding":
                ret["class_embeddings"] = load_class_embeddings(
                    mx.TRANSFER.EMBEDDING_FILE, num_classes
                )
                embedding_dim = ret["class_embeddings"].shape[1]
            in_dim = transfer_input_dim(mx.TRANSFER.INPUT, box_head_output_dim(cfg), embedding_dim)
            ret["transfer"] = WeightTransfer(
                in_dim,
                conv_dim,
                num_layers=mx.TRANSFER.NUM_LAYERS,
                hidden_dim=mx.TRANSFER.HIDDEN_DIM,
                activation=mx.TRANSFER.ACTIVATION,
                leaky_relu_slope=mx.TRANSFER.LEAKY_RELU_SLOPE,
            )
        if mx.MLP_BRANCH.ENABLED:
            # The deconv doubles the pooled resolution: 14 -> 28.
            ret["mlp_branch"] = MaskMLPBranch(
                conv_dim,
                2 * input_shape.height,
                num_fc=mx.MLP_BRANCH.NUM_FC,
                fc_dim=mx.MLP_BRANCH.FC_DIM,
            )
        return ret

    def check_box_predictor(self, box_predictor: nn.Module) -> None:
        """Fail at construction, not mid-training, if T cannot be fed by ``box_predictor``."""
        if self.mask_predictor != "transfer" or self.transfer_input == "embedding":
            return
        det_dim = check_box_predictor(box_predictor, self.transfer_input, self.num_classes)
        expected = transfer_input_dim(self.transfer_input, det_dim)
        if expected != self.transfer.in_dim:
            raise ValueError(
                f"T expects {self.transfer.in_dim}-d inputs but the box predictor "
                f"gives {expected}-d '{self.transfer_input}' weights (D={det_dim})"
            )

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        """The mask FCN: (R, C_in, M/2, M/2) pooled features -> (R, C, M, M) mask features."""
        if self.body is not None:
            x = self.body(x)
        for conv in self.conv_norm_relus:
            x = conv(x)
        return self.deconv_relu(self.deconv(x))

    def per_roi_mask_weights(self, classes: torch.Tensor, box_predictor: Optional[nn.Module]):
        """Each RoI's 1x1-conv weight (R, C) and bias (R,) or None, for its class (R,)."""
        if self.mask_predictor != "transfer":
            weight = self.predictor.weight.flatten(1)  # (K or 1, C)
            bias = self.predictor.bias
            if self.mask_predictor == "class_agnostic":
                classes = torch.zeros_like(classes)
            return weight[classes], bias[classes]
        # T runs once per forward, on the U distinct classes only (U <= min(R, K)).
        unique_classes, roi_to_unique = torch.unique(classes, return_inverse=True)
        if self.transfer_input == "embedding":
            det_weights = self.class_embeddings[unique_classes]
        else:
            if box_predictor is None:
                raise ValueError("MaskXMaskHead in 'transfer' mode needs the box predictor")
            det_weights = gather_detector_weights(
                box_predictor, self.transfer_input, unique_classes
            )
            if self.detach_det_weights:
                det_weights = det_weights.detach()
        return self.transfer(det_weights)[roi_to_unique], None

    def mask_logits(
        self,
        mask_features: torch.Tensor,
        classes: torch.Tensor,
        box_predictor: Optional[nn.Module] = None,
    ) -> torch.Tensor:
        """(R, C, M, M) features and (R,) classes -> (R, 1, M, M) logits of each RoI's class."""
        weight, bias = self.per_roi_mask_weights(classes, box_predictor)
        logits = torch.einsum("rchw,rc->rhw", mask_features, weight)
        if bias is not None:
            logits = logits + bias[:, None, None]
        if self.mlp_branch is not None:
            logits = logits + self.mlp_branch(mask_features)
        return logits[:, None]

    def forward(
        self, x: torch.Tensor, instances: List[Instances], box_predictor: Optional[nn.Module] = None
    ):
        """
        Args:
            x: (R, C_in, M/2, M/2) pooled RoI features.
            instances: per image; in training the mask-supervised foreground proposals (with
                ``gt_classes``, ``gt_masks``, ``proposal_boxes``), in inference the detections
                (with ``pred_classes``).
            box_predictor: the ROI heads' FastRCNNOutputLayers, source of T's input.
        Returns:
            {"loss_mask": scalar} in training; ``instances`` with ``pred_masks`` (R_i, 1, M, M)
            in inference.
        """
        mask_features = self.layers(x)
        field = "gt_classes" if self.training else "pred_classes"
        classes = (
            cat([i.get(field) for i in instances])
            if instances
            else torch.zeros(0, dtype=torch.int64, device=x.device)
        )
        logits = self.mask_logits(mask_features, classes.to(torch.int64), box_predictor)
        if self.training:
            return self.losses(logits, instances)
        mask_rcnn_inference(logits, instances)
        return instances

    def losses(self, logits: torch.Tensor, instances: List[Instances]):
        """The ordinary mask loss on the RoIs whose instance has a mask; with positive weights,
        the box projection and pairwise colour losses on the others. (R, 1, M, M) logits of the
        RoIs of ``instances``, in order. With no RoI of a kind its loss is ``logits.sum() * 0``:
        zero, and still reaching every mask-branch parameter, so DDP sees no unused parameters."""
        per_image = [mask_availability(i) for i in instances]
        masked = [i[h] for i, h in zip(instances, per_image)]
        has_mask = cat(per_image) if instances else torch.zeros(0, dtype=torch.bool)
        has_mask = has_mask.to(logits.device)
        loss = mask_rcnn_loss(logits[has_mask], masked, self.vis_period)
        losses = {"loss_mask": loss * self.loss_weight}
        if self.projection_weight <= 0 and self.pairwise_weight <= 0:
            return losses
        box_only = [i[~h] for i, h in zip(instances, per_image)]
        box_only_logits = logits[~has_mask][:, 0]
        proposal_boxes = cat([i.proposal_boxes.tensor for i in box_only])
        gt_boxes = cat([i.gt_boxes.tensor for i in box_only])
        if self.projection_weight > 0:
            projection = box_projection_loss(box_only_logits, proposal_boxes, gt_boxes)
            losses["loss_mask_projection"] = projection * self.projection_weight
        if self.pairwise_weight > 0:
            pairwise = pairwise_affinity_loss(
                box_only_logits,
                cat([i.gt_lab for i in box_only]),
                proposal_boxes,
                gt_boxes,
                self.pairwise_threshold,
                self.pairwise_dilation,
            )
            weight = self.pairwise_weight
            if self.pairwise_warmup_iters > 0:
                progress = get_event_storage().iter / self.pairwise_warmup_iters
                weight *= min(1.0, max(0.0, progress))
            losses["loss_mask_pairwise"] = pairwise * weight
        return losses
