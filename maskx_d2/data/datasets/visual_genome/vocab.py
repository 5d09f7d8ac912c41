"""The Visual Genome 3000-class vocabulary, aligned with COCO's 80 classes.

Rules (see docs/visual_genome.md): keep the K most frequent synsets; map each COCO class to
a kept synset by name (``"hot_dog.n.01"`` reads "hot dog"; among kept synsets of the same
name the more frequent wins) or by the paper's manual pairs; the label space is then the 80
COCO classes in COCO's order (contiguous ids 0..79, set A) followed by the other kept
synsets by descending frequency (set B), K classes in all.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = [
    "COCO_TO_VG_MANUAL",
    "VGCategories",
    "build_vg_categories",
    "match_coco_to_synsets",
    "synset_readable_name",
    "top_synsets",
]

# From the paper's code: COCO classes whose VG synset has another name, or whose name is
# ambiguous ("orange" the fruit, not the colour). For these classes only this synset counts.
COCO_TO_VG_MANUAL: Dict[str, str] = {
    "cell phone": "cellular_telephone.n.01",
    "couch": "sofa.n.01",
    "dining table": "dinner_table.n.01",
    "donut": "doughnut.n.02",
    "fire hydrant": "water_faucet.n.01",
    "hair drier": "hand_blower.n.01",
    "handbag": "bag.n.04",
    "hot dog": "hotdog.n.01",
    "orange": "orange.n.01",
    "potted plant": "plant.n.01",
    "remote": "remote_control.n.01",
    "skis": "ski.n.01",
    "sports ball": "ball.n.01",
    "stop sign": "sign.n.02",
    "suitcase": "bag.n.06",
    "teddy bear": "teddy.n.01",
    "tv": "television.n.01",
    "wine glass": "wineglass.n.01",
}

MISSING_COCO_POLICIES = ("error", "keep")


def synset_readable_name(synset: str) -> str:
    """``"hot_dog.n.01"`` -> ``"hot dog"``: drop the WordNet ".pos.NN" suffix, "_" -> " "."""
    parts = synset.rsplit(".", 2)
    stem = parts[0] if len(parts) == 3 and parts[2].isdigit() else synset
    return stem.replace("_", " ")


def top_synsets(synsets: np.ndarray, counts: np.ndarray, k: int) -> List[str]:
    """The ``k`` most frequent synsets, most frequent first.

    Equal counts keep the order of first occurrence in ``objects.json`` (``synsets`` is in
    that order), which is what ``collections.Counter.most_common`` did in the official
    script; the cut at ``k`` is therefore deterministic for a given file.
    """
    order = np.argsort(-np.asarray(counts), kind="stable")[:k]
    return [str(synsets[i]) for i in order]


def match_coco_to_synsets(
    coco_names: Sequence[str],
    kept_synsets: Sequence[str],
    manual: Optional[Dict[str, str]] = None,
) -> List[Optional[str]]:
    """The kept synset of each COCO class, or None when it has none.

    Args:
        coco_names: COCO class names in COCO order.
        kept_synsets: the vocabulary, most frequent first (ties are won by the earlier one).
        manual: COCO name -> synset pairs that replace name matching for those classes
            (default :data:`COCO_TO_VG_MANUAL`); a pair whose synset is not kept gives None,
            never a fallback to another synset of the same name.
    """
    manual = COCO_TO_VG_MANUAL if manual is None else manual
    kept = set(kept_synsets)
    by_name: Dict[str, str] = {}
    for s in kept_synsets:
        by_name.setdefault(synset_readable_name(s), s)  # first = more frequent
    matched = []
    for name in coco_names:
        if name in manual:
            matched.append(manual[name] if manual[name] in kept else None)
        else:
            matched.append(by_name.get(name))
    used = [s for s in matched if s is not None]
    if len(used) != len(set(used)):
        dup = sorted({s for s in used if used.count(s) > 1})
        raise ValueError(f"VG synsets matched to several COCO classes: {dup}")
    return matched


@dataclass(frozen=True)
class VGCategories:
    """A VG label space. K classes; contiguous id = position in these lists.

    Attributes:
        thing_classes: K readable names, unique: COCO's names for ids 0..79, then the synset's
            readable name (or the synset itself when that name is already used).
        synsets: K synsets; "" for a COCO class without a kept synset (policy "keep").
        num_coco: 80, the number of leading COCO classes (set A).
    """

    thing_classes: List[str]
    synsets: List[str]
    num_coco: int

    def synset_to_contiguous_id(self) -> Dict[str, int]:
        return {s: i for i, s in enumerate(self.synsets) if s}


def build_vg_categories(
    synsets: np.ndarray,
    counts: np.ndarray,
    coco_names: Sequence[str],
    num_classes: int = 3000,
    missing_coco: str = "error",
    source: str = "objects.json",
) -> VGCategories:
    """Build the COCO-aligned K-class vocabulary from synset counts.

    Args:
        synsets, counts: all synsets and their counts (first-occurrence order).
        coco_names: the 80 COCO class names in COCO order.
        num_classes: K, the number of most frequent synsets kept, and of classes returned.
        missing_coco: what to do when a COCO class has no kept synset:
            "error": raise ValueError listing them (right for the real VG, where all 80 match);
            "keep": the COCO class keeps its id with no VG synset (so VG gives it no boxes,
            COCO still does in the joint set), and the least frequent kept synsets are
            dropped so that there are still exactly K classes.
        source: file name used in error messages.
    """
    if missing_coco not in MISSING_COCO_POLICIES:
        raise ValueError(f"missing_coco must be one of {MISSING_COCO_POLICIES}: {missing_coco!r}")
    if num_classes < len(coco_names):
        raise ValueError(f"num_classes={num_classes} < {len(coco_names)} COCO classes")
    kept = top_synsets(synsets, counts, num_classes)
    matched = match_coco_to_synsets(coco_names, kept)
    missing = [n for n, s in zip(coco_names, matched) if s is None]
    if missing and missing_coco == "error":
        raise ValueError(
            f"{source}: {len(missing)} COCO classes have no synset among the {num_classes} most "
            f"frequent VG synsets: {missing}. Use missing_coco='keep' to keep them as classes "
            "without VG boxes."
        )
    used = set(matched)
    rest = [s for s in kept if s not in used][: num_classes - len(coco_names)]
    if len(coco_names) + len(rest) < num_classes:
        raise ValueError(
            f"{source}: only {len(synsets)} distinct synsets, fewer than num_classes="
            f"{num_classes} classes can be built"
        )
    names = list(coco_names)
    taken = set(names)
    for s in rest:
        name = synset_readable_name(s)
        names.append(s if name in taken else name)
        taken.add(names[-1])
    return VGCategories(
        thing_classes=names,
        synsets=[s or "" for s in matched] + rest,
        num_coco=len(coco_names),
    )
