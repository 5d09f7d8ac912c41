"""Wall-clock estimate of a training schedule from a measured iteration time.

The paper's R-50-FPN schedule is 90k iterations of 16 images (8 GPUs × 2 images). A benchmark
measures ``ms_per_iter`` at some batch on one GPU; this module turns that into hours for the
whole schedule on ``num_gpus`` GPUs, under assumptions that are printed with the number:

- time per image at the measured batch is what every GPU achieves (per-image time falls with
  larger batches, so an estimate from batch 2 is the honest one for 8 GPUs × 2 images, and one
  from the largest batch that fits is the honest one for a single GPU running the schedule
  with the same images per GPU step);
- with several GPUs, gradient all-reduce and stragglers cost ``1 - scaling_efficiency`` of the
  time (a parameter, default 0.9: an assumption, not a measurement; expect less across machines);
- data loading keeps up (enough DATALOADER.NUM_WORKERS), and evaluation and checkpointing are
  not counted.
"""

from dataclasses import dataclass

PAPER_ITERATIONS = 90_000
PAPER_IMAGES_PER_ITERATION = 16


@dataclass(frozen=True)
class ScheduleEstimate:
    num_gpus: int
    hours: float
    assumptions: str


def estimate_schedule(
    ms_per_iter: float,
    measured_images_per_iter: int,
    *,
    num_gpus: int,
    iterations: int = PAPER_ITERATIONS,
    images_per_iteration: int = PAPER_IMAGES_PER_ITERATION,
    scaling_efficiency: float = 0.9,
) -> ScheduleEstimate:
    """Hours to train ``iterations`` steps of ``images_per_iteration`` images on ``num_gpus``.

    Args:
        ms_per_iter: measured milliseconds per training iteration on one GPU.
        measured_images_per_iter: images in each measured iteration (the benchmark's batch).
        num_gpus: GPUs sharing each iteration's images (data parallel).
        scaling_efficiency: fraction of linear speed-up kept with ``num_gpus > 1``, in (0, 1].
    """
    if ms_per_iter <= 0 or measured_images_per_iter <= 0 or num_gpus <= 0:
        raise ValueError(
            f"need positive timings and counts, got ms_per_iter={ms_per_iter}, "
            f"measured_images_per_iter={measured_images_per_iter}, num_gpus={num_gpus}"
        )
    if not 0 < scaling_efficiency <= 1:
        raise ValueError(f"scaling_efficiency must be in (0, 1], got {scaling_efficiency}")
    efficiency = 1.0 if num_gpus == 1 else scaling_efficiency
    ms_per_image = ms_per_iter / measured_images_per_iter
    images_per_gpu = iterations * images_per_iteration / num_gpus
    hours = images_per_gpu * ms_per_image / efficiency / 3.6e6
    assumptions = (
        f"{iterations} it × {images_per_iteration} img, {num_gpus} GPU(s), "
        f"{ms_per_image:.1f} ms/img measured at batch {measured_images_per_iter}"
        + (f", scaling efficiency {efficiency:.2f}" if num_gpus > 1 else "")
        + "; data loading hidden, evaluation and checkpoints not counted"
    )
    return ScheduleEstimate(num_gpus=num_gpus, hours=hours, assumptions=assumptions)
