"""DeepMask's two branches, on one window or densely over a whole trunk map.

Shape letters: R windows, C trunk channels, w the window side in cells, D the 1x1 conv's width,
K the low rank, M the mask side, N images, H x W a trunk map; H - w + 1 by W - w + 1 windows
fit in it (see :mod:`.windows`).

Each branch is written once, as the paper's layers on a window's (R, C, w, w) features
(``forward``: what training uses, on RoIAlign crops), and evaluated densely by ``dense``, where
every FC over a window is the same weights as a convolution: an FC on the w x w window is a
w x w conv, the 2x2 max pooling of every window at once is a stride-1 pooling read with dilation
2, and the FCs after it are 1x1 convs. One pass over the map thus gives every stride-t window's
score and low-rank mask code, with no loop over crops.
"""

from typing import List

import fvcore.nn.weight_init as weight_init
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ScoreBranch", "SegmentationBranch"]


class SegmentationBranch(nn.Module):
    """1x1 conv (+ReLU), then the low-rank FC: window (D w w) -> K -> M M, linear in between
    (the factorisation of the paper's one large FC)."""

    def __init__(self, in_channels: int, window: int, conv_dim: int, rank: int, mask_size: int):
        super().__init__()
        self.window, self.mask_size = window, mask_size
        self.conv = nn.Conv2d(in_channels, conv_dim, kernel_size=1)
        self.to_rank = nn.Linear(conv_dim * window * window, rank)
        self.to_mask = nn.Linear(rank, mask_size * mask_size)
        weight_init.c2_msra_fill(self.conv)
        weight_init.c2_xavier_fill(self.to_rank)
        # Small initial logits, as detectron2's mask predictor: masks start near 0.5.
        nn.init.normal_(self.to_mask.weight, std=0.001)
        nn.init.constant_(self.to_mask.bias, 0.0)

    def codes(self, windows: torch.Tensor) -> torch.Tensor:
        """(R, C, w, w) window features -> (R, K) low-rank codes."""
        return self.to_rank(F.relu(self.conv(windows)).flatten(1))

    def dense_codes(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, K, H - w + 1, W - w + 1): the code of every window."""
        kernel = self.to_rank.weight.view(-1, self.conv.out_channels, self.window, self.window)
        return F.conv2d(F.relu(self.conv(features)), kernel, self.to_rank.bias)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(R, K) codes -> (R, M, M) mask logits over the whole window."""
        return self.to_mask(codes).view(-1, self.mask_size, self.mask_size)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(R, C, w, w) -> (R, M, M) mask logits."""
        return self.decode(self.codes(windows))


class ScoreBranch(nn.Module):
    """2x2 max pooling, FCs of ``hidden_dims`` each + ReLU, and an FC to one logit: is an object
    centred in the window, entirely inside it, at a fitting scale?"""

    def __init__(self, in_channels: int, window: int, hidden_dims: List[int]):
        super().__init__()
        self.pooled = window // 2
        dims = [in_channels * self.pooled * self.pooled] + list(hidden_dims) + [1]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        for fc in self.fcs[:-1]:
            weight_init.c2_xavier_fill(fc)
        # Scores start near 0.5: a large random initial logit makes the first steps' loss large.
        nn.init.normal_(self.fcs[-1].weight, std=0.01)
        nn.init.constant_(self.fcs[-1].bias, 0.0)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(R, C, w, w) window features -> (R,) logits."""
        x = F.max_pool2d(windows, kernel_size=2).flatten(1)
        for fc in self.fcs[:-1]:
            x = F.relu(fc(x))
        return self.fcs[-1](x).squeeze(1)

    def dense(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, H - w + 1, W - w + 1): the logit of every window.

        Window (i, j)'s pooled cell (a, b) is the maximum of cells (i + 2a .. i + 2a + 1,
        j + 2b .. j + 2b + 1): a stride-1 2x2 pooling of the map at (i + 2a, j + 2b), which a
        (w/2) x (w/2) conv with dilation 2 reads for every window at once.
        """
        x = F.max_pool2d(features, kernel_size=2, stride=1)
        first = self.fcs[0]
        kernel = first.weight.view(first.out_features, -1, self.pooled, self.pooled)
        x = F.conv2d(x, kernel, first.bias, dilation=2)
        for fc in self.fcs[1:]:
            x = F.conv2d(F.relu(x), fc.weight[:, :, None, None], fc.bias)
        return x.squeeze(1)
