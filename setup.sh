#!/usr/bin/env bash
# Sets up maskx-d2 in a virtual environment at .venv/ (idempotent; safe to re-run).
#
#   bash setup.sh
#
# Environment knobs:
#   TORCH_SPEC     pip requirement(s) for torch/torchvision
#                  (default "torch==2.14.1 torchvision==0.29.1"; e.g. a CUDA 12.x build index)
#   TORCH_INDEX    optional extra --index-url for torch wheels
#   D2_SOURCE      "auto" (default: official git source at D2_COMMIT, else the PyPI snapshot),
#                  "git" (official git only) or "snapshot" (PyPI snapshot only)
#   PYTHON         interpreter used to create the venv (default python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
D2_SOURCE="${D2_SOURCE:-auto}"
# The commit of facebookresearch/detectron2 its git source is installed from: HEAD moves, and every
# set-up should build the same detectron2. 02b5c4e is the newest commit as of 2026-06-06; bump it
# deliberately and rerun the tests.
D2_COMMIT="02b5c4e295e990042a714712c21dc79b731e8833"
D2_GIT="git+https://github.com/facebookresearch/detectron2.git@$D2_COMMIT"
D2_SNAPSHOT="sal-detectron2==0.7.2"

say() { printf '\n[setup] %s\n' "$*"; }
die() { printf '\n[setup] ERROR: %s\n' "$*" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment at $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV" || die "could not create a venv with '$PYTHON' (is python3-venv installed?)"
else
  say "virtual environment $VENV exists; reusing it"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)
"${PIP[@]}" -q --upgrade pip wheel >/dev/null || die "could not upgrade pip in $VENV"

if "$PY" -c "import torch, torchvision; torchvision.ops.nms" 2>/dev/null; then
  say "torch $("$PY" -c 'import torch; print(torch.__version__)') and torchvision already work; keeping them"
else
  say "installing $TORCH_SPEC"
  # shellcheck disable=SC2086
  "${PIP[@]}" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} $TORCH_SPEC \
    || die "could not install '$TORCH_SPEC'; set TORCH_SPEC/TORCH_INDEX to a torch build you can reach"
  "$PY" -c "import torch, torchvision; torchvision.ops.nms" \
    || die "torch and torchvision were installed but torchvision's ops do not load; pick a matching pair via TORCH_SPEC"
fi

say "installing detectron2's Python requirements, pycocotools, opencv-python-headless"
"${PIP[@]}" -q "setuptools<81" "numpy" "Pillow" "fvcore>=0.1.5,<0.1.6" "iopath>=0.1.7,<0.1.11" \
  "yacs" "omegaconf>=2.1,<2.4" "hydra-core>=1.1" "pycocotools>=2.0.2" termcolor tabulate cloudpickle \
  tqdm tensorboard matplotlib black opencv-python-headless packaging \
  || die "could not install detectron2's requirements"

have_d2() { "$PY" -c "import detectron2, detectron2.config" 2>/dev/null; }
if have_d2; then
  say "detectron2 $("$PY" -c 'import detectron2; print(detectron2.__version__)') already installed; keeping it"
else
  installed=no
  if [ "$D2_SOURCE" != "snapshot" ]; then
    say "trying the official detectron2 git source ($D2_GIT)"
    if timeout 900 "${PIP[@]}" --no-build-isolation "$D2_GIT"; then
      installed=yes
    else
      say "official git source not reachable or did not build"
      [ "$D2_SOURCE" = "git" ] && die "D2_SOURCE=git but $D2_GIT could not be installed"
    fi
  fi
  if [ "$installed" = no ]; then
    say "installing the PyPI snapshot of official detectron2 sources ($D2_SNAPSHOT, see DEVELOPERS.md)"
    SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    TMP="$(mktemp -d)"
    # The wheel is tagged cp310 only; its Python sources run on newer CPython. Its compiled
    # _C does not load there: maskx_d2 then provides a stub that fails clearly on use.
    "$PY" -m pip install --disable-pip-version-check -q --no-deps --target "$TMP" \
      --python-version 3.10 --only-binary=:all: "$D2_SNAPSHOT" \
      || die "could not download $D2_SNAPSHOT; install detectron2 yourself (see its INSTALL.md) and re-run"
    # Copy only detectron2 itself: the wheel also ships a top-level 'tools' package that would
    # shadow any other 'tools' module on sys.path.
    rm -rf "$SITE/detectron2"
    cp -r "$TMP/detectron2" "$SITE/detectron2"
    cp -r "$TMP"/sal_detectron2-*.dist-info "$SITE/" 2>/dev/null || true
    rm -rf "$TMP"
  fi
fi

say "installing maskx-d2 in editable mode with its test extras"
# --no-deps: setup.py requires detectron2, which is not on PyPI, and the snapshot above is
# registered as sal-detectron2, so a resolving install would try (and fail) to fetch detectron2
# from PyPI. The other requirements and the test extras are read from the installed metadata
# (setup.py stays the one list) and installed next, detectron2 left out.
"${PIP[@]}" -q --no-build-isolation --no-deps -e "$ROOT" || die "could not install maskx-d2 from $ROOT"
req_lines="$("$PY" - <<'PYREQS'
from importlib.metadata import requires

from packaging.requirements import Requirement

for spec in requires("maskx-d2"):
    req = Requirement(spec)
    if req.name != "detectron2" and (req.marker is None or req.marker.evaluate({"extra": "test"})):
        req.marker = None
        print(req)
PYREQS
)" || die "could not read maskx-d2's requirements"
mapfile -t REQS <<<"$req_lines"
"${PIP[@]}" -q "${REQS[@]}" || die "could not install maskx-d2's requirements: ${REQS[*]}"

say "checking the installation"
"$PY" - <<'PYCHECK' || die "maskx_d2 does not import; see the traceback above"
import maskx_d2, detectron2, torch
from maskx_d2.compat import compiled_ops_available
print(f"maskx_d2 OK  detectron2 {detectron2.__version__}  torch {torch.__version__}  "
      f"detectron2 compiled ops: {'yes' if compiled_ops_available() else 'no (pure-Python fallbacks)'}")
PYCHECK
say "done. Activate with: source .venv/bin/activate"
