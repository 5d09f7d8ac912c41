#!/usr/bin/env python
"""Train as train_net.py does, printing every step's gradient norms: where does a run diverge?

    python tools/gradient_norm_log.py \\
        --config-file configs/Synthetic/mnc_oracle_R_18_FPN_synthetic.yaml MODEL.MNC.NUM_STAGES 5 \\
        SEED 2 SOLVER.MAX_ITER 300 DATASETS.TEST "()" OUTPUT_DIR /tmp/gradlog

Takes train_net.py's arguments. Each step prints, before the optimizer's step and so before any
``SOLVER.CLIP_GRADIENTS`` clipping, one line::

    step 130: total grad norm 23.7, largest per-parameter norm 12.1 (roi_heads.box_head.fc1.weight)

and stops the run with a FloatingPointError naming the first parameter that the step made
non-finite (detectron2 itself only notices non-finite losses, one forward later, if at all).
Training is otherwise unchanged: same trainer, data, seed and checkpoints, so a deterministic run
repeats its losses to the last digit with the log on.
"""

import os
import sys
from typing import Iterable, Optional, Tuple

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import train_net  # noqa: E402

NamedParameters = Iterable[Tuple[str, torch.nn.Parameter]]


def gradient_norms(named_parameters: NamedParameters) -> Tuple[float, float, str]:
    """(total L2 norm of all gradients, the largest per-parameter L2 norm, that parameter's
    name) over the parameters that have a gradient; (0, 0, "") when none has."""
    total_sq, largest, name = 0.0, 0.0, ""
    for n, p in named_parameters:
        if p.grad is None:
            continue
        norm = p.grad.detach().float().norm().item()
        total_sq += norm * norm
        if norm > largest or not name:
            largest, name = norm, n
    return total_sq**0.5, largest, name


def first_non_finite(named_parameters: NamedParameters) -> Optional[str]:
    """The name of the first parameter holding a NaN or an infinity, or None."""
    for n, p in named_parameters:
        if not torch.isfinite(p.detach()).all():
            return n
    return None


def log_gradient_norms(model: torch.nn.Module, optimizer: torch.optim.Optimizer, out=None):
    """Wrap ``optimizer.step`` (in place) to print each step's norms to ``out`` (default: the
    standard output at the time of the step) and to raise once a parameter of ``model`` is no
    longer finite after the step."""
    step = optimizer.step
    count = [0]

    def logged_step(*args, **kwargs):
        total, largest, name = gradient_norms(model.named_parameters())
        print(
            f"step {count[0]}: total grad norm {total:.3g}, largest per-parameter norm "
            f"{largest:.3g} ({name})",
            file=out or sys.stdout,
            flush=True,
        )
        result = step(*args, **kwargs)
        broken = first_non_finite(model.named_parameters())
        if broken is not None:
            raise FloatingPointError(f"step {count[0]} made parameter {broken} non-finite")
        count[0] += 1
        return result

    optimizer.step = logged_step


def main(argv=None):
    args = train_net.argument_parser().parse_args(argv)
    if args.eval_only or args.num_gpus > 1:
        raise SystemExit("gradient_norm_log.py trains in one process: no --eval-only/--num-gpus")
    trainer = train_net.build_trainer(train_net.prepare(args), args)
    log_gradient_norms(trainer.model, trainer.optimizer)
    return trainer.train()


if __name__ == "__main__":
    main()
