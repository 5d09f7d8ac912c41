"""A crash during a checkpoint save leaves the previous checkpoint and last_checkpoint usable."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

import maskx_d2.checkpoint
from maskx_d2.checkpoint import MaskXCheckpointer

ROOT = os.path.join(os.path.dirname(__file__), "..")

# Saves model_final with weights 1, then dies by SIGKILL half-way through writing model_final
# again with weights 2: the bytes of a real torch.save reach the disk, then the process is gone.
_KILLED_MID_SAVE = textwrap.dedent("""
    import io, os, signal, sys
    import maskx_d2  # noqa: F401
    import torch
    from detectron2.checkpoint import DetectionCheckpointer
    from maskx_d2.checkpoint import MaskXCheckpointer

    out, atomic = sys.argv[1], sys.argv[2] == "1"
    model = torch.nn.Linear(512, 512)
    ckpt = (MaskXCheckpointer if atomic else DetectionCheckpointer)(model, save_dir=out)
    torch.nn.init.constant_(model.weight, 1.0)
    ckpt.save("model_final", iteration=9)

    real_save = torch.save
    def dying_save(obj, f):
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    torch.save = dying_save
    torch.nn.init.constant_(model.weight, 2.0)
    ckpt.save("model_final", iteration=19)
""")


def _model(value=0.0):
    model = torch.nn.Linear(512, 512)
    torch.nn.init.constant_(model.weight, value)
    return model


def _last(out):
    with open(os.path.join(out, "last_checkpoint")) as f:
        return f.read()


@pytest.mark.parametrize("atomic", [True, False], ids=["MaskXCheckpointer", "detectron2"])
def test_sigkill_during_save_keeps_the_previous_checkpoint(tmp_path, atomic):
    out = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_SAVE, out, str(int(atomic))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr  # killed, not finished
    assert _last(out) == "model_final.pth"

    model = _model()
    if not atomic:
        # The control: detectron2 writes in place, the killed save truncated the only copy.
        with pytest.raises(Exception):
            DetectionCheckpointer(model, save_dir=out).resume_or_load("", resume=True)
        return
    extra = MaskXCheckpointer(model, save_dir=out).resume_or_load("", resume=True)
    assert extra["iteration"] == 9
    assert torch.all(model.weight == 1.0)
    # The half-written file is a hidden temporary, never pointed to.
    leftovers = set(os.listdir(out)) - {"model_final.pth", "last_checkpoint"}
    assert len(leftovers) == 1 and leftovers.pop().startswith(".tmp-model_final.")


def test_failed_save_leaves_previous_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    out = str(tmp_path)
    model = _model(1.0)
    ckpt = MaskXCheckpointer(model, save_dir=out)
    ckpt.save("model_0000001", iteration=1)

    def disk_full(obj, f):
        f.write(b"\x80\x02partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    torch.nn.init.constant_(model.weight, 2.0)
    with pytest.raises(OSError, match="No space"):
        ckpt.save("model_0000003", iteration=3)
    monkeypatch.undo()

    assert sorted(os.listdir(out)) == ["last_checkpoint", "model_0000001.pth"]
    assert _last(out) == "model_0000001.pth"
    fresh = _model()
    assert MaskXCheckpointer(fresh, save_dir=out).resume_or_load("", resume=True)["iteration"] == 1
    assert torch.all(fresh.weight == 1.0)


def test_last_checkpoint_is_replaced_not_rewritten_in_place(tmp_path, monkeypatch):
    """A crash while writing the pointer leaves the old pointer, never an empty file."""
    out = str(tmp_path)
    ckpt = MaskXCheckpointer(_model(1.0), save_dir=out)
    ckpt.save("model_0000001")

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(maskx_d2.checkpoint.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.tag_last_checkpoint("model_0000003.pth")
    monkeypatch.undo()
    assert _last(out) == "model_0000001.pth"


def test_non_finite_weights_are_not_saved(tmp_path):
    out = str(tmp_path)
    model = _model(1.0)
    ckpt = MaskXCheckpointer(model, save_dir=out)
    ckpt.save("model_0000001", iteration=1)
    with torch.no_grad():
        model.weight[3, 4] = float("nan")
    with pytest.raises(FloatingPointError, match=r"'model_0000003'.*weight"):
        ckpt.save("model_0000003", iteration=3)
    assert sorted(os.listdir(out)) == ["last_checkpoint", "model_0000001.pth"]
    assert _last(out) == "model_0000001.pth"
