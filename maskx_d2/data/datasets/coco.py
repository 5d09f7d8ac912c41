"""COCO with the paper's A/B category splits, registered under ``$DETECTRON2_DATASETS``.

Names are ``<coco set>_<split>``, e.g. ``coco_2017_train_voc2nonvoc``:
  - training sets (``coco_2017_train``, ``coco_2014_train``, ``coco_2014_valminusminival``):
    all images and all boxes; masks only for the classes of A;
  - evaluation sets (``coco_2017_val``, ``coco_2014_minival``): full ground truth; metadata
    ``mask_category_ids`` (A) and ``split_name`` let the evaluator report A and B separately;
  - splits: ``voc2nonvoc``, ``nonvoc2voc`` for every set above, and the 25 random splits
    ``randsplit_E{1..5}_A{20,30,40,50,60}`` for the 2017 sets (see :mod:`.coco_splits`).

Nothing is read until a dataset is used. detectron2 registers the plain ``coco_*`` names
itself; the split suffix keeps these distinct.
"""

import os

from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

from ..coco_json import register_partially_supervised_coco_json
from .coco_splits import SPLIT_NAMES, split_category_ids

__all__ = ["register_all_coco_partial", "predefined_coco_partial_names"]

# coco set -> (image folder, annotation json, whether masks of B are removed), under the root.
_PREDEFINED_SPLITS_COCO_PARTIAL = {
    "coco_2017_train": ("coco/train2017", "coco/annotations/instances_train2017.json", True),
    "coco_2017_val": ("coco/val2017", "coco/annotations/instances_val2017.json", False),
    "coco_2014_train": ("coco/train2014", "coco/annotations/instances_train2014.json", True),
    "coco_2014_valminusminival": (
        "coco/val2014",
        "coco/annotations/instances_valminusminival2014.json",
        True,
    ),
    "coco_2014_minival": ("coco/val2014", "coco/annotations/instances_minival2014.json", False),
}
# The random splits exist for 2017 only, as in the paper's Figure 3.
_RANDOM_SPLIT_SETS = ("coco_2017_train", "coco_2017_val")


def predefined_coco_partial_names():
    """(dataset name, coco set, split name) of every predefined dataset, in registration order."""
    names = []
    for coco_set in _PREDEFINED_SPLITS_COCO_PARTIAL:
        for split in SPLIT_NAMES:
            if split.startswith("randsplit") and coco_set not in _RANDOM_SPLIT_SETS:
                continue
            names.append((f"{coco_set}_{split}", coco_set, split))
    return names


def register_all_coco_partial(root: str, name_prefix: str = "") -> None:
    """Register every predefined COCO split dataset with files under ``root``.

    Args:
        root: the folder holding ``coco/`` (``$DETECTRON2_DATASETS``).
        name_prefix: prepended to every dataset name (e.g. to register a second copy).
    """
    # detectron2's own COCO metadata (names, id map, colours), known without reading the json;
    # loading checks that the json agrees.
    coco_metadata = _get_builtin_metadata("coco")
    for name, coco_set, split in predefined_coco_partial_names():
        image_root, json_file, strip_masks = _PREDEFINED_SPLITS_COCO_PARTIAL[coco_set]
        a_ids, _ = split_category_ids(split)
        register_partially_supervised_coco_json(
            name_prefix + name,
            os.path.join(root, json_file),
            os.path.join(root, image_root),
            a_ids,
            strip_masks=strip_masks,
            split_name=split,
            **coco_metadata,
        )
