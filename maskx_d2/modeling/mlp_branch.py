"""Class-agnostic MLP branch of Mask^X R-CNN ("transfer+MLP", Table 1c of the paper).

Its M x M output is added to the mask logits of every class before the sigmoid: the FCN's
1x1 conv captures class-specific shape, the MLP a class-agnostic, position-aware prior.
"""

import fvcore.nn.weight_init as weight_init
import torch
from torch import nn

__all__ = ["MaskMLPBranch"]


class MaskMLPBranch(nn.Module):
    """FC layers on the flattened mask feature map: (R, C, M, M) -> (R, M, M).

    ``num_fc == 1`` is the paper's single FC from C*M*M to M*M (about 157M parameters at
    C = 256, M = 28); larger values insert ``num_fc - 1`` hidden FC + ReLU layers of ``fc_dim``
    (MSRA init, zero bias). The last FC starts near zero (std 0.001), so the branch begins as a
    no-op on top of the FCN logits. Both inits are the official code's.
    """

    def __init__(self, in_channels: int, resolution: int, *, num_fc: int = 1, fc_dim: int = 1024):
        super().__init__()
        if num_fc < 1:
            raise ValueError(f"MODEL.MASKX.MLP_BRANCH.NUM_FC must be >= 1, got {num_fc}")
        self.resolution = resolution
        dims = [in_channels * resolution * resolution] + [fc_dim] * (num_fc - 1)
        layers = [nn.Flatten(start_dim=1)]
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            fc = nn.Linear(d_in, d_out)
            weight_init.c2_msra_fill(fc)
            layers += [fc, nn.ReLU()]
        last = nn.Linear(dims[-1], resolution * resolution)
        nn.init.normal_(last.weight, std=0.001)
        nn.init.constant_(last.bias, 0)
        layers.append(last)
        self.layers = nn.Sequential(*layers)

    def forward(self, mask_features: torch.Tensor) -> torch.Tensor:
        """(R, C, M, M) mask features -> (R, M, M) class-agnostic mask logits."""
        return self.layers(mask_features).view(-1, self.resolution, self.resolution)
