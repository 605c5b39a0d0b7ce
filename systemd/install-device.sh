#!/usr/bin/env bash
# Install (or upgrade, or remove) clockface on a terminal: Raspberry Pi OS
# Bookworm/Trixie or Debian 12/13. Called by `./setup.sh --device`, with its flags:
#
#   systemd/install-device.sh [--kiosk] [--uninstall] [--purge-data]
#
# What it does (idempotent; a re-run upgrades in place and keeps data):
#   apt packages   python3, python3-venv, python3-systemd (journal priorities), udev,
#                  alsa-utils (the door chime's aplay)
#                  (+ python3-picamera2 where the archive has it, python3-gpiozero on a Pi)
#   user           system user and group `clockface` (camera access via the unit's
#                  SupplementaryGroups=video, never root; added to the audio and gpio
#                  groups where they exist, for the door chime and lights)
#   code           /opt/clockface/venv (--system-site-packages, so apt's picamera2 is seen;
#                  the project without the converter extra: no TensorFlow on a device;
#                  on aarch64 from wheels only, never a source build: systemd/pip-wheels.sh)
#                  /usr/local/bin/clockface (runs as the clockface user when called by root)
#   config         /etc/clockface/clockface.toml (created once from the documented defaults,
#                  never overwritten; the current defaults are kept beside it as
#                  clockface.example.toml)
#   data           /var/lib/clockface (models/, gallery.db, attendance.db)
#   models         when the default models are absent, they are made here, without TensorFlow
#                  (systemd/build-default-models.sh: dlib-resnet-v1 and MTCNN, numpy backend;
#                  nothing but the model files is left behind)
#   units          clockface.service, clockface-stick@.service + 99-clockface-stick.rules,
#                  clockface-retention.service + .timer, clockface-sync.service (enabled;
#                  skipped until [central] host is set and /etc/clockface/central.pgpass
#                  exists), in /etc/systemd/system and /etc/udev/rules.d
# --kiosk also installs the kiosk screen: apt's cage and chromium, a user
#                  `clockface-kiosk`, clockface-kiosk.service (Chromium full-screen on
#                  tty1 showing the terminal's kiosk page) and its kiosk-url.conf drop-in
# --uninstall removes all of that except the data and config; with --purge-data
# also /var/lib/clockface, /etc/clockface and the users.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
# wheel_flags, pip_error_line: wheels only on aarch64, a missing one named in one line.
# shellcheck source=systemd/pip-wheels.sh
. "$HERE/pip-wheels.sh"

PREFIX=/opt/clockface
VENV=$PREFIX/venv
LIBEXEC=$PREFIX/libexec
ETC=/etc/clockface
CONFIG=$ETC/clockface.toml
DATA=/var/lib/clockface
UNIT_DIR=/etc/systemd/system
RULES_DIR=/etc/udev/rules.d
BIN_LINK=/usr/local/bin/clockface
USER_NAME=clockface
UNITS=(clockface.service clockface-stick@.service clockface-retention.service clockface-retention.timer clockface-sync.service)
KIOSK_UNIT=clockface-kiosk.service
KIOSK_USER=clockface-kiosk
KIOSK_DROPIN=$UNIT_DIR/$KIOSK_UNIT.d/kiosk-url.conf
KIOSK_PORT_DEFAULT=8091
RULE=99-clockface-stick.rules

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

PIP_SECONDS=0
UNINSTALL=0
PURGE=0
KIOSK=0
for arg in "$@"; do
  case "$arg" in
    --kiosk) KIOSK=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --purge-data) PURGE=1 ;;
    *) die "unknown option $arg" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "device mode installs system-wide: run it with sudo (sudo ./setup.sh --device)"
command -v apt-get >/dev/null || die "device mode needs a Debian-based OS (Raspberry Pi OS or Debian)"

# systemd as PID 1? (Not in a chroot or a container build: then units are only enabled.)
systemd_running() { [ -d /run/systemd/system ]; }

