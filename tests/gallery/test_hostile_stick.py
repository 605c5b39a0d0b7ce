"""Enrolling a hostile stick with the real command: every file gets its outcome
in the CSV report on the stick, nothing blocks, and memory stays bounded."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT, _tmpfs_fixture, shared_path
from tests.gallery.hostile_stick import build_hostile_stick

# A Pi 3 has 1 GB for everything; enrolment must leave room for the terminal.
PEAK_RSS_LIMIT_MB = 400
# Runs the command and writes its peak RSS (its own RUSAGE_CHILDREN, so nothing
# else this test session ran is counted) to the file named first.
_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)

stick_fs = _tmpfs_fixture("stick", "size=200m", "A real file system of its own for the stick, as a USB stick is.")


def test_hostile_stick(tmp_path: Path, stick_fs: Path, dlib_model: Path):
    faces = shared_path("faces")
    outside = tmp_path / "outside"  # another file system than the stick's
    outside.mkdir()
    expected = build_hostile_stick(stick_fs, outside, faces)
    (tmp_path / "data").mkdir()
    config = tmp_path / "clockface.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\nmodel = "{dlib_model}"\n')
    peak_file = tmp_path / "peak_kb"
    command = [
        sys.executable,
        "-m",
        "device.cli",
        "--config",
        str(config),
        "enroll-stick",
        "--mount-point",
        str(stick_fs),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(peak_file), *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,  # a FIFO opened for reading would block here forever
    )
    report = stick_fs / "clockface-report.csv"
    assert report.is_file(), done.stdout + done.stderr
    with report.open(encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "photo"]
    # A formula-safe writer may prefix cells starting with = + - @ by a quote.
    found = {r["file"].removeprefix("'"): r for r in rows}
    assert sorted(found) == sorted(expected), done.stdout
    wrong = {
        name: (row["outcome"], row["detail"])
        for name, row in found.items()
        if row["outcome"] != expected[name].outcome or expected[name].detail not in row["detail"]
    }
    assert not wrong, wrong
    peak_mb = int(peak_file.read_text()) / 1024
    print(f"peak RSS of the whole enrolment: {peak_mb:.0f} MB")
    assert peak_mb < PEAK_RSS_LIMIT_MB
