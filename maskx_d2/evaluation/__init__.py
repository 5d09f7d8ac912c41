"""Evaluation of partially supervised models: COCO AP on all classes, on set A and on set B."""

from .ab_evaluator import (
    PartiallySupervisedCOCOEvaluator,
    build_partially_supervised_evaluator,
    format_ab_table,
)

__all__ = [
    "PartiallySupervisedCOCOEvaluator",
    "build_partially_supervised_evaluator",
    "format_ab_table",
]
