"""Deeper mask-head bodies (Deep-MARC, Birodkar et al. 2021: "the mask head's architecture
matters most for classes never seen with masks").

The body maps pooled RoI features (R, C_in, P, P) to mask features (R, C, P, P); the mask head's
deconv then doubles the side (M = 2P) and its predictor (transfer, class-agnostic or
class-specific, plus the MLP branch) turns them into logits. So every body combines with every
predictor, and its cost does not depend on the number of classes.

- ``"fcn"``: detectron2's stack of 3x3 convs (Mask R-CNN, the paper); built by the head itself.
- ``"residual"``: a 1x1 projection to C, then ``num_blocks`` residual blocks (two 3x3 convs).
- ``"hourglass"``: a 1x1 projection, then an hourglass (Newell et al. 2016) of ``levels``
  halvings, ``blocks`` residual blocks at every level on the way down, at the bottom and on the
  way up, and a skip branch per level. Deep-MARC's best head is an hourglass-52 on 32 x 32 RoI
  features with 64 x 64 masks; ``levels=4, blocks=2`` on ``POOLER_RESOLUTION: 32`` is this
  project's approximation of it (not CenterNet's exact Hourglass-52 layout).
"""

from detectron2.layers import Conv2d, get_norm
from torch import nn
from torch.nn import functional as F

__all__ = ["MASK_HEAD_ARCHITECTURES", "HourglassFCN", "ResidualBlock", "ResidualFCN"]

MASK_HEAD_ARCHITECTURES = ("fcn", "residual", "hourglass")


class ResidualBlock(nn.Module):
    """x -> relu(x + norm(conv(relu(norm(conv(x)))))), C channels, same size."""

    def __init__(self, channels: int, norm: str = ""):
        super().__init__()
        self.conv1 = Conv2d(
            channels, channels, 3, padding=1, bias=not norm, norm=get_norm(norm, channels)
        )
        self.conv2 = Conv2d(
            channels, channels, 3, padding=1, bias=not norm, norm=get_norm(norm, channels)
        )
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, x):
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


def _blocks(channels: int, count: int, norm: str) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(channels, norm) for _ in range(count)])


def _projection(in_channels: int, channels: int) -> nn.Module:
    conv = Conv2d(in_channels, channels, 1, activation=nn.ReLU())
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


class ResidualFCN(nn.Sequential):
    """(R, C_in, P, P) -> (R, C, P, P): a 1x1 projection and ``num_blocks`` residual blocks."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int, norm: str = ""):
        super().__init__(_projection(in_channels, channels), _blocks(channels, num_blocks, norm))


class _HourglassLevel(nn.Module):
    def __init__(self, channels: int, levels: int, blocks: int, norm: str):
        super().__init__()
        self.skip = _blocks(channels, blocks, norm)
        self.down = _blocks(channels, blocks, norm)
        self.inner = (
            _HourglassLevel(channels, levels - 1, blocks, norm)
            if levels > 1
            else _blocks(channels, blocks, norm)
        )
        self.up = _blocks(channels, blocks, norm)

    def forward(self, x):
        # ceil_mode and resizing to the skip's size: any side works, not only powers of two.
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2, ceil_mode=True))))
        return self.skip(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class HourglassFCN(nn.Sequential):
    """(R, C_in, P, P) -> (R, C, P, P): a 1x1 projection and an hourglass of ``levels``."""

    def __init__(self, in_channels: int, channels: int, levels: int, blocks: int, norm: str = ""):
        super().__init__(
            _projection(in_channels, channels), _HourglassLevel(channels, levels, blocks, norm)
        )
