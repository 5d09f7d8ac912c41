"""DeepMask (Pinheiro, Collobert, Dollár, NeurIPS 2015): class-agnostic segment proposals, under
partial supervision.

Importing this registers the ``DeepMask`` meta-architecture. Files: ``config.py`` (the
``MODEL.DEEPMASK`` keys), ``windows.py`` (the pyramid and its grid of windows), ``branches.py``
(the segmentation and score branches, on windows and as convolutions), ``targets.py`` (positive
windows, the training scale), ``outputs.py`` (masks pasted in the original image),
``meta_arch.py`` (training with partial supervision, dense inference, masks on given boxes).
"""

from .branches import ScoreBranch, SegmentationBranch
from .config import add_deepmask_config
from .meta_arch import DeepMask
from .targets import choose_scale, fitting, label_windows
from .windows import PyramidLevel, resize_and_pad, window_grid

__all__ = [
    "DeepMask",
    "PyramidLevel",
    "ScoreBranch",
    "SegmentationBranch",
    "add_deepmask_config",
    "choose_scale",
    "fitting",
    "label_windows",
    "resize_and_pad",
    "window_grid",
]
