"""COCO category splits of the partially supervised setting (set A has masks, set B boxes only).

Every split of the paper lives here as data:
  - ``voc2nonvoc``: A = the 20 PASCAL VOC classes, B = the other 60 COCO classes;
  - ``nonvoc2voc``: the reverse;
  - ``randsplit_E{1..5}_A{20,30,40,50,60}``: the 25 random splits of the paper's Figure 3.

Ids are COCO *dataset* category ids (1..90 with gaps), the ids of the json files and of
``mask_category_ids`` in dataset metadata. The random splits are drawn in *contiguous*
indices (0..79 = position among the 80 sorted COCO ids), as the official code did.
"""

import functools
from typing import Dict, List, Tuple

import numpy as np
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

__all__ = [
    "COCO_THING_CATEGORIES",
    "COCO_CATEGORY_IDS",
    "VOC_CATEGORY_IDS",
    "NON_VOC_CATEGORY_IDS",
    "RANDOM_SPLIT_SEED",
    "RANDOM_SPLIT_TRIALS",
    "RANDOM_SPLIT_SIZES",
    "SPLIT_NAMES",
    "random_splits",
    "split_category_ids",
]

# COCO's 80 thing categories (id, name), in id order; the ids are those of instances_*.json.
COCO_THING_CATEGORIES: Tuple[Tuple[int, str], ...] = tuple(
    (c["id"], c["name"]) for c in COCO_CATEGORIES if c["isthing"]
)
COCO_CATEGORY_IDS: Tuple[int, ...] = tuple(i for i, _ in COCO_THING_CATEGORIES)

# person, bicycle, car, motorcycle, airplane, bus, train, boat, bird, cat, dog, horse, sheep,
# cow, bottle, chair, couch, potted plant, dining table, tv.
VOC_CATEGORY_IDS: Tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 20, 21, 44, 62, 63, 64, 67, 72
)  # fmt: skip
NON_VOC_CATEGORY_IDS: Tuple[int, ...] = tuple(
    i for i in COCO_CATEGORY_IDS if i not in set(VOC_CATEGORY_IDS)
)

# The official procedure: seed numpy's legacy generator once, then draw the trials in order.
RANDOM_SPLIT_SEED = 3
RANDOM_SPLIT_TRIALS = (1, 2, 3, 4, 5)
RANDOM_SPLIT_SIZES = (20, 30, 40, 50, 60)

SPLIT_NAMES: Tuple[str, ...] = ("voc2nonvoc", "nonvoc2voc") + tuple(
    f"randsplit_E{e}_A{n}" for e in RANDOM_SPLIT_TRIALS for n in RANDOM_SPLIT_SIZES
)


@functools.lru_cache(maxsize=1)
def _random_splits() -> Dict[str, Tuple[int, ...]]:
    # RandomState(3) yields the same stream as np.random.seed(3) + np.random.choice, without
    # touching the global generator. The draw order (trial-major, then size) fixes every split.
    rng = np.random.RandomState(RANDOM_SPLIT_SEED)
    splits = {}
    for trial in RANDOM_SPLIT_TRIALS:
        for num_a in RANDOM_SPLIT_SIZES:
            drawn = rng.choice(len(COCO_CATEGORY_IDS), num_a, replace=False)
            splits[f"randsplit_E{trial}_A{num_a}"] = tuple(sorted(int(i) for i in drawn))
    return splits


def random_splits() -> Dict[str, List[int]]:
    """The 25 random splits of the paper: name -> sorted 0-based contiguous class indices of A.

    Names are ``randsplit_E{trial}_A{num_A}``; e.g. ``randsplit_E1_A20`` is
    [6, 8, 9, 12, 13, 27, 34, 35, 45, 47, 50, 54, 55, 57, 59, 61, 63, 66, 73, 77].
    """
    return {name: list(indices) for name, indices in _random_splits().items()}


def split_category_ids(split_name: str) -> Tuple[List[int], List[int]]:
    """Return ``(A_ids, B_ids)``: sorted COCO dataset category ids of the two sets of a split.

    Args:
        split_name: one of :data:`SPLIT_NAMES`.
    """
    if split_name == "voc2nonvoc":
        a_ids = VOC_CATEGORY_IDS
    elif split_name == "nonvoc2voc":
        a_ids = NON_VOC_CATEGORY_IDS
    elif split_name in _random_splits():
        a_ids = tuple(COCO_CATEGORY_IDS[i] for i in _random_splits()[split_name])
    else:
        raise ValueError(f"Unknown COCO split {split_name!r}; known: {', '.join(SPLIT_NAMES)}")
    a_set = set(a_ids)
    return sorted(a_set), [i for i in COCO_CATEGORY_IDS if i not in a_set]
