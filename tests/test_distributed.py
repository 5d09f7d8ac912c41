"""train_net through detectron2's launch with 2 gloo processes on CPU (DDP, find_unused=False).

Equivalence needs every loss to be split-invariant between 1 process with 2 images and 2 processes
with 1 image each. Two things in detectron2 make that exact only under test conditions:
- RPN/ROI subsampling draws from each process's RNG: here every anchor and proposal is kept
  (batch sizes above their counts, positive fraction 1), so sampling only permutes them;
- ROI and mask losses are means over each process's own proposals / masks, and DDP averages the
  per-process means: equal to the mean over the whole batch only when the processes have equal
  counts. Here both hold the same image, so they do; with different images DDP training is
  still correct, the per-image weighting just differs (as in any detectron2 model).
The mask-free-rank test uses different images on the two ranks.
"""

import copy
import math
import os
import shutil
from datetime import timedelta

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import HookBase, launch
from detectron2.utils import comm
from pipeline_fixtures import INSTANT

import maskx_d2  # noqa: F401  (registers the datasets and model parts)
import train_net

OPTS = [
    "DATASETS.TEST",
    "()",
    "SOLVER.MAX_ITER",
    "3",
    "SOLVER.CHECKPOINT_PERIOD",
    "100",
    "SEED",
    "42",
    "SOLVER.IMS_PER_BATCH",
    "2",  # total: 2 x 1 image or 1 x 2 images
    "INPUT.RANDOM_FLIP",
    "none",  # flips draw from per-rank RNG streams
    # The model of the synthetic recipe before 2026-12-05, which this comparison was tuned on:
    # GroupNorm in the backbone (per-image statistics: BatchNorm's depend on how the batch is
    # split over processes), no norm in the FPN and the box head, stem and res2 frozen. With
    # the recipe's trained stem and norms there, two processes parted from one by 5e-4 relative
    # on the third loss (GroupNorm) and beyond the weight tolerance below, far above summation
    # order (1e-7); not analysed further (a discrete choice such as proposal ranking flipping
    # would do it). The distributed code path is the same either way.
    "MODEL.RESNETS.NORM",
    "GN",
    "MODEL.FPN.NORM",
    "",
    "MODEL.ROI_BOX_HEAD.NORM",
    "",
    "MODEL.BACKBONE.FREEZE_AT",
    "2",
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE",
    "100000",
    "MODEL.RPN.POSITIVE_FRACTION",
    "1.0",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
    "100000",
    "MODEL.ROI_HEADS.POSITIVE_FRACTION",
    "1.0",
]


def _records(tmp_path, masks):
    """Copies of the first training image, with masks or box-only as ``masks`` cycles.

    The image is copied next to the run: the shared datasets folder may be regenerated meanwhile.
    """
    record = copy.deepcopy(DatasetCatalog.get("synthetic_shapes_v2_train")[0])
    assert any("segmentation" in a for a in record["annotations"])
    record["file_name"] = str(shutil.copy(record["file_name"], tmp_path / "image.png"))
    box_only = copy.deepcopy(record)
    for anno in box_only["annotations"]:
        anno.pop("segmentation", None)
    return [record if m else box_only for m in masks * 8]


class _Record(HookBase):
    """Saves per rank: whether each batch had masks, final weights, and (main process) the
    unsmoothed rank-averaged losses."""

    def __init__(self, out):
        self.out, self.had_masks = out, []

    def before_train(self):
        def record(module, inputs):
            self.had_masks.append(any(bool(x["instances"].gt_has_mask.any()) for x in inputs[0]))

        self.trainer.model.register_forward_pre_hook(record)

    def after_train(self):
        model = self.trainer.model
        state = getattr(model, "module", model).state_dict()
        history = self.trainer.storage.histories().get("total_loss")  # main process only
        losses = [v for v, _ in history.values()] if history else None
        torch.save(
            {"losses": losses, "had_masks": self.had_masks, "weights": state},
            os.path.join(self.out, f"rank{comm.get_rank()}.pth"),
        )


