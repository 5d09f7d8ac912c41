"""MaskXRCNN: GeneralizedRCNN that can freeze its detector for stage-wise training.

Stage-wise Mask^X R-CNN (the paper's ``sw`` rows) first trains a Faster R-CNN on all boxes,
then freezes it and trains only the mask branch on set A's masks. With
``MODEL.MASKX.FREEZE_DETECTOR`` off this class behaves exactly like GeneralizedRCNN.
"""

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN

from .norm_statistics import freeze_norm_statistics

__all__ = ["MaskXRCNN", "freeze_all_but_mask_branch"]


def freeze_all_but_mask_branch(model) -> int:
    """Set ``requires_grad=False`` on every parameter outside ``roi_heads.mask_head``.

    Returns the number of parameters frozen. The optimizer built afterwards skips them.
    """
    frozen = 0
    for name, param in model.named_parameters():
        if not _in_mask_head(name):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def _in_mask_head(name: str) -> bool:
    return name == "roi_heads.mask_head" or name.startswith("roi_heads.mask_head.")


@META_ARCH_REGISTRY.register()
class MaskXRCNN(GeneralizedRCNN):
    @configurable
    def __init__(self, *, freeze_detector: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.freeze_detector = freeze_detector
        if freeze_detector:
            freeze_all_but_mask_branch(self)
            # A new module is in training mode without a train() call (detectron2's trainer
            # makes none before its first step).
            freeze_norm_statistics(self, keep=_in_mask_head)

    def train(self, mode: bool = True):
        """As ``nn.Module.train``; with a frozen detector its BatchNorm layers stay in eval mode:
        frozen parameters with moving running statistics would still change the detector."""
        super().train(mode)
        if mode and getattr(self, "freeze_detector", False):
            freeze_norm_statistics(self, keep=_in_mask_head)
        return self

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        ret["freeze_detector"] = cfg.MODEL.MASKX.FREEZE_DETECTOR
        return ret

    def forward(self, batched_inputs):
        output = super().forward(batched_inputs)
        if self.training and self.freeze_detector:
            # The RPN still proposes (it is frozen); its losses would only be logged noise.
            output = {k: v for k, v in output.items() if not k.startswith("loss_rpn")}
        return output
