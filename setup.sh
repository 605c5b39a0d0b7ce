#!/usr/bin/env bash
# clockface set-up. Idempotent, no prompts.
#
#   ./setup.sh            development machine: .venv with converter, device runtime and
#                         tests, plus the default model converted into the data folder
#   ./setup.sh --device   a terminal (Raspberry Pi OS / Debian): system venv under
#                         /opt/clockface, config in /etc/clockface, systemd units
#   ./setup.sh --device --kiosk   the same, plus the kiosk screen (cage + Chromium on tty1)
#   ./setup.sh --device --uninstall [--purge-data]
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

MODE=dev
DEVICE_ARGS=()  # passed on to systemd/install-device.sh
for arg in "$@"; do
  case "$arg" in
    --device) MODE=device ;;
    --dev) MODE=dev ;;
    --kiosk|--uninstall|--purge-data) DEVICE_ARGS+=("$arg") ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $arg (see ./setup.sh --help)" ;;
  esac
done
# On a Raspberry Pi the terminal is what people want.
if [ "$MODE" = dev ] && [ $# -eq 0 ] && grep -qs "Raspberry Pi" /proc/device-tree/model; then
  MODE=device
fi

python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; }

find_python() {
  for py in python3.11 python3.12 python3.13 python3; do
    if command -v "$py" >/dev/null && python_ok "$py"; then command -v "$py"; return 0; fi
  done
  return 1
}

ensure_venv_support() {
  # Debian splits venv/ensurepip out of python3; install it when we can.
  local py=$1
  if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing python3-venv"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
      die "$py has no venv module: sudo apt install python3-venv"
    fi
  fi
}

ensure_shellcheck() {
  # tests/test_lint.py lints every shell script; in CI (CI=true) a missing linter
  # fails the run. Install it where we can (root with apt), else say so once.
  command -v shellcheck >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing shellcheck (for the shell-script lint test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
  else
    say "shellcheck not found: the shell-script lint test will be skipped (sudo apt install shellcheck)"
  fi
}

ensure_postgresql() {
  # The fleet tests (tests/central/) start a throwaway PostgreSQL cluster from
  # /usr/lib/postgresql/<newest>/bin and make TLS certificates with openssl; in CI a
  # missing server fails them. The terminal itself needs neither (only psycopg, from pip).
  local missing=()
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  command -v openssl >/dev/null || missing+=(openssl)
  [ "${#missing[@]}" = 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]} (for the central-server tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "${missing[*]} not found: the central-server tests will be skipped (sudo apt install ${missing[*]})"
  fi
}

dev_setup() {
  local py
  py=$(find_python) || die "Python 3.11 or newer is needed (sudo apt install python3 python3-venv)"
  ensure_venv_support "$py"
  ensure_shellcheck
  ensure_postgresql
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $py"
    "$py" -m venv .venv
  fi
  local stamp=.venv/.clockface-installed
  local want
  want=$(cat pyproject.toml tests/constraints.txt | sha256sum | cut -c1-16)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing clockface with converter, demo, heic and test extras (first run: a few minutes)"
    .venv/bin/python -m pip install -q --upgrade pip
    # The exact versions the tests ran with (tests/make_constraints.py writes them).
    .venv/bin/python -m pip install -q -c tests/constraints.txt -e ".[converter,demo,heic,test]"
    # keras-vggface's code runs on tf-keras (Keras 2). tf-keras declares the full
    # `tensorflow` package, which would land beside tensorflow-cpu: install it alone.
    .venv/bin/python -m pip install -q --no-deps -c tests/constraints.txt tf-keras
    echo "$want" > "$stamp"
  else
    say ".venv is up to date"
  fi
  # The default model, so the terminal can run at once.
  local models
  models=$(.venv/bin/clockface config show --key paths.data_dir)/models
  if [ ! -f "$models/dlib-resnet-v1.tflite" ] || [ ! -f "$models/dlib-resnet-v1.json" ]; then
    say "converting the default model (dlib-resnet-v1) into $models"
    .venv/bin/clockface convert dlib-resnet-v1 --output "$models"
  else
    say "default model present in $models"
  fi
  # MTCNN (stills: enrolment, eval) beside it; real photos, where ../shared has them, check the export too.
  if [ ! -f "$models/mtcnn.json" ]; then
    say "converting the MTCNN face detector into $models"
    local photos=()
    [ -d "$ROOT/../shared/faces" ] && photos=(--calibration "$ROOT/../shared/faces")
    .venv/bin/clockface convert mtcnn --output "$models" "${photos[@]}"
  else
    say "MTCNN present in $models"
  fi
  say "done. Try: .venv/bin/clockface demo"
}

case "$MODE" in
  dev) dev_setup ;;
  device)
    [ -f "$ROOT/systemd/install-device.sh" ] || die "device installer missing: systemd/install-device.sh"
    exec bash "$ROOT/systemd/install-device.sh" "${DEVICE_ARGS[@]}"
    ;;
esac