uninstall() {
  say "removing clockface (data in $DATA $( [ "$PURGE" = 1 ] && echo "and config will be deleted" || echo "and config in $ETC are kept"))"
  if systemd_running; then
    systemctl disable --now "$KIOSK_UNIT" clockface.service clockface-sync.service clockface-retention.timer 2>/dev/null || true
    systemctl stop clockface-retention.service 'clockface-stick@*.service' 2>/dev/null || true
  else
    systemctl disable "$KIOSK_UNIT" clockface.service clockface-sync.service clockface-retention.timer 2>/dev/null || true
  fi
  for unit in "${UNITS[@]}" "$KIOSK_UNIT"; do rm -f "$UNIT_DIR/$unit"; done
  rm -rf "$UNIT_DIR/$KIOSK_UNIT.d"
  rm -f "$RULES_DIR/$RULE" "$BIN_LINK"
  rm -rf "$PREFIX"
  if systemd_running; then
    systemctl daemon-reload
    udevadm control --reload 2>/dev/null || true
  fi
  if [ "$PURGE" = 1 ]; then
    rm -rf "$DATA" /var/lib/private/clockface "$ETC" /var/lib/$KIOSK_USER
    local u
    for u in "$KIOSK_USER" "$USER_NAME"; do
      if id "$u" >/dev/null 2>&1; then userdel "$u" 2>/dev/null || true; fi
      if getent group "$u" >/dev/null; then groupdel "$u" 2>/dev/null || true; fi
    done
    say "removed, data and config deleted"
  else
    say "removed; kept $DATA and $ETC (delete them with: sudo ./setup.sh --device --uninstall --purge-data)"
  fi
}

# --- apt ----------------------------------------------------------------------

os_summary() {
  # shellcheck disable=SC1091
  ( . /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown OS} (${ID:-?} ${VERSION_CODENAME:-?})" )
}

is_raspberry_pi() { grep -qs "Raspberry Pi" /proc/device-tree/model; }

