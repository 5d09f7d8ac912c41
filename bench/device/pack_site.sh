#!/usr/bin/env bash
# Packs what the lent GPU machine lacks into .device_site/ (git-ignored), for gpu_checks.py.
#
#   bash setup.sh && bash bench/device/pack_site.sh     # here, once per session (about 10 s)
#
# The GPU machine (device tool, /work/.library/device/) has Python 3.12 with torch, torchvision,
# numpy, opencv, matplotlib, tabulate, portalocker, cloudpickle, pyyaml and tqdm, but no
# detectron2, none of its own pure-Python requirements and no pycocotools; it cannot reach PyPI.
# The pure-Python packages are copied from this checkout's .venv (the versions the tests ran
# with); pycocotools, which is compiled, is fetched from PyPI as the wheel for PY_VERSION.
# detectron2's compiled _C is left out: it is built for another Python, and maskx_d2 runs
# without it (README, "Installation").
#
# Knobs: PY_VERSION (default 3.12, the device's Python; another value lets you check the packing
# with a local interpreter of that version).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY_VERSION="${PY_VERSION:-3.12}"
SITE="$ROOT/.device_site"
VENV_PY="$ROOT/.venv/bin/python"
# Import names of the packages the device lacks, besides pycocotools.
PURE_PACKAGES=(detectron2 fvcore iopath yacs omegaconf hydra antlr4 termcolor)

die() { printf '[pack_site] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$VENV_PY" ] || die "$VENV_PY not found: run 'bash setup.sh' first"
VENV_SITE="$("$VENV_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
PYCOCOTOOLS_VERSION="$("$VENV_PY" -c 'from importlib.metadata import version; print(version("pycocotools"))')"

rm -rf "$SITE"
mkdir -p "$SITE"
for pkg in "${PURE_PACKAGES[@]}"; do
  [ -d "$VENV_SITE/$pkg" ] || die "$pkg is not installed in $VENV_SITE (re-run setup.sh)"
  cp -r "$VENV_SITE/$pkg" "$SITE/"
done
find "$SITE" -name __pycache__ -prune -exec rm -rf {} +
find "$SITE/detectron2" -maxdepth 1 -name '_C*.so' -delete

"$VENV_PY" -m pip install --disable-pip-version-check -q --no-deps --target "$SITE" \
  --python-version "$PY_VERSION" --implementation cp --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 "pycocotools==$PYCOCOTOOLS_VERSION" \
  || die "could not fetch the pycocotools $PYCOCOTOOLS_VERSION wheel for Python $PY_VERSION"

printf '[pack_site] %s: %s for Python %s\n' "$SITE" "$(du -sh "$SITE" | cut -f1)" "$PY_VERSION"
