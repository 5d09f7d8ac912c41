"""detectron2's FCOS head with BlendMask's top layer on its box tower."""

from typing import List

import torch
from detectron2.modeling.meta_arch.fcos import FCOSHead
from torch import nn

__all__ = ["BlendMaskHead"]


class BlendMaskHead(FCOSHead):
    """:class:`FCOSHead` + the top layer: one 3x3 conv on the box tower's features that
    predicts, per location, K attention maps of M x M (``attention_channels`` = K M M)."""

    def __init__(self, *, attention_channels: int, **kwargs):
        super().__init__(**kwargs)
        tower_dim = self.bbox_pred.in_channels
        self.top_layer = nn.Conv2d(tower_dim, attention_channels, kernel_size=3, padding=1)
        # Small initial attentions: the softmax over bases starts near uniform.
        nn.init.normal_(self.top_layer.weight, std=0.01)
        nn.init.constant_(self.top_layer.bias, 0.0)

    def forward(self, features: List[torch.Tensor]):
        """
        Args:
            features: per FPN level, (N, C, H_l, W_l).
        Returns:
            Four lists over levels: class logits (N, num_classes, H_l, W_l), box deltas
            (N, 4, H_l, W_l), centerness (N, 1, H_l, W_l), attentions (N, K M M, H_l, W_l).
        """
        assert len(features) == self._num_features
        logits, bbox_reg, ctrness, attentions = [], [], [], []
        for feature in features:
            logits.append(self.cls_score(self.cls_subnet(feature)))
            bbox_feature = self.bbox_subnet(feature)
            bbox_reg.append(self.bbox_pred(bbox_feature))
            ctrness.append(self.ctrness(bbox_feature))
            attentions.append(self.top_layer(bbox_feature))
        return logits, bbox_reg, ctrness, attentions