apt_candidate() {
  # Has the archive a package of that name? (Raspberry Pi OS has python3-picamera2, Debian not.)
  local c
  c=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p')
  [ -n "$c" ] && [ "$c" != "(none)" ]
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_packages() {
  # python3-systemd: the CLI logs to the journal with priorities (device/cli/log_setup.py).
  # alsa-utils: `aplay` plays the door chime (device/terminal/chime.py).
  local wanted=(python3 python3-venv python3-systemd udev ca-certificates alsa-utils)
  local optional=()
  # The Pi camera stack comes from apt, not PyPI (it needs the matching libcamera).
  if is_raspberry_pi || apt_candidate python3-picamera2; then optional+=(python3-picamera2); fi
  # Door LEDs and buzzer ([door] *_pin): gpiozero and its lgpio backend, from apt on a Pi.
  if is_raspberry_pi; then optional+=(python3-gpiozero python3-lgpio); fi
  apt_install "${wanted[@]}" -- "${optional[@]}"
}

apt_install() {
  # apt_install REQUIRED... -- OPTIONAL...: the optional ones only where the archive has them.
  local wanted=() optional=() seen_sep=0 p
  for p in "$@"; do
    if [ "$p" = -- ]; then seen_sep=1; elif [ $seen_sep = 1 ]; then optional+=("$p"); else wanted+=("$p"); fi
  done
  local missing=()
  for p in "${wanted[@]}" "${optional[@]}"; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then
    say "apt packages present: ${wanted[*]} ${optional[*]}"
    return
  fi
  say "installing apt packages: ${missing[*]}"
  apt-get update -qq
  # Only now do we know the archive's package list: drop the optional ones it does not have.
  local available=()
  for p in "${missing[@]}"; do
    if [[ " ${optional[*]} " == *" $p "* ]] && ! apt_candidate "$p"; then continue; fi
    available+=("$p")
  done
  missing=("${available[@]}")
  [ ${#missing[@]} -gt 0 ] || return 0
  # --no-install-recommends: picamera2 would otherwise pull in a Qt desktop.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

find_python() {
  local py
  py=$(command -v python3) || die "python3 not found after apt install"
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "Python 3.11 or newer is needed ($(os_summary) has $("$py" -V 2>&1)); use Raspberry Pi OS / Debian Bookworm or later"
  echo "$py"
}

# --- user, code, config --------------------------------------------------------

ensure_user() {
  if ! getent group "$USER_NAME" >/dev/null; then groupadd --system "$USER_NAME"; fi
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    say "creating system user $USER_NAME"
    useradd --system --gid "$USER_NAME" --home-dir "$DATA" --no-create-home \
      --shell /usr/sbin/nologin --comment "clockface attendance terminal" "$USER_NAME"
  fi
  # The door chime (ALSA) and lights (GPIO): only the groups this OS has; the unit
  # itself names none of them, so it starts on a Debian PC without a gpio group.
  local g
  for g in audio gpio; do
    if getent group "$g" >/dev/null && ! id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx "$g"; then
      usermod -aG "$g" "$USER_NAME"
    fi
  done
}

ensure_venv() {
  local py=$1
  # A Python upgrade (e.g. Bookworm -> Trixie) leaves a venv that points at a
  # missing interpreter: rebuild it; nothing in the venv is data.
  if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "the venv's Python is gone (OS upgrade?): rebuilding $VENV"
    rm -rf "$VENV"
  fi
  if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2])')" != "$("$py" -c 'import sys; print(sys.version_info[:2])')" ]; then
    say "Python version changed: rebuilding $VENV"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV (with system site-packages, for apt's picamera2)"
    mkdir -p "$PREFIX"
    "$py" -m venv --system-site-packages "$VENV"
  fi
}

install_project() {
  local constraints=$PREFIX/constraints.txt
  # The exact versions the tests ran with (tests/constraints.txt, one file for dev and device).
  cp "$SRC/tests/constraints.txt" "$constraints"
  # picamera2's compiled helpers from apt are built against apt's numpy 1.x: keep
  # the venv's numpy on 1.x there, or importing picamera2 fails with a dtype-size error.
  # The tested numpy pin then gives way to that range (pip refuses contradicting constraints).
  local sysnumpy
  sysnumpy=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)
  if [ -n "$sysnumpy" ] && [ "${sysnumpy%%.*}" = 1 ]; then
    numpy1_constraints "$SRC/tests/constraints.txt" "$constraints"
    say "system numpy $sysnumpy (apt): keeping numpy<2 (and an OpenCV built for it) in the venv"
  fi
  local arch only_binary pip_log pyver t0=$SECONDS
  arch=$(uname -m)
  mapfile -t only_binary < <(wheel_flags "$arch")
  say "installing clockface from $SRC into $VENV (device runtime only, no converter/TensorFlow${only_binary[*]:+; $arch: wheels only})"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  pip_log=$(mktemp /tmp/clockface-pip.XXXXXX)
  if ! "$VENV/bin/python" -m pip install -q "${only_binary[@]}" --upgrade --upgrade-strategy only-if-needed \
    -c "$constraints" "$SRC" >"$pip_log" 2>&1; then
    pyver=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    local reason
    reason=$(pip_error_line "$arch" "$pyver" "$pip_log")
    [ -z "$reason" ] || die "$reason"
    tail -n 25 "$pip_log" >&2
    die "pip install failed (its output: $pip_log)"
  fi
  cat "$pip_log"  # -q: only pip's warnings
  rm -f "$pip_log"
  PIP_SECONDS=$((SECONDS - t0))
  "$VENV/bin/python" -c 'import tensorflow' 2>/dev/null \
    && say "warning: TensorFlow is importable in $VENV (from system site-packages?); clockface does not need it"
  "$VENV/bin/clockface" --version >/dev/null || die "the installed clockface does not start"
  mkdir -p "$LIBEXEC"
  install -m 0755 "$HERE/clockface-stick" "$LIBEXEC/clockface-stick"
  # Root calling `clockface` acts as the clockface user, so files in $DATA keep their owner.
  cat > "$BIN_LINK" <<WRAP
#!/bin/sh
# clockface command for administrators (installed by setup.sh --device).
export CLOCKFACE_CONFIG=\${CLOCKFACE_CONFIG:-$CONFIG}
if [ "\$(id -u)" = 0 ] && [ -z "\${CLOCKFACE_AS_ROOT:-}" ]; then
  cd $DATA 2>/dev/null || cd /
  exec runuser -u $USER_NAME -- env HOME=$DATA CLOCKFACE_CONFIG="\$CLOCKFACE_CONFIG" $VENV/bin/clockface "\$@"
fi
exec $VENV/bin/clockface "\$@"
WRAP
  chmod 0755 "$BIN_LINK"
  local rev
  rev=$(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown)
  printf 'version=%s\nsource=%s\nrevision=%s\ninstalled=%s\n' \
    "$("$VENV/bin/clockface" --version 2>/dev/null | awk '{print $NF}')" "$SRC" "$rev" "$(date -u +%FT%TZ)" > "$PREFIX/INSTALLED"
}

write_config() {
  mkdir -p "$ETC"
  # The documented defaults ship with the source (device/clockface.example.toml).
  local example=$SRC/device/clockface.example.toml
  install -m 0644 "$example" "$ETC/clockface.example.toml"
  if [ -f "$CONFIG" ]; then
    say "keeping existing $CONFIG (current defaults: $ETC/clockface.example.toml)"
  else
    say "writing $CONFIG"
    # The documented defaults, with the data folder of a device.
    python3 - "$example" "$CONFIG" "$DATA" <<'PY'
import re, sys
src, dst, data = sys.argv[1:]
text = open(src, encoding="utf-8").read()
text, found = re.subn(r'^#?\s*data_dir\s*=.*$', f'data_dir = "{data}"', text, count=1, flags=re.M)
if not found:
    sys.exit(f"{src} has no data_dir line under [paths]")
header = "# clockface configuration for this terminal (written by setup.sh --device; edit freely,\n# re-running setup keeps it). After a change: sudo systemctl reload clockface\n\n"
open(dst, "w", encoding="utf-8").write(header + text)
PY
  fi
  # Readable by the service only (the [web] password hash may be in it).
  chown root:"$USER_NAME" "$ETC" "$CONFIG"
  chmod 0750 "$ETC"
  chmod 0640 "$CONFIG"
  "$BIN_LINK" config show >/dev/null || die "$CONFIG is not valid (clockface config show says why)"
}

ensure_data() {
  install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$DATA" "$DATA/models"
}

install_units() {
  local changed=0 f
  for unit in "${UNITS[@]}"; do
    if ! cmp -s "$HERE/$unit" "$UNIT_DIR/$unit"; then changed=1; fi
    install -m 0644 "$HERE/$unit" "$UNIT_DIR/$unit"
  done
  f=$RULES_DIR/$RULE
  if ! cmp -s "$HERE/$RULE" "$f"; then changed=1; fi
  mkdir -p "$RULES_DIR"
  install -m 0644 "$HERE/$RULE" "$f"
  if systemd_running; then
    systemctl daemon-reload
    udevadm control --reload 2>/dev/null || true
  fi
  systemctl enable clockface.service clockface-sync.service clockface-retention.timer >/dev/null 2>&1 \
    || systemctl enable clockface.service clockface-sync.service clockface-retention.timer
  say "units installed and enabled ($( [ $changed = 1 ] && echo updated || echo unchanged))"
}

model_present() {
  local model
  model=$("$BIN_LINK" config show --key paths.model 2>/dev/null || echo dlib-resnet-v1)
  case "$model" in
    */*|*.tflite) [ -f "$model" ] ;;
    *) [ -f "$DATA/models/$model.tflite" ] && [ -f "$DATA/models/$model.json" ] ;;
  esac
}

mtcnn_present() { [ -f "$DATA/models/mtcnn.json" ]; }

ensure_default_models() {
  # The Pi makes its own default models (no workstation, no TensorFlow); a model copied in
  # from a workstation (VGGFace, or any other) is never replaced.
  local model
  model=$("$BIN_LINK" config show --key paths.model 2>/dev/null || echo dlib-resnet-v1)
  if model_present && mtcnn_present; then
    say "models present in $DATA/models"
    return
  fi
  if [ "$model" != dlib-resnet-v1 ] && ! model_present; then
    say "the configured model $model is not in $DATA/models: copy it from a workstation (docs/install-pi.md)"
  fi
  say "building the default models in $DATA/models (numpy backend, no TensorFlow; about a minute)"
  local started=$SECONDS
  if "$HERE/build-default-models.sh" "$DATA/models" "$VENV/bin/python"; then
    chown -R "$USER_NAME:$USER_NAME" "$DATA/models"
    say "default models built in $((SECONDS - started)) s"
  else
    say "warning: could not build the default models (offline?); re-run setup, or copy them from a workstation"
  fi
}

# --- the kiosk screen (--kiosk) ------------------------------------------------

install_kiosk() {
  # cage: the Wayland kiosk compositor; Chromium is `chromium` on Debian and current
  # Raspberry Pi OS, `chromium-browser` on older Raspberry Pi OS images.
  local browser=chromium
  if ! installed chromium && ! apt_candidate chromium && apt_candidate chromium-browser; then browser=chromium-browser; fi
  apt_install cage "$browser" fonts-dejavu-core --
  if ! id "$KIOSK_USER" >/dev/null 2>&1; then
    say "creating system user $KIOSK_USER (the kiosk browser; no access to the attendance data)"
    useradd --system --user-group --home-dir /var/lib/$KIOSK_USER --no-create-home \
      --shell /usr/sbin/nologin --comment "clockface kiosk screen" "$KIOSK_USER"
  fi
  # logind grants the tty1 session its screen and input; these groups cover a seat without ACLs.
  local g
  for g in video render input; do
    if getent group "$g" >/dev/null; then usermod -aG "$g" "$KIOSK_USER"; fi
  done
  install -m 0644 "$HERE/$KIOSK_UNIT" "$UNIT_DIR/$KIOSK_UNIT"
  # The page's URL from this terminal's config ([kiosk] port), so the unit file stays as shipped.
  local port
  port=$("$BIN_LINK" config show --key kiosk.port 2>/dev/null || echo "$KIOSK_PORT_DEFAULT")
  mkdir -p "$(dirname "$KIOSK_DROPIN")"
  printf '# Written by setup.sh --device --kiosk from [kiosk] port in %s.\n[Service]\nEnvironment=CLOCKFACE_KIOSK_URL=http://127.0.0.1:%s/\nEnvironment=CLOCKFACE_KIOSK_BROWSER=/usr/bin/%s\n' \
    "$CONFIG" "$port" "$browser" > "$KIOSK_DROPIN"
  if systemd_running; then systemctl daemon-reload; fi
  systemctl enable "$KIOSK_UNIT" >/dev/null 2>&1 || systemctl enable "$KIOSK_UNIT"
  say "kiosk screen installed: $KIOSK_UNIT shows http://127.0.0.1:$port/ on tty1 (enable the page with [kiosk] in $CONFIG)"
  if systemd_running; then
    if systemctl is-active -q "$KIOSK_UNIT"; then systemctl restart "$KIOSK_UNIT"; else systemctl start --no-block "$KIOSK_UNIT"; fi
  fi
}

start_or_restart() {
  if ! systemd_running; then
    say "systemd is not running here (chroot/image build): the service starts at boot"
    return
  fi
  systemctl start clockface-retention.timer || true
  # Skipped by its conditions until [central] is configured; restarted so an upgrade takes effect.
  if systemctl is-active -q clockface-sync.service; then systemctl restart clockface-sync.service; else systemctl start --no-block clockface-sync.service || true; fi
  if systemctl is-active -q clockface.service; then
    say "restarting clockface.service (upgrade)"
    systemctl restart clockface.service
  elif model_present; then
    say "starting clockface.service"
    systemctl reset-failed clockface.service 2>/dev/null || true
    systemctl start --no-block clockface.service
  fi
}

next_steps() {
  echo
  say "installed $(sed -n 's/^version=//p' "$PREFIX/INSTALLED") on $(os_summary)"
  # What a Pi owner waits for and what it costs the SD card.
  say "install took ${SECONDS}s (pip ${PIP_SECONDS}s); venv $VENV: $(du -sh "$VENV" | cut -f1) (du -sh)"
  if ! model_present; then
    cat <<EOF
Next steps:
  1. The model is missing from $DATA/models/. Re-run setup with internet access (it builds
     the default models here), or copy a .tflite and its .json converted on a workstation
     (./setup.sh there, or: clockface convert MODEL --output DIR; VGGFace models need that):
       sudo install -o $USER_NAME -g $USER_NAME -m 0640 MODEL.tflite MODEL.json $DATA/models/
  2. Set the camera in $CONFIG ([camera] source: picamera2, camera:0 or /dev/video0).
  3. sudo systemctl restart clockface
EOF
  else
    cat <<EOF
Next steps:
  - Set the camera in $CONFIG ([camera] source), then: sudo systemctl reload clockface
EOF
  fi
  cat <<EOF
  - Enrol staff: plug in a USB stick with an images/ folder (firstname_lastname.jpg ...);
    the report is written back onto the stick as clockface-report.txt.
  - Status and log:   systemctl status clockface;  journalctl -u clockface -f
  - Attendance:       sudo clockface logs today
  - Update:           git pull && sudo ./setup.sh --device   (keeps data and config)
EOF
}

if [ "$UNINSTALL" = 1 ]; then
  uninstall
  exit 0
fi

say "device install on $(os_summary)"
install_packages
PY=$(find_python)
ensure_user
ensure_venv "$PY"
install_project
ensure_data
write_config
ensure_default_models
install_units
start_or_restart
if [ "$KIOSK" = 1 ]; then install_kiosk; fi
next_steps
