"""The weight transfer function T of Mask^X R-CNN: ``w_seg[c] = T(w_det[c]; theta)``.

Shape letters used below:
    K: number of foreground classes          D: width of the box head's last FC (1024)
    U: number of distinct classes needed     C: width of the mask head (256)
    E: width of a fixed class embedding (e.g. 300 for GloVe)

``w_det[c]`` is taken from detectron2's :class:`FastRCNNOutputLayers`: ``cls_score`` is a
Linear(D, K + 1) whose LAST row is background, and ``bbox_pred`` a Linear(D, 4K) with the four
regression rows of class c at rows 4c..4c+3 (class-specific regression; there is no background
box row). T's output for class c is the weight of a bias-free 1x1 conv on the C x M x M mask
features, i.e. class c's mask logits are ``sum_ch T(w_det[c])[ch] * features[ch]``.
"""

from typing import Optional

import fvcore.nn.weight_init as weight_init
import torch
from torch import nn

__all__ = ["WeightTransfer", "transfer_input_dim", "gather_detector_weights", "ACTIVATIONS"]

# Between T's FCs; "none" makes a multi-layer T linear (a low-rank one with a narrow hidden layer).
ACTIVATIONS = ("relu", "leaky_relu", "none")


def transfer_input_dim(kind: str, det_dim: int, embedding_dim: Optional[int] = None) -> int:
    """Width of T's input for ``MODEL.MASKX.TRANSFER.INPUT == kind``."""
    dims = {"cls": det_dim, "box": 4 * det_dim, "cls+box": 5 * det_dim}
    if kind == "embedding":
        if embedding_dim is None:
            raise ValueError("TRANSFER.INPUT='embedding' needs an embedding file (EMBEDDING_FILE)")
        return embedding_dim
    if kind not in dims:
        raise ValueError(
            f"Unknown MODEL.MASKX.TRANSFER.INPUT {kind!r}; expected one of "
            f"'cls', 'box', 'cls+box', 'embedding'"
        )
    return dims[kind]


def check_box_predictor(box_predictor: nn.Module, kind: str, num_classes: int) -> int:
    """Validate that ``box_predictor`` can feed T with ``kind``; return D.

    Raises ValueError for class-agnostic box regression when T needs per-class box weights.
    """
    cls_w = box_predictor.cls_score.weight
    if cls_w.shape[0] not in (num_classes, num_classes + 1):
        raise ValueError(
            f"box predictor's cls_score has {cls_w.shape[0]} rows, expected "
            f"{num_classes + 1} for {num_classes} classes"
        )
    if "box" in kind.split("+"):
        rows = box_predictor.bbox_pred.weight.shape[0]
        if rows != 4 * num_classes:
            raise ValueError(
                f"MODEL.MASKX.TRANSFER.INPUT={kind!r} needs class-specific box regression "
                f"(bbox_pred with 4*K = {4 * num_classes} rows) but it has {rows} rows: set "
                "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG=False, or use TRANSFER.INPUT='cls'."
            )
    return cls_w.shape[1]


def gather_detector_weights(box_predictor: nn.Module, kind: str, classes: torch.Tensor):
    """Detection weights ``w_det`` of the given classes.

    Args:
        box_predictor: a :class:`FastRCNNOutputLayers` (class-specific box regression for "box").
        kind: "cls", "box" or "cls+box".
        classes: (U,) int64 contiguous class indices in [0, K).
    Returns:
        (U, D), (U, 4D) or (U, 5D) tensor; row u is ``w_det[classes[u]]``.
    """
    parts = []
    if "cls" in kind.split("+"):
        parts.append(box_predictor.cls_score.weight[classes])  # background (row K) never indexed
    if "box" in kind.split("+"):
        bbox_w = box_predictor.bbox_pred.weight  # (4K, D)
        parts.append(bbox_w.view(-1, 4 * bbox_w.shape[1])[classes])
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class WeightTransfer(nn.Module):
    """T: a small MLP applied row-wise, (U, in_dim) -> (U, out_dim).

    1 layer: FC(in -> out). 2 layers (paper's best): FC(in -> hidden), act, FC(hidden -> out).
    3 layers: FC, act, FC, act, FC. No activation after the last FC; all FCs have a bias
    (MSRA-initialised weights, zero bias). ``activation="none"`` with 2 layers and a narrow
    ``hidden_dim`` r is a linear T of rank at most r: every class's mask weight lies in one
    r-dimensional affine subspace, so the classes with masks cannot each get an arbitrary
    weight, and T has to read from its input the few directions that explain them. The
    class-agnostic parameters are shared by all classes, so T trained on classes with masks can
    produce mask weights for any class.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        num_layers: int = 2,
        hidden_dim: int = 256,
        activation: str = "leaky_relu",
        leaky_relu_slope: float = 0.1,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MODEL.MASKX.TRANSFER.NUM_LAYERS must be >= 1, got {num_layers}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"MODEL.MASKX.TRANSFER.ACTIVATION must be one of {ACTIVATIONS}, "
                f"got {activation!r}"
            )
        self.in_dim, self.out_dim = in_dim, out_dim
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        layers = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            fc = nn.Linear(d_in, d_out)
            weight_init.c2_msra_fill(fc)
            layers.append(fc)
            if i < num_layers - 1 and activation != "none":
                layers.append(
                    nn.ReLU()
                    if activation == "relu"
                    else nn.LeakyReLU(negative_slope=leaky_relu_slope)
                )
        self.layers = nn.Sequential(*layers)

    def forward(self, det_weights: torch.Tensor) -> torch.Tensor:
        """(U, in_dim) detection weights -> (U, out_dim) mask weights."""
        return self.layers(det_weights)
