"""Register the project's predefined datasets under one root, as detectron2's ``builtin.py``.

The root is ``$DETECTRON2_DATASETS`` (default ``datasets``, relative to the working
directory), with ``~`` expanded; it is read here and nowhere else. Registration is lazy:
nothing is read or generated until a dataset is loaded.
"""

import os

from .coco import register_all_coco_partial
from .synthetic import register_scene_variants, register_synthetic_shapes
from .visual_genome import register_all_vg3k

__all__ = ["dataset_root", "register_all_builtin"]


def dataset_root() -> str:
    """The folder holding ``coco/``, ``visual_genome/`` and ``synthetic_shapes_v2/``."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def register_all_builtin(root: str) -> None:
    """COCO A/B and random splits, Visual Genome 3000 classes, the synthetic shapes (and their
    scene variants)."""
    register_all_coco_partial(root)
    register_all_vg3k(root)
    register_synthetic_shapes(root)
    register_scene_variants(root)


register_all_builtin(dataset_root())