def _worker(out, opts, records):
    if "dist_test" in DatasetCatalog.list():  # the single-process run is in the test process
        DatasetCatalog.remove("dist_test")
    DatasetCatalog.register("dist_test", lambda: records)
    MetadataCatalog.get("dist_test").set(
        thing_classes=MetadataCatalog.get("synthetic_shapes_v2_train").thing_classes
    )

    # A subclass, not a patch of train_net.Trainer: the single-process run happens in the test
    # process itself, and other tests use the real Trainer afterwards.
    class RecordingTrainer(train_net.Trainer):
        def build_hooks(self):
            return super().build_hooks() + [_Record(out)]

    argv = [
        "--config-file",
        INSTANT,
        "OUTPUT_DIR",
        out,
        "DATASETS.TRAIN",
        "('dist_test',)",
        *OPTS,
        *opts,
    ]
    trainer_class, train_net.Trainer = train_net.Trainer, RecordingTrainer
    try:
        train_net.main(train_net.argument_parser().parse_args(argv))
    finally:
        train_net.Trainer = trainer_class


def _train(out, processes, records, *opts):
    os.environ["OMP_NUM_THREADS"] = "1"
    launch(
        _worker,
        processes,
        dist_url="auto",
        args=(str(out), list(opts), records),
        timeout=timedelta(minutes=2),
    )  # a hung collective fails the test instead
    return [
        torch.load(os.path.join(out, f"rank{r}.pth"), weights_only=False) for r in range(processes)
    ]


def test_two_processes_train_like_one_with_the_same_total_batch(tmp_path):
    records = _records(tmp_path, masks=[True])
    (single,) = _train(tmp_path / "one", 1, records)
    ranks = _train(tmp_path / "two", 2, records)

    assert len(single["losses"]) == 3
    # Observed: 1e-7 relative on losses, 3e-8 absolute on weights (summation order only).
    assert ranks[0]["losses"] == pytest.approx(single["losses"], rel=1e-5)
    for key, expected in single["weights"].items():
        torch.testing.assert_close(
            ranks[0]["weights"][key], expected, rtol=1e-4, atol=1e-6, msg=key
        )
        assert torch.equal(ranks[1]["weights"][key], ranks[0]["weights"][key]), key


def test_a_rank_without_masks_neither_fails_nor_hangs(tmp_path):
    ranks = _train(tmp_path, 2, _records(tmp_path, masks=[True, False]))
    # Some step had masks on one rank only: its mask branch took part with a zero loss.
    assert any(a != b for a, b in zip(ranks[0]["had_masks"], ranks[1]["had_masks"]))
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(ranks[1]["weights"][key], value), key  # the ranks stayed in sync
        assert torch.isfinite(value).all() if value.is_floating_point() else True


def _eval_worker(out, weights):
    results = train_net.main(
        train_net.argument_parser().parse_args(
            ["--config-file", INSTANT, "--eval-only", "OUTPUT_DIR", out, "MODEL.WEIGHTS", weights]
        )
    )
    torch.save(results, os.path.join(out, f"results{comm.get_rank()}.pth"))


def test_two_process_evaluation_equals_one_process_gt_box_metrics_included(tmp_path):
    """Each process evaluates half of the images; the main one gathers both halves, the
    masks predicted on ground-truth boxes included."""
    os.environ["OMP_NUM_THREADS"] = "1"
    train_net.main(
        train_net.argument_parser().parse_args(
            [
                "--config-file",
                INSTANT,
                "OUTPUT_DIR",
                str(tmp_path / "train"),
                "TEST.EVAL_PERIOD",
                "0",
                "DATASETS.TEST",
                "()",
                "SOLVER.MAX_ITER",
                "2",
            ]
        )
    )
    weights = str(tmp_path / "train" / "model_final.pth")
    results = {}
    for processes in (1, 2):
        out = str(tmp_path / f"eval{processes}")
        launch(
            _eval_worker,
            processes,
            dist_url="auto",
            args=(out, weights),
            timeout=timedelta(minutes=2),
        )
        results[processes] = torch.load(os.path.join(out, "results0.pth"), weights_only=False)
    assert {"segm_gtbox", "segm_gtbox_A", "segm_gtbox_B"} <= set(results[1])
    assert results[1]["segm_gtbox"]["mIoU"] > 0
    for task, metrics in results[1].items():
        for name, value in metrics.items():
            other = results[2][task][name]
            assert other == value or (math.isnan(other) and math.isnan(value)), (task, name)
