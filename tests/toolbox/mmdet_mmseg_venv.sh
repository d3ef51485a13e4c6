#!/usr/bin/env bash
# The environment for tests/toolbox/test_mmdet_mmseg.py: mmsegmentation 1.2.2 and mmdetection 3.3.0 need full mmcv
# (compiled ops, mmcv._ext), which has no wheel for torch 2.14.1 (the only torch here with a torchvision, a CUDA
# build from the machine's local wheels). mmcv 2.1.0 is built from its sdist (CPU ops) with one patch: torch 2.14's
# headers need C++20, the sdist's setup.py asks for -std=c++17 (three lines). The build takes ~12 minutes on 2 idle
# cores (~30 on a loaded machine); give a built wheel in $MMCV_WHEEL to skip it. mmseg/mmdet are installed without
# their requirements (which would pull an mmcv wheel), then their runtime requirements (mmdet's include six).
# setuptools < 81 keeps pkg_resources, which MMEngine's pkg:: config bases need.
# Usage: [MMCV_WHEEL=/path/mmcv-2.1.0-*.whl] bash tests/toolbox/mmdet_mmseg_venv.sh [VENV]   (default .venv-mmdet)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
VENV="$(realpath -m "${1:-.venv-mmdet}")"
python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q torch==2.14.1 torchvision==0.29.1
$PIP install -q "setuptools<81" wheel ninja numpy mmengine==0.10.7
if [ -z "${MMCV_WHEEL:-}" ]; then
    echo "building mmcv 2.1.0 from its sdist (compiled ops; 12-30 minutes)" >&2
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    $PIP download -q --no-binary :all: --no-deps mmcv==2.1.0 -d "$BUILD"
    tar xzf "$BUILD/mmcv-2.1.0.tar.gz" -C "$BUILD"
    sed -i "s/'-std=c++17'/'-std=c++20'/g" "$BUILD/mmcv-2.1.0/setup.py"
    [ "$(grep -c "'-std=c++20'" "$BUILD/mmcv-2.1.0/setup.py")" = 3 ] || { echo "mmcv setup.py patch failed" >&2; exit 1; }
    (cd "$BUILD/mmcv-2.1.0" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        $PIP wheel -q --no-build-isolation --no-deps -w "$BUILD/dist" .)
    MMCV_WHEEL="$(ls "$BUILD"/dist/mmcv-2.1.0-*.whl)"
fi
$PIP install -q --no-deps "$MMCV_WHEEL"
$PIP install -q --no-deps mmsegmentation==1.2.2 mmdet==3.3.0
$PIP install -q prettytable wcwidth scipy ftfy regex pycocotools shapely terminaltables six tqdm
$PIP install -q -e "$REPO[test]"
"$VENV/bin/python" -c "import mmcv.ops, mmseg.models, mmdet.models; print('mmcv', mmcv.__version__, 'ops OK')"
