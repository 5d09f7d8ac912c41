"""The project's predefined datasets, one module per family, registered by :mod:`.builtin`.

- :mod:`.coco`: COCO with the paper's A/B category splits (:mod:`.coco_splits` holds them);
- :mod:`.visual_genome`: Visual Genome 3000 classes and the joint COCO + VG set;
- :mod:`.synthetic`: synthetic shapes v2, the embedded default, generated on first use.

Each family loads through the general partially supervised COCO loader
(:mod:`maskx_d2.data.coco_json`) or, for Visual Genome's boxes, its own fast reader that logs
the same validation summary.
"""

from . import builtin  # noqa: F401  (registers the datasets)
