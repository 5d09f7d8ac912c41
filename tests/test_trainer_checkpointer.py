"""train_net.Trainer saves and resumes through MaskXCheckpointer, periodic saves included."""

from detectron2.engine import hooks
from pipeline_fixtures import INSTANT

import train_net
from maskx_d2.checkpoint import MaskXCheckpointer


def test_trainer_and_its_periodic_checkpointer_share_one_maskx_checkpointer(tmp_path):
    args = train_net.argument_parser().parse_args(
        ["--config-file", INSTANT, "OUTPUT_DIR", str(tmp_path)]
    )
    trainer = train_net.Trainer(train_net.setup(args))
    assert isinstance(trainer.checkpointer, MaskXCheckpointer)
    assert trainer.checkpointer.save_dir == str(tmp_path)
    # detectron2 has no public accessor for the registered hooks.
    periodic = [h for h in trainer._hooks if isinstance(h, hooks.PeriodicCheckpointer)]
    assert len(periodic) == 1 and periodic[0].checkpointer is trainer.checkpointer
    # A second build_hooks (as tests that wrap it do) keeps the same checkpointer.
    rebuilt = [h for h in trainer.build_hooks() if isinstance(h, hooks.PeriodicCheckpointer)]
    assert rebuilt[0].checkpointer is trainer.checkpointer
