"""Trainer-side pieces for resumable, reproducible and CPU-distributed training.

A ``--resume`` restores what detectron2 checkpoints (model, optimizer, scheduler, iteration) but
not the position in the data stream nor the random number generators, so a resumed run sees
other images and draws other samples than the run it continues. Both are made functions of the
iteration here, so iteration ``i`` computes the same thing whether or not the run stopped before
``i`` (exactly so with DATALOADER.NUM_WORKERS 0; see docs/distributed.md for the limits):

- :class:`ResumableTrainLoader` starts this rank's sampler stream at ``i * images per rank``;
- :class:`IterationSeed` reseeds python, numpy and torch from (SEED, rank, ``i``) before each step.

:func:`ddp_on_cpu` lets ``DefaultTrainer`` wrap a CPU model in DistributedDataParallel, so
``train_net.py --num-gpus N`` on a machine without CUDA trains with N gloo processes.
"""

import contextlib
import itertools

import numpy as np
from detectron2.data import build_detection_train_loader
from detectron2.engine import HookBase
from detectron2.engine import defaults as d2_defaults
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from torch.utils.data import Sampler

__all__ = ["IterationSeed", "ResumableSampler", "ResumableTrainLoader", "ddp_on_cpu"]


class ResumableSampler(Sampler):
    """One of detectron2's infinite training samplers, entered ``start`` indices into its stream.

    detectron2's samplers yield this rank's share of a seeded infinite stream; skipping the
    share that iterations before the resumed one consumed restores the stream's position.
    """

    def __init__(self, sampler: Sampler):
        self._sampler = sampler
        self.start = 0

    def __iter__(self):
        return itertools.islice(iter(self._sampler), self.start, None)


class ResumableTrainLoader:
    """detectron2's train loader for ``cfg``, whose stream can start at any iteration."""

    def __init__(self, cfg, mapper):
        kwargs = build_detection_train_loader.from_config(cfg, mapper=mapper)
        self.sampler = ResumableSampler(kwargs.pop("sampler"))
        self._images_per_step = kwargs["total_batch_size"] // comm.get_world_size()
        # A seeded generator of its own: starting the loader then draws nothing from the global
        # torch RNG, which IterationSeed has just set for the step's model computation.
        seed = cfg.SEED if cfg.SEED >= 0 else None
        self._loader = build_detection_train_loader(sampler=self.sampler, seed=seed, **kwargs)

    def start_at(self, iteration: int) -> None:
        """Skip the images of iterations ``< iteration``; call before iterating.

        Exact when every batch takes the next images of the stream: always without aspect-ratio
        grouping, and with it when all images fall into one group (one aspect-ratio side).
        """
        self.sampler.start = iteration * self._images_per_step

    def __iter__(self):
        return iter(self._loader)


def step_seed(seed: int, rank: int, iteration: int) -> int:
    """A 32-bit seed determined by (seed, rank, iteration), independent across the three."""
    return int(np.random.SeedSequence([seed, rank, iteration]).generate_state(1)[0])


class IterationSeed(HookBase):
    """Reseed all RNGs before every step and start the data stream at the resumed iteration.

    Only rank 0 writes checkpoints, so saving RNG states there could not restore the other
    ranks; deriving each step's seed from its iteration needs no state at all.
    """

    def __init__(self, seed: int, loader: ResumableTrainLoader):
        self._seed = seed  # SEED < 0 asks for a random run: nothing to reproduce, no reseeding
        self._loader = loader

    def before_train(self):
        self._loader.start_at(self.trainer.start_iter)

    def before_step(self):
        if self._seed >= 0:
            seed_all_rng(step_seed(self._seed, comm.get_rank(), self.trainer.iter))


def _create_ddp_model_on_cpu(create_ddp_model):
    def create(model, **kwargs):
        # detectron2 passes device_ids=[local rank], which DDP rejects for a CPU module.
        if next(model.parameters()).device.type == "cpu":
            kwargs.setdefault("device_ids", None)
        return create_ddp_model(model, **kwargs)

    return create


@contextlib.contextmanager
def ddp_on_cpu():
    """Within this block, ``DefaultTrainer.__init__`` can wrap a CPU model in DDP (gloo).

    detectron2's ``launch`` already starts gloo processes when CUDA is absent; only
    ``create_ddp_model`` assumes a GPU. Wrapping ``super().__init__`` in this block keeps the
    trainer's construction detectron2's own instead of a copy of it.
    """
    original = d2_defaults.create_ddp_model
    d2_defaults.create_ddp_model = _create_ddp_model_on_cpu(original)
    try:
        yield
    finally:
        d2_defaults.create_ddp_model = original
