#!/usr/bin/env bash
# A second environment for the real-toolbox tests (tests/toolbox/test_mmpretrain.py): mmpretrain needs
# torchvision, which pairs here only with torch 2.14.1 (a CUDA build, ~6 GB, from the machine's local wheels).
# mmpretrain's own requirements name full mmcv (compiled, no wheel here): it is installed without them, with
# mmcv-lite, which its classification models and transforms need.
# Usage: bash tests/toolbox/mmpretrain_venv.sh [VENV]   (default .venv-toolbox)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${1:-.venv-toolbox}"
python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q torch==2.14.1 torchvision==0.29.1
$PIP install -q mmengine==0.10.7 mmcv-lite==2.2.0 einops importlib-metadata mat4py modelindex
$PIP install -q --no-deps mmpretrain==1.2.0
$PIP install -q -e ".[test]"
