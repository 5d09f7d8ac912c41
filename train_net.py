#!/usr/bin/env python
"""Train and evaluate Mask^X R-CNN with detectron2's standard training loop.

    python train_net.py \
        --config-file configs/Synthetic/maskx_attributes_boxsup_R_18_FPN_synthetic.yaml
    python train_net.py --config-file CFG --num-gpus 8
    python train_net.py --config-file CFG --eval-only MODEL.WEIGHTS /path/to/model_final.pth
    python train_net.py --config-file CFG --resume
    python train_net.py --config-file CFG --dataset-module my_data.py   # your registered data

Only five things differ from detectron2's tools/train_net.py: the config gets Mask^X keys,
training uses the partially supervised mapper, evaluation reports sets A and B (and, with
TEST.MASKX.PROPOSAL_RECALL, the average recall of the outputs as proposals), (with
TEST.MASKX.GT_BOX_EVAL) the mask branch is also measured on the ground-truth boxes, and (with
MODEL.ROI_ALIGN_BACKWARD "auto", the default) RoIAlign's CPU backward is the faster separable
one of maskx_d2/layers/roi_align.py.
"""

import importlib
import importlib.util
import logging
import os
import weakref

from detectron2.config import get_cfg
from detectron2.data import build_detection_test_loader
from detectron2.engine import (
    DefaultTrainer,
    default_argument_parser,
    default_setup,
    launch,
)
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from maskx_d2 import add_maskx_config, check_compiled_ops
from maskx_d2.checkpoint import MaskXCheckpointer
from maskx_d2.data import PartiallySupervisedDatasetMapper
from maskx_d2.engine import IterationSeed, ResumableTrainLoader, ddp_on_cpu
from maskx_d2.evaluation import build_partially_supervised_evaluator
from maskx_d2.evaluation.gt_box_inference import (
    GTBoxMaskModel,
    GTBoxTestMapper,
    gt_box_eval_applies,
)
from maskx_d2.layers import use_roi_align_backward
from maskx_d2.numerics_environment import numerics_log_line

logger = logging.getLogger("maskx_d2.train_net")


class Trainer(DefaultTrainer):
    """DefaultTrainer with the partially supervised mapper and the A/B evaluator."""

    def __init__(self, cfg):
        with ddp_on_cpu():  # --num-gpus N without CUDA: N gloo processes
            super().__init__(cfg)

    @classmethod
    def build_model(cls, cfg):
        check_compiled_ops(cfg)  # a clear error before detectron2 builds a dummy layer
        model = super().build_model(cfg)
        use_roi_align_backward(model, cfg.MODEL.ROI_ALIGN_BACKWARD)  # faster CPU training
        return model

    @classmethod
    def build_train_loader(cls, cfg):
        # detectron2's loader, restartable at the resumed iteration's images.
        return ResumableTrainLoader(cfg, mapper=PartiallySupervisedDatasetMapper(cfg, True))

    def build_hooks(self):
        # DefaultTrainer.__init__ makes a plain DetectionCheckpointer, then calls build_hooks, whose
        # PeriodicCheckpointer takes self.checkpointer: replacing it here (same model, directory
        # and trainer; adds the loading summary and atomic saves) is the one public override
        # point where resume_or_load and the periodic saves both get ours, without editing the
        # registered hooks afterwards. Guarded so that a second call keeps the same object.
        if not isinstance(self.checkpointer, MaskXCheckpointer):
            self.checkpointer = MaskXCheckpointer(
                self.checkpointer.model, self.cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
            )
        # First: reseeds before any other hook's before_step (see maskx_d2/engine.py).
        return [IterationSeed(self.cfg.SEED, self.data_loader)] + super().build_hooks()

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_partially_supervised_evaluator(
            dataset_name,
            output_folder,
            distributed=comm.get_world_size() > 1,
            proposal_recall=cfg.TEST.MASKX.PROPOSAL_RECALL,
        )

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        if gt_box_eval_applies(cfg, dataset_name):  # keep the ground-truth boxes of masks
            return build_detection_test_loader(
                cfg, dataset_name, mapper=GTBoxTestMapper(cfg, False)
            )
        return super().build_test_loader(cfg, dataset_name)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        # The evaluator logs the A/B table (with the GT-box rows) itself.
        if cfg.TEST.MASKX.GT_BOX_EVAL and cfg.MODEL.MASK_ON:
            model = GTBoxMaskModel(model)
        return super().test(cfg, model, evaluators)


def import_dataset_module(spec: str) -> None:
    """Import a user module (dotted name or .py path) that registers datasets.

    Called in ``main`` so every training process, including those that ``launch`` spawns,
    registers the data before the config names it.
    """
    if spec.endswith(".py"):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"--dataset-module: no such file {spec}")
        module_spec = importlib.util.spec_from_file_location("maskx_user_datasets", spec)
        module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))
    else:
        importlib.import_module(spec)


def setup(args):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    # default_setup configures detectron2's loggers; ours report data skips and A/B tables.
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="maskx_d2")
    # Thread count and SIMD level change float results, and so a run's numbers; say which.
    logger.info(numerics_log_line())
    return cfg


def prepare(args):
    """Register the user's datasets (``--dataset-module``), then the frozen config of ``args``."""
    for spec in args.dataset_module:
        import_dataset_module(spec)
    return setup(args)


def build_trainer(cfg, args):
    """The Trainer of ``cfg``, its weights loaded or its run resumed as ``args`` says."""
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer


def main(args):
    cfg = prepare(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        MaskXCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
        return results
    return build_trainer(cfg, args).train()


def argument_parser():
    parser = default_argument_parser()
    parser.add_argument(
        "--dataset-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="module name or .py file that registers your datasets (repeatable)",
    )
    return parser


if __name__ == "__main__":
    args = argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
