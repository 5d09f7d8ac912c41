"""Every predefined dataset family is registered under the one root, ``~`` expanded."""

import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# A fresh interpreter: the registration runs once, at import, with the environment of then.
PRINT_ROOTS = """
import maskx_d2
from detectron2.data import MetadataCatalog
print(MetadataCatalog.get("coco_2017_val_voc2nonvoc").json_file)
print(MetadataCatalog.get("vg3k_train").vg_root)
print(MetadataCatalog.get("synthetic_shapes_v2_val").json_file)
"""


def test_detectron2_datasets_with_a_tilde_is_expanded_for_every_family(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), DETECTRON2_DATASETS="~/data", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", PRINT_ROOTS], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    paths = result.stdout.split()
    assert len(paths) == 3
    expected = str(tmp_path / "data")
    assert all(p.startswith(expected + os.sep) for p in paths), paths
