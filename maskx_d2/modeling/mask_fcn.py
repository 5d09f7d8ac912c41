"""Deeper mask-head bodies. Deep-MARC (Birodkar et al. 2021) found that the mask head's
architecture largely decides how well masks carry over to classes never seen with masks (on
COCO non-VOC: 25.9 mask AP with the 4-conv head, 33.1 with an hourglass-52, both trained on
ground-truth boxes).

The body maps pooled RoI features (R, C_in, P, P) to mask features (R, C, P, P); the mask head's
deconv then doubles the side (M = 2P) and its predictor (transfer, class-agnostic or
class-specific, plus the MLP branch) turns them into logits. So every body combines with every
predictor, and its cost does not depend on the number of classes.

- ``"fcn"``: detectron2's stack of 3x3 convs (Mask R-CNN, the paper); built by the head itself.
- ``"residual"``: a 1x1 projection to C, then ``num_blocks`` residual blocks (two 3x3 convs).
- ``"hourglass"``: a 1x1 projection to ``channels[0]``, then an hourglass (Newell et al. 2016)
  with one halving per further entry of ``channels``: at level i, ``blocks[i]`` residual blocks
  on the skip branch and on the way down (the first one moving to ``channels[i + 1]``), the
  next level (or ``blocks[-1]`` blocks at the bottom), ``blocks[i]`` blocks back to
  ``channels[i]``, nearest upsampling and the sum with the skip branch; a 1x1 conv to the head's
  width if it differs. Deep-MARC's hourglass-52 (``../shared/docs/other-systems.md``): channels
  [128, 128, 192, 192, 192, 256], blocks [2, 2, 2, 2, 2, 4] on 32 x 32 RoI features, 64 x 64
  masks; hourglass-100 doubles the blocks.
"""

from typing import Sequence

from detectron2.layers import Conv2d, get_norm
from torch import nn
from torch.nn import functional as F

__all__ = ["MASK_HEAD_ARCHITECTURES", "HourglassFCN", "ResidualBlock", "ResidualFCN"]

MASK_HEAD_ARCHITECTURES = ("fcn", "residual", "hourglass")


def _conv3x3(in_channels: int, out_channels: int, norm: str) -> Conv2d:
    return Conv2d(
        in_channels, out_channels, 3, padding=1, bias=not norm, norm=get_norm(norm, out_channels)
    )


class ResidualBlock(nn.Module):
    """x -> relu(skip(x) + norm(conv(relu(norm(conv(x)))))), from C_in to C_out channels, same
    size; skip is the identity, or a 1x1 conv when the width changes."""

    def __init__(self, in_channels: int, out_channels: int = None, norm: str = ""):
        super().__init__()
        out_channels = out_channels or in_channels
        self.conv1 = _conv3x3(in_channels, out_channels, norm)
        self.conv2 = _conv3x3(out_channels, out_channels, norm)
        self.skip = None if in_channels == out_channels else Conv2d(in_channels, out_channels, 1)
        for conv in (self.conv1, self.conv2, self.skip):
            if conv is None:
                continue
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        # Each block starts as its skip path (zero last conv, as zero-gamma init): a stack of
        # 34 blocks without normalization (hourglass-52) otherwise diverged at LR 0.02.
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x):
        skip = x if self.skip is None else self.skip(x)
        return F.relu(skip + self.conv2(F.relu(self.conv1(x))))


def _blocks(in_channels: int, out_channels: int, count: int, norm: str) -> nn.Sequential:
    """``count`` residual blocks, the first moving from ``in_channels`` to ``out_channels``."""
    return nn.Sequential(
        *[
            ResidualBlock(in_channels if k == 0 else out_channels, out_channels, norm)
            for k in range(count)
        ]
    )


def _projection(in_channels: int, channels: int) -> nn.Module:
    conv = Conv2d(in_channels, channels, 1, activation=nn.ReLU())
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


class ResidualFCN(nn.Sequential):
    """(R, C_in, P, P) -> (R, C, P, P): a 1x1 projection and ``num_blocks`` residual blocks."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int, norm: str = ""):
        super().__init__(
            _projection(in_channels, channels), _blocks(channels, channels, num_blocks, norm)
        )


class _HourglassLevel(nn.Module):
    def __init__(self, channels: Sequence[int], blocks: Sequence[int], norm: str):
        super().__init__()
        here, below = channels[0], channels[1]
        self.skip = _blocks(here, here, blocks[0], norm)
        self.down = _blocks(here, below, blocks[0], norm)
        self.inner = (
            _HourglassLevel(channels[1:], blocks[1:], norm)
            if len(channels) > 2
            else _blocks(below, below, blocks[-1], norm)
        )
        self.up = _blocks(below, here, blocks[0], norm)

    def forward(self, x):
        # ceil_mode and resizing to the skip's size: any side works, not only powers of two.
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2, ceil_mode=True))))
        return self.skip(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class HourglassFCN(nn.Sequential):
    """(R, C_in, P, P) -> (R, C, P, P): a 1x1 projection, an hourglass with
    ``len(channels) - 1`` halvings, and a 1x1 conv to C when ``channels[0] != C``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        blocks: Sequence[int],
        norm: str = "",
    ):
        if len(channels) < 2 or len(blocks) != len(channels):
            raise ValueError(
                "an hourglass needs at least 2 widths and one block count per width, got "
                f"channels {list(channels)} and blocks {list(blocks)}"
            )
        layers = [
            _projection(in_channels, channels[0]),
            _HourglassLevel(list(channels), list(blocks), norm),
        ]
        if channels[0] != out_channels:
            layers.append(_projection(channels[0], out_channels))
        super().__init__(*layers)
