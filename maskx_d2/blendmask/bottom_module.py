"""BlendMask's bottom module: K score maps ("bases") for the whole image from FPN features.

AdelaiDet's design (ProtoNet-like): each input level is refined by a 3x3 conv and upsampled to
the finest one, the sum goes through a tower of 3x3 convs, is upsampled x2, and a 3x3 conv and a
1x1 conv give the K bases. With p3-p5 the bases have stride 4.
"""

from typing import Dict, List

import fvcore.nn.weight_init as weight_init
import torch
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from torch import nn
from torch.nn import functional as F

__all__ = ["BasisModule"]


def _conv3x3(in_channels: int, out_channels: int, norm: str) -> Conv2d:
    conv = Conv2d(
        in_channels,
        out_channels,
        kernel_size=3,
        padding=1,
        bias=not norm,
        norm=get_norm(norm, out_channels),
        activation=F.relu,
    )
    weight_init.c2_msra_fill(conv)
    return conv


class BasisModule(nn.Module):
    """Bases from FPN features.

    Input: the backbone's feature dict; ``in_features`` (finest first) are read, each
    (N, C_l, H_l, W_l). Output: (N, K, 2 H_0, 2 W_0), stride ``self.stride``.
    """

    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        in_features: List[str],
        conv_dim: int,
        num_conv: int,
        num_bases: int,
        norm: str = "BN",
    ):
        super().__init__()
        missing = [f for f in in_features if f not in input_shape]
        if not in_features or missing:
            raise ValueError(
                f"MODEL.BLENDMASK.BOTTOM_IN_FEATURES={list(in_features)}: the backbone has no "
                f"{missing or 'features listed'}; it gives {sorted(input_shape)}"
            )
        self.in_features = list(in_features)
        self.refine = nn.ModuleList(
            _conv3x3(input_shape[f].channels, conv_dim, norm) for f in self.in_features
        )
        tower = [_conv3x3(conv_dim, conv_dim, norm) for _ in range(num_conv)]
        self.tower = nn.Sequential(*tower)
        self.upsampled_conv = _conv3x3(conv_dim, conv_dim, norm)
        self.to_bases = nn.Conv2d(conv_dim, num_bases, kernel_size=1)
        weight_init.c2_msra_fill(self.to_bases)
        self.stride = input_shape[self.in_features[0]].stride / 2

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        x = None
        for name, refine in zip(self.in_features, self.refine):
            y = refine(features[name])
            if x is None:
                x = y
            else:  # coarser level: bring it to the finest level's size
                x = x + F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = self.tower(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.to_bases(self.upsampled_conv(x))
