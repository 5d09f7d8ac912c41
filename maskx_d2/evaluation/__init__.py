"""Evaluation of partially supervised models: COCO AP on all classes, on set A and on set B, and
average recall of any model's outputs as class-agnostic proposals."""

from .ab_evaluator import (
    PartiallySupervisedCOCOEvaluator,
    build_partially_supervised_evaluator,
    format_ab_table,
)
from .proposal_recall import ProposalRecallEvaluator

__all__ = [
    "PartiallySupervisedCOCOEvaluator",
    "ProposalRecallEvaluator",
    "build_partially_supervised_evaluator",
    "format_ab_table",
]
