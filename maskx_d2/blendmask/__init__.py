"""BlendMask (Chen et al., CVPR 2020) on detectron2's FCOS, under partial supervision.

Importing this registers the ``BlendMask`` meta-architecture. Files: ``config.py`` (the
``MODEL.FCOS`` and ``MODEL.BLENDMASK`` keys), ``bottom_module.py`` (the bases),
``head.py`` (FCOS's head + the top layer), ``blender.py`` (pure tensor functions),
``meta_arch.py`` (training with partial supervision, inference, masks on given boxes).
"""

from .blender import blend, blended_mask_loss, crop_bases
from .bottom_module import BasisModule
from .config import add_blendmask_config
from .head import BlendMaskHead
from .meta_arch import BlendMask

__all__ = [
    "BasisModule",
    "BlendMask",
    "BlendMaskHead",
    "add_blendmask_config",
    "blend",
    "blended_mask_loss",
    "crop_bases",
]
