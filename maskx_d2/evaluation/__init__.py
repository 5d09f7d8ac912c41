"""Evaluation of partially supervised models: COCO AP on all classes, on set A and on set B."""
from . import ab_evaluator  # noqa: F401
