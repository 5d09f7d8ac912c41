"""Visual Genome 3000 classes (VG3k) and the joint COCO-masks + VG-boxes set.

Modules: :mod:`.loading` (the datasets: splits, label space, registration), :mod:`.tables`
(objects.json and image_data.json read once into arrays, cached), :mod:`.vocab` (the 3000
classes from synset counts), :mod:`.dicts` (arrays to detectron2's box-only dicts).
"""

from .loading import *  # noqa: F401,F403  (the datasets' public functions)
from .loading import __all__  # noqa: F401
