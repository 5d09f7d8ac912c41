"""Batch-norm running statistics that a forward pass in training must leave alone.

Two places run trained layers in training mode without wanting their statistics updated:

- stage-wise training (``MODEL.MASKX.FREEZE_DETECTOR``) freezes the detector's parameters, but
  a BatchNorm layer in training mode still normalizes with the batch's statistics and moves its
  running averages, so the "frozen" detector would change under the mask branch's training.
  :func:`freeze_norm_statistics` puts those layers in eval mode (running statistics, no update).
- OPMask's class activation prior runs the box head a second time, on the mask branch's RoIs
  (positives or ground-truth boxes, a different population from the box branch's sampled
  RoIs). :func:`running_statistics_kept` keeps that pass from moving the box head's averages,
  which are the box branch's.
"""

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["freeze_norm_statistics", "running_statistics_kept"]


def freeze_norm_statistics(model: nn.Module, keep: Callable[[str], bool]) -> int:
    """Put every BatchNorm layer of ``model`` whose name ``keep`` rejects in eval mode.

    Call it after each ``model.train()`` (``nn.Module.train`` resets every child's mode).
    Covers ``nn.BatchNorm*``, ``nn.SyncBatchNorm`` and detectron2's ``NaiveSyncBatchNorm``
    (all ``_BatchNorm``); ``FrozenBatchNorm2d`` and GroupNorm have nothing to freeze.
    Returns the number of layers switched.
    """
    switched = 0
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm) and module.training and not keep(name):
            module.eval()
            switched += 1
    return switched


@contextlib.contextmanager
def running_statistics_kept(module: nn.Module) -> Iterator[None]:
    """Within the block, BatchNorm layers of ``module`` still normalize as their mode says (batch
    statistics in training) but their running mean, variance and batch count are as before it
    on exit, as if the block had not run.

    torch's BatchNorm is told not to track them for the block (``track_running_stats``), so it
    writes nothing: an in-place write would bump the buffers' versions, and autograd, which
    saved them for the backward of an earlier pass through the same layer (the box branch's),
    would refuse that backward. A layer that updates them itself whatever the flag says
    (detectron2's NaiveSyncBatchNorm across processes) gets its values copied back on exit;
    that is safe for the same reason, as its multi-process path normalizes with the batch's
    statistics only and saves no running buffer for backward.
    """
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [{k: b.clone() for k, b in m.named_buffers(recurse=False)} for m in norms]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in zip(norms, saved):
                m.track_running_stats = True
                for k, b in m.named_buffers(recurse=False):
                    if not torch.equal(b, buffers[k]):
                        b.copy_(buffers[k])
