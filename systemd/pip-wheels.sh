# shellcheck shell=bash
# Sourced by install-device.sh: wheels only on a Pi, and one line naming what has none.
#
# On aarch64 (every Raspberry Pi terminal) pip gets --only-binary=:all:. A source build there
# takes an hour or dies on a missing compiler or header, deep in a log, far from the cause: a
# pin or a new dependency without an aarch64 wheel. tests/test_aarch64_wheels.py finds such a
# pin before anyone installs; this is the same rule at install time, with the package named.

# numpy1_constraints SRC DEST: the tested constraints SRC rewritten for a venv that must keep
# numpy 1.x (Raspberry Pi OS 12, where apt's picamera2 is compiled against apt's numpy 1.24).
# The numpy pin gives way to numpy<2, and the pins of packages whose tested release needs
# numpy 2 give way to their last releases that accept 1.x (read from the aarch64 wheels'
# METADATA): opencv-python-headless 4.12.0.88+ declares numpy>=2 on Python >= 3.9 (4.11.0.86:
# numpy>=1.23.5 on 3.11); ml-dtypes (LiteRT's) 0.7.0 declares numpy>=2.0.0.
# tests/test_aarch64_wheels.py resolves the result for Bookworm's cp311, wheels only.
numpy1_constraints() {
  grep -v -e '^numpy==' -e '^opencv-python-headless==' -e '^ml-dtypes==' "$1" > "$2"
  printf '%s\n' "numpy<2" "opencv-python-headless<4.12" "ml-dtypes<0.6" >> "$2"
}

# wheel_flags ARCH: pip's extra flags on ARCH (uname -m), one per line.
wheel_flags() {
  if [ "$1" = aarch64 ]; then echo "--only-binary=:all:"; fi
}

# missing_distributions PIP_LOG: what pip found nothing installable for, space-separated, from
# "No matching distribution found for NAME[spec]" and from a ResolutionImpossible's
# "no matching distributions available for your environment:" list.
missing_distributions() {
  awk '
    /No matching distribution found for / {
      s = $0; sub(/.*No matching distribution found for /, "", s); sub(/[^A-Za-z0-9._-].*/, "", s)
      if (s != "") print s
      next
    }
    /no matching distributions available for your environment:/ { block = 1; next }
    block && /^[ \t]+[^ \t]/ { print $1; next }
    { block = 0 }
  ' "$1" | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# pip_error_line ARCH PYTHON_VERSION PIP_LOG: the one-line reason a failed pip install gives,
# or nothing when pip failed for another reason (its output then says why).
pip_error_line() {
  local arch=$1 pyver=$2 log=$3 names
  names=$(missing_distributions "$log")
  [ -n "$names" ] || return 0
  if [ -n "$(wheel_flags "$arch")" ]; then
    echo "no Linux $arch wheel on PyPI for $names (Python $pyver): a Pi installs wheels only, never builds from source; pin a release that has one in tests/constraints.txt (pip's output: $log)"
  else
    echo "pip found no installable release of $names for Python $pyver on $arch (pip's output: $log)"
  fi
}
